"""FFT diagnostics accumulate their means chunk by chunk (wide splits never exist whole as
FFTs or distributions): the result does not depend on the chunk size, and it matches the
whole-split formulas written out here."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import tdml.diagnostics as diag
from tdml.losses.timedistill import period_distribution


def _series(n=301, h=24, c=3):
    rng = np.random.default_rng(1)
    return {k: rng.standard_normal((n, h, c)).astype(np.float32) for k in ("ground_truth", "teacher", "student")}


def test_diagnostics_do_not_depend_on_the_chunk_size(tmp_path, monkeypatch):
    series, cols = _series(), ["a", "b", "c"]
    out = {}
    for chunk in (7, 1000):
        monkeypatch.setattr(diag, "CHUNK", chunk)
        out[chunk] = (diag.fft_diagnostics(series, cols, tmp_path / str(chunk), html=False),
                      pd.read_csv(tmp_path / str(chunk) / "kl_per_channel.csv"))
    for k, v in out[1000][0].items():
        assert out[7][0][k] == pytest.approx(v, rel=1e-9)
    pd.testing.assert_frame_equal(out[7][1], out[1000][1], rtol=1e-9)


def test_kl_and_scale_errors_equal_the_whole_split_formulas(tmp_path, monkeypatch):
    monkeypatch.setattr(diag, "CHUNK", 50)
    series = _series()
    summary = diag.fft_diagnostics(series, ["a", "b", "c"], tmp_path, html=False)
    p = {k: period_distribution(torch.from_numpy(v), 0.5, dim=1).double() for k, v in series.items()}
    kl = (p["teacher"] * (p["teacher"].log() - p["student"].log())).sum(-1).mean(0)
    assert summary["diag_kl_teacher_student_mean"] == pytest.approx(float(kl.mean()), rel=1e-5)
    err = series["student"].astype(np.float64) - series["ground_truth"]
    assert summary["diag_mse_student_scale0"] == pytest.approx(float((err**2).mean()), rel=1e-6)
    pooled = err.reshape(len(err), 12, 2, 3).mean(2)  # AvgPool(2) along time
    assert summary["diag_mse_student_scale1"] == pytest.approx(float((pooled**2).mean()), rel=1e-5)
