"""Optuna studies through the real MLflow SQLite store and a real Optuna SQLite storage:
spec validation, a tiny study end-to-end through the CLI (n_jobs=2), test split only for the
best trial, the promotion gate both ways, resuming, and pruning."""

from __future__ import annotations

import json
import re
from pathlib import Path

import mlflow
import optuna
import pytest
from optuna.trial import TrialState

from tdml import tuning
from tdml.cli import main
from tdml.errors import DataError, TdmlError
from tdml.studies import load_spec, spec_from_dict

from conftest import REPO, tiny_distill_args
from tuning_helpers import STUDENT, TEACHER_URI, runs, teacher_store, tiny_spec, write_spec


# ----------------------------------------------------------------------------- validation
def _bad(**kw):
    return tiny_spec(**kw)


BAD_SPECS = {
    "unknown_key": ({**tiny_spec(), "n_trails": 3}, r"unknown key\(s\) n_trails; valid keys: .*n_trials"),
    "unknown_component": (_bad(search_space={"optimizer": {}}), "unknown component.*optimizer"),
    "unknown_loss_field": (_bad(search_space={"loss": {"gamma": {"low": 0, "high": 1}}}),
                           "search_space.loss: unknown field 'gamma'.*alpha"),
    "negative_alpha": (_bad(search_space={"loss": {"alpha": {"low": -1.0, "high": 1.0}}}),
                       "search_space.loss.alpha: bad range.*alpha must be >= 0"),
    "low_above_high": (_bad(search_space={"loss": {"beta": {"low": 3.0, "high": 1.0}}}),
                       "bad range: low 3.0 must be <= high 1.0"),
    "log_zero": (_bad(search_space={"loss": {"temperature": {"low": 0.0, "high": 1.0, "log": True}}}),
                 "log scale needs low > 0"),
    "bad_kl_choice": (_bad(search_space={"loss": {"kl_mode": {"type": "categorical", "choices": ["mean"]}}}),
                      "'mean' is not one of 'reference', 'full'"),
    "bad_student": (_bad(search_space={"student": {"type": "categorical", "choices": ["mlp", "gpt"]}}),
                    "unknown model 'gpt'"),
    "bad_sampler": (_bad(sampler={"name": "anneal"}),
                    "sampler.name: 'anneal' is not one of 'tpe', 'random', 'nsga2', 'grid'"),
    "grid_of_a_range": (_bad(sampler={"name": "grid"}), r"sampler grid enumerates listed values: give loss.alpha, "
                        r"train.lr as `\{type: categorical, choices: \[...\]\}`"),
    "grid_negative": ({**_bad(sampler={"name": "grid"}), "search_space": {"loss": {"alpha": {
                      "type": "categorical", "choices": [0.5, -1.0]}}}},
                      "search_space.loss.alpha: bad range, value -1.0 is invalid.*alpha must be >= 0"),
    "grid_empty": ({**_bad(sampler={"name": "grid"}), "search_space": {"loss": {"alpha": {"type": "categorical",
                   "choices": []}}}}, "needs a non-empty `choices` list"),
    "memkd_negative_lambda": ({**_bad(sampler={"name": "grid"}), "base": {"method": "memkd", "student": "lstm_student"},
                               "search_space": {"loss": {"weight": {"type": "categorical", "choices": [0.1, -0.5]}}}},
                              r"search_space.loss.weight: bad range, value -0.5 is invalid.*weight \(λd\) must be >= 0"),
    "repeated_seeds": (_bad(seeds=[1, 1]), r"seeds repeat a value: \[1, 1\]"),
    "bad_metric": (_bad(objectives=[{"metric": "test_mse"}]), "objective metric 'test_mse' is not available"),
    "multi_prune": (_bad(objectives=[{"metric": "val_mse"}, {"metric": "n_params"}], pruner={"name": "median"}),
                    "cannot prune multi-objective"),
    "no_teacher": (_bad(teacher=""), "`teacher` is required"),
    "bad_uri": (_bad(teacher="runs:/abc/model"), "not a registry URI"),
    "bad_train_teacher": (_bad(train_teacher={"model": "itransformer", "train": {"epoch": 1}}),
                          r"unknown key\(s\) epoch"),
    "bad_kind": (_bad(kind="nope"), "unknown study kind 'nope'; valid study kinds: .*distill"),
}


