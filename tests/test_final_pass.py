"""A run reads its final split once: the scored metrics and the FFT diagnostics come from the same
predictions, so a wide teacher is not run over its test split twice (on Traffic's shape that
pass took longer than the capped training epoch). Real MLflow store and registry."""

from __future__ import annotations

import pytest

import tdml
import tdml.runs.common as common

TINY = {"train.max_batches": 4, "tracking.latency_repeats": 1, "train.epochs": 1,
        "data.seq_len": 48, "data.pred_len": 12}


def _count_final_passes(monkeypatch) -> list[str]:
    """Every whole-split pass the shared end of a run makes (fit's validation passes are
    ``tdml.train``'s own and not counted)."""
    calls: list[str] = []
    for name in ("evaluate", "predictions"):
        real = getattr(common, name)

        def wrapped(*a, _real=real, _name=name, **k):
            calls.append(_name)
            return _real(*a, **k)
        monkeypatch.setattr(common, name, wrapped)
    return calls


@pytest.mark.parametrize("diagnostics", [True, False])
def test_teacher_and_student_score_and_diagnose_one_pass(mlflow_store, monkeypatch, diagnostics):
    t = tdml.train_teacher("synthetic", model="itransformer", progress=False,
                           set={**TINY, "tracking.diagnostics": diagnostics})
    calls = _count_final_passes(monkeypatch)
    t2 = tdml.train_teacher("synthetic", model="itransformer", progress=False,
                            set={**TINY, "tracking.diagnostics": diagnostics})
    assert len(calls) == 1, calls
    # the same numbers either way: scored from kept predictions or by the accumulator
    assert t2.metrics["test_mse"] == pytest.approx(t.metrics["test_mse"], rel=1e-6)
    if diagnostics:  # the diagnostics' scale-0 error is the scored MSE: the same predictions
        assert t2.metrics["diag_mse_teacher_scale0"] == pytest.approx(t2.metrics["test_mse"], rel=1e-5)
    calls.clear()
    s = tdml.distill(t2.model_uri, progress=False,
                     set={"train.max_batches": 4, "tracking.latency_repeats": 1, "train.epochs": 1,
                          "student_params.d_model": 32, "tracking.diagnostics": diagnostics})
    assert calls.count("evaluate") + calls.count("predictions") == 1, calls
    if diagnostics:
        assert s.metrics["diag_mse_student_scale0"] == pytest.approx(s.metrics["test_mse"], rel=1e-5)
        assert s.metrics["diag_mse_teacher_scale0"] == pytest.approx(s.metrics["teacher_test_mse"], rel=1e-5)
