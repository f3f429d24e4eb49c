"""benchmarks/bench_memkd.py resumes from records.jsonl only while the recorded teacher exists in
the current registry; in a fresh store (a new checkout: the databases are not committed) the
teacher is selected again and a reset line supersedes its stale lines (append-only: several
processes share the file), student lines kept."""

import sys
from pathlib import Path

from mlflow.tracking import MlflowClient

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_memkd  # noqa: E402


def test_teacher_uri_resolves_only_where_its_version_and_files_are(mlflow_store, tmp_path):
    import shutil

    import mlflow

    assert not bench_memkd._resolves("models:/ucr-trace-lstm_teacher/1")
    (tmp_path / "model.txt").write_text("weights")
    with mlflow.start_run() as run:
        mlflow.log_artifact(str(tmp_path / "model.txt"), "model")
    client = MlflowClient()
    client.create_registered_model("ucr-trace-lstm_teacher")
    v = client.create_model_version("ucr-trace-lstm_teacher", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    assert bench_memkd._resolves(f"models:/ucr-trace-lstm_teacher/{v.version}")
    assert not bench_memkd._resolves(f"models:/ucr-trace-lstm_teacher/{int(v.version) + 1}")
    # a committed store on a fresh checkout: the version is registered, its files are not there
    shutil.rmtree(run.info.artifact_uri.removeprefix("file://"))
    assert not bench_memkd._resolves(f"models:/ucr-trace-lstm_teacher/{v.version}")


def test_a_reset_line_supersedes_the_earlier_teacher_lines_of_its_dataset_only():
    recs = [{"dataset": "Trace", "method": "teacher_all", "seed": 0},
            {"dataset": "Trace", "method": "teacher", "seed": 0, "uri": "models:/x/1"},
            {"dataset": "Trace", "method": "none", "seed": 0},
            {"dataset": "MoteStrain", "method": "teacher", "seed": 1, "uri": "models:/y/1"},
            {"dataset": "Trace", "method": bench_memkd.RESET},
            {"dataset": "Trace", "method": "teacher", "seed": 3, "uri": "models:/x/2"}]
    assert bench_memkd._live(recs) == [recs[2], recs[3], recs[5]]


def test_the_report_keeps_the_teacher_its_distilled_students_were_trained_under():
    old = {"dataset": "Trace", "method": "teacher", "seed": 0, "uri": "models:/x/1"}
    new = {"dataset": "Trace", "method": "teacher", "seed": 3, "uri": "models:/x/2"}
    base = {"dataset": "Trace", "method": "none", "seed": 0}
    kd = {"dataset": "Trace", "method": "kd", "seed": 0}
    fresh = {"dataset": "MoteStrain", "method": "teacher", "seed": 1, "uri": "models:/y/1"}
    raw = [old, base, kd, {"dataset": "Trace", "method": bench_memkd.RESET}, new, fresh]
    assert bench_memkd._reported(raw) == [base, kd, fresh, old]  # Trace's students used models:/x/1
    no_students_yet = [old, base, {"dataset": "Trace", "method": bench_memkd.RESET}, new]
    assert bench_memkd._reported(no_students_yet) == [base, new]  # Base uses no teacher


def test_an_unfinished_search_continues_only_with_its_own_teacher(mlflow_store, tmp_path):
    import mlflow
    import memkd_protocol
    import optuna

    client = MlflowClient()
    client.create_registered_model("t")
    runs = []
    for _ in range(2):
        with mlflow.start_run() as run:
            runs.append(run.info.run_id)
        client.create_model_version("t", f"runs:/{run.info.run_id}/model", run_id=run.info.run_id)
    storage = f"sqlite:///{tmp_path / 'optuna.db'}"
    study = optuna.create_study(study_name="s-grid", storage=storage)
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.5))
    # one of two grid points run: a re-selected teacher does not continue the first teacher's grid
    assert memkd_protocol.study_name("s-grid", "models:/t/1", 2, storage) == f"s-grid-t{runs[0][:8]}"
    assert memkd_protocol.study_name("s-grid", "models:/t/2", 2, storage) == f"s-grid-t{runs[1][:8]}"
    study.set_user_attr(memkd_protocol.TEACHER_ATTR, runs[1])  # started with teacher 2 (or one restored from it)
    assert memkd_protocol.study_name("s-grid", "models:/t/2", 2, storage) == "s-grid"
    assert memkd_protocol.study_name("s-grid", "models:/t/1", 2, storage) == f"s-grid-t{runs[0][:8]}"
    study.add_trial(optuna.trial.create_trial(params={}, distributions={}, value=0.6))
    assert memkd_protocol.study_name("s-grid", "models:/t/2", 2, storage) == "s-grid"  # finished: kept


def test_each_pruner_choice_makes_a_valid_study_file():
    import memkd_protocol
    from tdml.studies import spec_from_dict
    for name in ("median", "none"):
        d = memkd_protocol.study_spec("s", "memkd", "models:/t/1", {"epochs": 5}, 3, "sqlite:///x.db", "e", 7, 3, name)
        spec = spec_from_dict(d)
        assert spec.pruner.name == name and spec.n_trials == 3 and spec.sampler.seed == 7
        assert set(spec.search_space.params) == {"loss.weight", "loss.long_weight"}