@pytest.mark.parametrize("case", list(BAD_SPECS))
def test_bad_spec_is_a_clear_error_before_anything_runs(case, tmp_path):
    raw, message = BAD_SPECS[case]
    with pytest.raises(TdmlError, match=message):
        spec = spec_from_dict(raw)
        tuning.KINDS.get(spec.kind)(spec).validate()
    assert not (tmp_path / "optuna.db").exists()


def test_shipped_studies_validate():
    names = set()
    for f in sorted((REPO / "studies").glob("*.yaml")):
        spec = load_spec(f)
        tuning.KINDS.get(spec.kind)(spec).validate()
        names.add(spec.name)
    assert {"timedistill-synthetic", "timedistill-etth1", "timedistill-pareto-synthetic"} <= names
    assert load_spec(REPO / "studies" / "timedistill_pareto_synthetic.yaml").multi


# ----------------------------------------------------------------------------- end to end
@pytest.fixture(scope="module")
def e2e(tmp_path_factory):
    """A bad champion, then `tdml tune` (3 trials, n_jobs=2) -> promoted; then a good champion
    and a resumed `tdml tune` (+1 trial) -> not promoted."""
    root = tmp_path_factory.mktemp("tune")
    with teacher_store(root) as client:
        # a current champion that any trained student beats: lr 1e-7 barely moves the weights
        assert main(tiny_distill_args(TEACHER_URI, lr=1e-7)) == 0
        bad_champion = client.get_model_version_by_alias(STUDENT, "champion")
        spec = write_spec(root / "tiny.yaml", tiny_spec("e2e"))
        storage = f"sqlite:///{root / 'optuna.db'}"
        assert main(["tune", "--study", str(spec), "--n-trials", "3", "--storage", storage, "--n-jobs", "2"]) == 0
        first = runs(client, "study", "e2e")[-1]
        after_first = client.get_model_version_by_alias(STUDENT, "champion")
        # a strong champion (3 full epochs, wider) that the 2x4-batch trials do not beat
        assert main(tiny_distill_args(TEACHER_URI, epochs=3) + ["--set", "train.max_batches=0",
                                                                  "--set", "student_params.d_model=64"]) == 0
        good_champion = client.get_model_version_by_alias(STUDENT, "champion")
        assert main(["tune", "--study", str(spec), "--n-trials", "1", "--storage", storage,
                     "--set", "plots=false"]) == 0
        second = runs(client, "study", "e2e")[-1]
        yield dict(client=client, root=root, storage=storage, first=first, second=second,
                   bad_champion=bad_champion, after_first=after_first, good_champion=good_champion)


def test_parent_and_child_runs_link_both_ways(e2e):
    client, parent = e2e["client"], e2e["first"]
    study = optuna.load_study(study_name="e2e", storage=e2e["storage"])
    trials = [t for t in study.trials if t.number < 3]
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 3
    children = {r.info.run_id: r for r in runs(client, "trial", "e2e")
                if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id}
    assert len(children) == 3  # n_jobs=2 worker processes: every trial run is a child of the study run
    for t in trials:
        child = children[t.user_attrs["mlflow_run_id"]]
        assert child.data.tags["tdml.trial_number"] == str(t.number)
        assert child.info.status == "FINISHED"
        assert child.data.metrics["objective_val_mse"] == t.value
        # (the run's val_mse is also logged per epoch, so MLflow shows its last epoch's value)
        assert child.data.metrics["best_val_mse"] == pytest.approx(t.value, rel=1e-6)
        assert "test_mse" not in child.data.metrics  # the search never reads the test split
        assert t.user_attrs["mlflow_parent_run_id"] == parent.info.run_id
        assert t.user_attrs["mlflow_run_url"].endswith(
            f"/#/experiments/{child.info.experiment_id}/runs/{child.info.run_id}")
        assert child.data.params["method"] == "timedistill" and "alpha" in child.data.params
        assert {i.dataset.name for i in child.inputs.dataset_inputs} == {"synthetic-train", "synthetic-val"}
        arts = {a.path for a in client.list_artifacts(child.info.run_id, "diagnostics")}
        assert "diagnostics/top_periods.csv" in arts
        assert "diagnostics/fft_report.html" not in arts  # ~5 MB each: final runs only
        # no model bundle per trial: only the final run logs (and registers) one
        assert not client.search_logged_models([child.info.experiment_id],
                                               filter_string=f"source_run_id = '{child.info.run_id}'")
    assert parent.data.tags["tdml.role"] == "study" and parent.info.status == "FINISHED"
    assert study.metric_names == ["val_mse"]  # optuna-dashboard labels the objective
    assert "optuna-dashboard" in parent.data.tags["mlflow.note.content"]
    exp = client.get_experiment(parent.info.experiment_id)
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"


