"""Every run records what decides its rounding besides the seed (tdml.numerics)."""

import torch
from mlflow.tracking import MlflowClient

from tdml import tracking
from tdml.numerics import NUMERICS_TAG, cpu


def test_run_records_kernels_threads_and_pinning(mlflow_store, monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with tracking.start_run("numerics", "r", "teacher") as run:
            pass
    finally:
        torch.set_num_threads(before)
    tag = MlflowClient().get_run(run.info.run_id).data.tags[NUMERICS_TAG]
    assert f"torch {torch.__version__}" in tag
    assert f"aten {torch.backends.cpu.get_cpu_capability()}" in tag
    assert "threads 1" in tag and "ONEDNN_MAX_CPU_ISA=AVX2" in tag
    assert f"cpu {cpu()}" in tag and cpu()


def test_unset_pinning_variables_are_not_recorded(mlflow_store, monkeypatch):
    for v in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR"):
        monkeypatch.delenv(v, raising=False)
    with tracking.start_run("numerics", "r", "student") as run:
        pass
    assert "=" not in MlflowClient().get_run(run.info.run_id).data.tags[NUMERICS_TAG]
