"""benchmarks/bench_memkd.py resumes from records.jsonl only while the recorded teacher exists in
the current registry; in a fresh store (a new checkout: the databases are not committed) the
teacher is selected again and its stale lines are dropped, student lines kept."""

import json
import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_memkd  # noqa: E402


def test_teacher_uri_resolves_only_in_the_store_that_registered_it(mlflow_store, tmp_path):
    assert not bench_memkd._resolves("models:/ucr-trace-lstm_teacher/1")
    client = MlflowClient()
    client.create_registered_model("ucr-trace-lstm_teacher")
    v = client.create_model_version("ucr-trace-lstm_teacher", str(tmp_path), run_id=None)
    assert bench_memkd._resolves(f"models:/ucr-trace-lstm_teacher/{v.version}")
    assert not bench_memkd._resolves(f"models:/ucr-trace-lstm_teacher/{int(v.version) + 1}")


def test_stale_teacher_lines_are_dropped_from_the_file(tmp_path):
    recs = [{"dataset": "Trace", "method": "teacher_all", "seed": 0},
            {"dataset": "Trace", "method": "teacher", "seed": 0, "uri": "models:/x/1"},
            {"dataset": "Trace", "method": "none", "seed": 0},
            {"dataset": "MoteStrain", "method": "teacher", "seed": 1, "uri": "models:/y/1"}]
    path = tmp_path / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))
    kept = bench_memkd._drop_teachers(recs, "Trace", path)
    assert kept == recs[2:]
    assert [json.loads(line) for line in path.read_text().splitlines()] == recs[2:]