def test_parent_has_best_params_values_and_offline_plots(e2e):
    client, parent = e2e["client"], e2e["first"]
    study = optuna.load_study(study_name="e2e", storage=e2e["storage"])
    best = min((t for t in study.trials if t.number < 3), key=lambda t: t.value)
    p, m = parent.data.params, parent.data.metrics
    assert m["best_val_mse"] == pytest.approx(best.value) and m["best_trial"] == best.number
    assert float(p["best.train.lr"]) == pytest.approx(best.params["train.lr"])
    assert p["best.loss.kl_mode"] == best.params["loss.kl_mode"]
    plots = {a.path for a in client.list_artifacts(parent.info.run_id, "plots")}
    assert {"plots/history.html", "plots/param_importances.html", "plots/parallel_coordinate.html"} <= plots
    html = Path(mlflow.artifacts.download_artifacts(run_id=parent.info.run_id,
                                                    artifact_path="plots/history.html")).read_text()
    assert html.count("* plotly.js v") == 1 and not re.search(r"<script[^>]*src=", html)


def test_test_split_is_read_only_for_the_best_trial(e2e):
    client, parent = e2e["client"], e2e["first"]
    finals = [r for r in runs(client, "final", "e2e") if r.data.tags["mlflow.parentRunId"] == parent.info.run_id]
    assert len(finals) == 1
    f = finals[0]
    best = int(parent.data.metrics["best_trial"])
    assert f.data.tags["tdml.trial_number"] == str(best)
    assert "test_mse" in f.data.metrics
    assert "diagnostics/fft_report.html" in {a.path for a in client.list_artifacts(f.info.run_id, "diagnostics")}
    assert client.search_logged_models([f.info.experiment_id], filter_string=f"source_run_id = '{f.info.run_id}'")
    # the study run carries the comparison report; the final run is in it, search trials are not
    import pandas as pd

    report = pd.read_csv(client.download_artifacts(parent.info.run_id, "report/report.csv"))
    assert f.info.run_id in set(report.run_id) and not set(report.role) - {"teacher", "student"}
    # the gate uses the re-run's own validation score (exact reproduction: the parallel-trials test)
    assert parent.data.metrics["final_best_val_mse"] == pytest.approx(f.data.metrics["best_val_mse"])
    assert parent.data.metrics["final_test_mse"] == pytest.approx(f.data.metrics["test_mse"])
    tested = [r for r in runs(client, study="e2e") if "test_mse" in r.data.metrics]
    assert {r.data.tags["tdml.role"] for r in tested} == {"final"}


def test_promotion_gate_promotes_a_better_candidate(e2e):
    parent = e2e["first"]
    decision = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="promotion.json")).read_text())
    assert decision["promoted"] is True
    assert decision["champion_version"] == e2e["bad_champion"].version
    assert decision["candidate_value"] < decision["champion_value"]
    assert e2e["after_first"].version == decision["candidate_version"] != e2e["bad_champion"].version
    assert parent.data.tags["tdml.promotion"] == "promoted"
    assert parent.data.metrics["promotion_champion_value"] == pytest.approx(decision["champion_value"])


def test_promotion_gate_keeps_a_better_champion_and_resume_adds_trials(e2e):
    client, parent = e2e["client"], e2e["second"]
    study = optuna.load_study(study_name="e2e", storage=e2e["storage"])
    assert len(study.trials) == 4  # resumed: 3 + 1, same study
    decision = json.loads(Path(mlflow.artifacts.download_artifacts(
        run_id=parent.info.run_id, artifact_path="promotion.json")).read_text())
    assert decision["promoted"] is False and "does not beat" in decision["reason"]
    assert decision["candidate_value"] >= decision["champion_value"]
    now = client.get_model_version_by_alias(STUDENT, "champion")
    assert now.version == e2e["good_champion"].version  # never silently overwritten
    cand = client.get_model_version(STUDENT, decision["candidate_version"])
    assert cand.tags["tdml.promotion"] == "rejected"  # registered, but the alias did not move
    assert parent.data.tags["tdml.promotion"] == "kept"


