"""benchmarks/teacher_vault.py: a bench teacher saved from one MLflow store is registered in a
fresh one (a new checkout) with the same weights, its run's record and its origin run id, and a
distill run uses it there -- so a benchmark resumed across sessions keeps one teacher."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from tdml.cli import main
from tdml.mlflow_models import load_model

from conftest import runs_of, tiny_distill_args, tiny_teacher_args, use_store

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import teacher_vault  # noqa: E402

URI = "models:/synthetic-itransformer-L48-H12@champion"


def test_a_saved_teacher_is_the_same_teacher_in_a_fresh_store(tmp_path):
    torch.set_num_threads(1)
    vault = tmp_path / "committed" / "teachers" / "synthetic"
    x = torch.randn(2, 48, 5)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with use_store(tmp_path / "a", TDML_DATA_DIR=str(tmp_path / "data")) as client:
        assert main(tiny_teacher_args()) == 0
        model, _, mv = load_model(URI)
        original = client.get_run(mv.run_id)
        teacher_vault.save(URI, vault)
        assert teacher_vault.origin_run_id(URI) == mv.run_id
        with torch.no_grad():
            expected = model(x)
    with use_store(tmp_path / "b", TDML_DATA_DIR=str(tmp_path / "data")) as client:  # a fresh checkout
        assert not client.search_registered_models()
        uri = teacher_vault.restore(vault, experiment="bench")
        restored, _, mv2 = load_model(uri)
        with torch.no_grad():
            torch.testing.assert_close(restored(x), expected, rtol=0, atol=0)
        run = client.get_run(mv2.run_id)
        assert run.info.run_id != original.info.run_id and teacher_vault.origin_run_id(uri) == original.info.run_id
        assert run.data.params == original.data.params
        assert run.data.metrics["test_mse"] == original.data.metrics["test_mse"]
        assert main(tiny_distill_args(uri)) == 0  # a student distils from it in the new store
        student = runs_of(client, "student")[0]
        assert student.info.status == "FINISHED" and student.data.metrics["teacher_test_mse"] > 0
        # saving the restored teacher again keeps its origin
        teacher_vault.save(uri, tmp_path / "again")
        assert '"origin_run_id": "' + original.info.run_id in (tmp_path / "again" / "run.json").read_text()
