"""docs/teachers.md states, per teacher, the distill feature, its width at ETTh1 defaults,
the parameter count and whether calendar marks are used: check every row against the code,
so the table cannot drift from the models it documents."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tdml.models import MODELS, Dims, build_model
from tdml.models.defaults import default_params

DOC = Path(__file__).resolve().parents[1] / "docs" / "teachers.md"
PAPER_TEACHERS = {"itransformer", "patchtst", "moderntcn", "timemixer", "timesnet", "micn", "fedformer",
                  "autoformer", "dlinear"}


def _rows() -> dict[str, list[str]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| `") and len(cells) == 7:
            rows[cells[0].strip("`")] = cells
    return rows


def test_every_teacher_has_a_row():
    assert set(_rows()) == PAPER_TEACHERS


@pytest.mark.parametrize("name", sorted(PAPER_TEACHERS))
def test_row_matches_the_model(name):
    torch.set_num_threads(1)
    _, feature, _, width, params, marks, _ = _rows()[name]
    cls = MODELS.get(name)
    model = build_model(name, Dims(seq_len=720, n_channels=7, pred_len=96, n_marks=4), default_params(name, "etth1"))
    assert feature.strip("`") == cls.distill_feature
    assert model.feature_shapes()[cls.distill_feature] == (7, int(width.split()[0].replace(",", "")))
    assert int(params.replace(",", "")) == model.n_parameters()
    assert (marks != "not used") == cls.uses_time_features