def test_missing_teacher_fails_the_study_run_before_any_trial(tmp_path):
    with teacher_store(tmp_path) as client:
        spec = write_spec(tmp_path / "s.yaml", tiny_spec("noteacher", teacher="models:/nope@champion", plots=False))
        storage = f"sqlite:///{tmp_path / 'optuna.db'}"
        assert main(["tune", "--study", str(spec), "--storage", storage]) == 2
        parent = runs(client, "study", "noteacher")[-1]
        assert parent.info.status == "FAILED" and "cannot be resolved" in parent.data.tags["tdml.error"]
        assert optuna.load_study(study_name="noteacher", storage=storage).trials == []


def test_cli_bad_spec_exits_2_with_a_failed_run_and_no_storage(tmp_path, capsys):
    with teacher_store(tmp_path) as client:
        raw = tiny_spec("badcli", search_space={"loss": {"alpha": {"low": 2.0, "high": 1.0}}})
        spec = write_spec(tmp_path / "bad.yaml", raw)
        storage = f"sqlite:///{tmp_path / 'optuna.db'}"
        assert main(["tune", "--study", str(spec), "--storage", storage]) == 2
        assert "bad range: low 2.0 must be <= high 1.0" in capsys.readouterr().err
        failed = [r for r in runs(client, "study") if r.data.tags.get("tdml.study_file") == str(spec)]
        assert failed[-1].info.status == "FAILED" and "bad range" in failed[-1].data.tags["tdml.error"]
        assert not (tmp_path / "optuna.db").exists()


# ----------------------------------------------------------------------------- pruning
def test_aggressive_median_pruner_prunes_a_bad_trial(tmp_path):
    raw = tiny_spec("prune", pruner={"name": "median", "n_startup_trials": 1, "n_warmup_steps": 0},
                    finalize=False, plots=False)
    raw["search_space"] = {"train": {"lr": {"type": "float", "low": 1e-7, "high": 3e-2, "log": True}}}
    raw["base"]["train"]["epochs"] = 4
    with teacher_store(tmp_path) as client:
        spec = spec_from_dict(raw)
        storage = f"sqlite:///{tmp_path / 'optuna.db'}"
        study = tuning.create_or_load_study(spec, storage)
        study.enqueue_trial({"train.lr": 2e-2})  # a good trial sets the median ...
        study.enqueue_trial({"train.lr": 1e-7})  # ... which this one cannot reach after epoch 1
        r = tuning.tune(spec, n_trials=2, storage=storage)
        assert r.n_trials["complete"] == 1 and r.n_trials["pruned"] == 1
        pruned = [t for t in optuna.load_study(study_name="prune", storage=storage).trials
                  if t.state == TrialState.PRUNED][0]
        assert pruned.params["train.lr"] == pytest.approx(1e-7)
        assert len(pruned.intermediate_values) < 4  # stopped before its last epoch
        run = client.get_run(pruned.user_attrs["mlflow_run_id"])
        assert run.info.status == "KILLED" and run.data.tags["tdml.pruned"] == "true"
        assert "tdml.error" not in run.data.tags
        assert len(client.get_metric_history(run.info.run_id, "val_mse")) == len(pruned.intermediate_values)
        assert runs(client, "final", "prune") == []  # finalize=false: no test evaluation


