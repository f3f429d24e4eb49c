"""Champion / challenger through the real registry: a new version is @challenger, and
@champion moves only when it is better on validation under the same data settings, or forced."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tdml.cli import main
from tdml.data.synthetic import make_synthetic

from conftest import runs_of, tiny_distill_args, tiny_teacher_args, use_store

TEACHER = "synthetic-itransformer-L48-H12"
STUDENT = f"{TEACHER}-student-mlp"
URI = f"models:/{TEACHER}@champion"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    with use_store(tmp_path_factory.mktemp("promotion")) as client:
        assert main(tiny_teacher_args()) == 0
        yield client


def _distill(store, *extra: str):
    assert main([*tiny_distill_args(URI), "--set", "tracking.diagnostics=false", *extra]) == 0
    run = runs_of(store, "student")[0]
    version = run.data.tags["tdml.registered_version"]
    decision = json.loads(Path(store.download_artifacts(run.info.run_id, "promotion.json")).read_text())
    return run, version, decision


def _champion(store) -> str:
    return str(store.get_model_version_by_alias(STUDENT, "champion").version)


def test_champion_moves_only_for_a_better_version_or_when_forced(store):
    _, v1, d1 = _distill(store)
    assert d1["promoted"] and "had no @champion" in d1["reason"] and _champion(store) == v1

    # worse: a learning rate that cannot move the weights in one batch
    run, v2, d2 = _distill(store, "--lr", "1e-7", "--set", "train.max_batches=1")
    assert not d2["promoted"] and "does not beat" in d2["reason"]
    assert d2["candidate_value"] >= d2["champion_value"]
    assert _champion(store) == v1 and str(store.get_model_version_by_alias(STUDENT, "challenger").version) == v2
    assert run.data.tags["tdml.promotion"] == "kept" and "does not beat" in run.data.tags["tdml.promotion_reason"]
    assert store.get_model_version(STUDENT, v2).tags["tdml.promotion"] == "rejected"

    # better: more batches at the default learning rate
    _, v3, d3 = _distill(store, "--set", "train.max_batches=60")
    assert d3["candidate_value"] < d3["champion_value"] and d3["promoted"] and _champion(store) == v3

    # forced: a worse version takes @champion when the user says so
    _, v4, d4 = _distill(store, "--lr", "1e-7", "--set", "train.max_batches=1", "--promote", "always")
    assert d4["promoted"] and "forced" in d4["reason"] and _champion(store) == v4


def test_versions_from_other_data_settings_are_not_compared(store, tmp_path):
    before = _champion(store)
    other = tmp_path / "other.csv"
    frame = make_synthetic(n_rows=2000, seed=11)
    frame.to_csv(other, index=False)
    _, v, d = _distill(store, "--data-path", str(other), "--set", "train.max_batches=60")
    assert not d["promoted"] and d["reason"].startswith("not compared") and _champion(store) == before
    assert str(store.get_model_version_by_alias(STUDENT, "challenger").version) == v


def test_bad_promote_value_fails_before_training(store, capsys):
    n_failed = len(runs_of(store, status="FAILED"))
    assert main([*tiny_distill_args(URI), "--promote", "sometimes"]) == 2
    assert "'sometimes' is not one of 'if_better', 'always', 'never'" in capsys.readouterr().err
    assert len(runs_of(store, status="FAILED")) == n_failed + 1