# ----------------------------------------------------------------------------- multi-objective
def test_multi_objective_study_has_a_pareto_front_and_tests_its_trials(tmp_path):
    raw = tiny_spec("pareto", objectives=[{"metric": "val_mse", "direction": "minimize"},
                                          {"metric": "n_params", "direction": "minimize"}],
                    sampler={"name": "nsga2", "seed": 0}, n_final=2, promotion={"enabled": False})
    raw["search_space"] = {"student_params": {"d_model": {"type": "categorical", "choices": [4, 64]}}}
    with teacher_store(tmp_path) as client:
        spec = spec_from_dict(raw)
        storage = f"sqlite:///{tmp_path / 'optuna.db'}"
        study = tuning.create_or_load_study(spec, storage)
        study.enqueue_trial({"student_params.d_model": 4})
        study.enqueue_trial({"student_params.d_model": 64})
        r = tuning.tune(spec, n_trials=2, storage=storage)
        front = {t.number for t in optuna.load_study(study_name="pareto", storage=storage).best_trials}
        assert [b["number"] for b in r.best] and {b["number"] for b in r.best} == front
        assert len(r.finals) == min(2, len(front)) and {f["number"] for f in r.finals} <= front
        assert all("test_mse" in f["metrics"] for f in r.finals) and r.promotion is None
        values = {b["number"]: b["values"] for b in r.best}
        for f in r.finals:  # sequential trials: the test re-run reproduces the trial's validation score
            assert f["metrics"]["best_val_mse"] == pytest.approx(values[f["number"]]["val_mse"], rel=1e-5)
        parent = client.get_run(r.parent_run_id)
        plots = {a.path for a in client.list_artifacts(r.parent_run_id, "plots")}
        assert {"plots/pareto_front.html", "plots/history.html"} <= plots
        # the parent's "best" is the Pareto trial with the lowest first objective
        assert parent.data.metrics["best_val_mse"] == pytest.approx(min(b["values"]["val_mse"] for b in r.best))


# ----------------------------------------------------------------------------- parallel trials
def test_worker_processes_give_the_numbers_of_sequential_trials(tmp_path):
    """Two trials in two worker processes (n_jobs=2) give bit-identical validation scores and
    per-epoch training losses to the same parameters run one after the other in one process;
    each worker samples from its own seed, so the two draw different parameters."""

    def trials(client, name, n_jobs, enqueue=()):
        spec = spec_from_dict(tiny_spec(name, finalize=False, plots=False, sampler={"name": "random", "seed": 3}))
        storage = f"sqlite:///{tmp_path / f'{name}.db'}"
        study = tuning.create_or_load_study(spec, storage)
        for p in enqueue:
            study.enqueue_trial(p)
        r = tuning.tune(spec, n_trials=2, storage=storage, n_jobs=n_jobs)
        out = {}
        for t in optuna.load_study(study_name=name, storage=storage).trials:
            assert t.state == TrialState.COMPLETE
            losses = [m.value for m in client.get_metric_history(t.user_attrs["mlflow_run_id"], "train_loss")]
            assert client.get_run(t.user_attrs["mlflow_run_id"]).data.tags["mlflow.parentRunId"] == r.parent_run_id
            out[tuple(sorted(t.params.items()))] = (t.value, losses)
        return out

    with teacher_store(tmp_path) as client:
        parallel = trials(client, "repro-parallel", n_jobs=2)
        sequential = trials(client, "repro-sequential", n_jobs=1, enqueue=[dict(k) for k in parallel])
    assert len(parallel) == 2 and sequential == parallel  # two distinct parameter sets, reproduced


def test_trials_are_shared_out_over_at_most_n_trials_workers():
    from tdml.tuning.workers import shares

    assert shares(5, 2) == [3, 2] and shares(1, 4) == [1] and shares(6, 3) == [2, 2, 2] and shares(4, 1) == [4]


def test_a_worker_error_is_the_callers_error_and_the_study_run_fails(tmp_path):
    """A trial that raises a TdmlError in a worker process (here: data that does not exist, found
    only when a run loads it) ends the caller with that error, type and message, and a FAILED
    study run."""
    spec = spec_from_dict(tiny_spec("worker-error", finalize=False, plots=False,
                                    data={"data_path": str(tmp_path / "missing.csv")}))
    storage = f"sqlite:///{tmp_path / 'w.db'}"
    with teacher_store(tmp_path) as client:
        with pytest.raises(DataError, match="missing.csv"):
            tuning.tune(spec, n_trials=2, storage=storage, n_jobs=2)
        study_run = runs(client, "study", "worker-error")[-1]
    assert study_run.info.status == "FAILED" and "missing.csv" in study_run.data.tags["tdml.error"]
