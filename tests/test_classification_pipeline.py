"""Classification end to end through the real MLflow SQLite store and registry (docs/methods.md §2):
UCR teacher -> alias -> every distillation method -> registered student; teacher selection
by validation AUC-PRC; incompatible teachers and unknown datasets refused with a reason.

ItalyPowerDemand from ../shared/data/ucr (skipped when absent): 67 training series, so a
1–2 epoch run of the 3 x 100 LSTM takes about a second.
"""

from __future__ import annotations

import re

import pytest

from tdml import tracking
from tdml.cli import main
from tdml.models.lstm import LSTMStudent
from tdml.selection import select_teacher

from conftest import SHARED_DATA, runs_of as _runs, tiny_teacher_args, use_store

DATASET = "ucr:ItalyPowerDemand"
TEACHER = "ucr-italypowerdemand-lstm_teacher"
URI = f"models:/{TEACHER}@champion"
STUDENT = f"{TEACHER}-student-lstm_student"
TERMS = {"none": (), "kd": ("kd",), "fitnet": ("fitnet",), "rkd": ("rkd_distance", "rkd_angle"), "at": ("at",),
         "dkd": ("dkd_target", "dkd_nontarget"), "dt2w": ("dt2w",), "memkd": ("mem_short", "mem_long")}
QUICK = ["--no-progress", "--set", "tracking.latency_repeats=2"]


def _distill(method: str, *extra: str) -> list[str]:
    return ["distill", "--teacher", URI, "--method", method, "--model", "lstm_student", "--epochs", "2",
            *QUICK, *extra]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    if not (SHARED_DATA / "ucr" / "ItalyPowerDemand").is_dir():
        pytest.skip(f"UCR data not found at {SHARED_DATA / 'ucr'}")
    with use_store(tmp_path_factory.mktemp("mlflow_cls"), TDML_DATA_DIR=str(SHARED_DATA)) as client:
        assert main(["train-teacher", "--dataset", DATASET, "--model", "lstm_teacher", "--epochs", "2", *QUICK]) == 0
        for method in TERMS:
            assert main(_distill(method)) == 0, method
        yield client


def _student_run(client, method):
    return next(r for r in _runs(client, "student", "FINISHED") if r.data.params.get("config.method") == method)


def test_teacher_is_registered_under_the_ucr_name(store):
    mv = store.get_model_version_by_alias(TEACHER, "champion")
    run = store.get_run(mv.run_id)
    m, p = run.data.metrics, run.data.params
    assert {"test_auc_prc", "test_auc_roc", "test_accuracy", "test_ce", "best_val_auc_prc", "n_params",
            "cpu_latency_ms_b32"} <= set(m)
    assert 0 <= m["test_auc_prc"] <= 1 and 0 <= m["test_accuracy"] <= 1
    assert p["config.data.seq_len"] == "100"  # resampled to the default length
    assert p["config.train.lr"] == "0.001" and p["config.train.lr_schedule"] == "constant"  # defaults.yaml
    assert len(store.get_metric_history(run.info.run_id, "val_ce")) == 2
    model, meta, _ = tracking.load_model(URI)
    assert meta["task"] == "classify" and model.n_parameters() == m["n_params"]


@pytest.mark.parametrize("method", list(TERMS))
def test_every_method_logs_its_terms_per_epoch_and_registers_the_student(store, method):
    run = _student_run(store, method)
    rid, m, p, tags = run.info.run_id, run.data.metrics, run.data.params, run.data.tags
    for term in ("gt", "loss", *TERMS[method]):
        hist = store.get_metric_history(rid, f"train_{term}")
        assert [h.step for h in hist] == [0, 1], (method, term)
    assert {"test_auc_prc", "test_auc_roc", "test_accuracy", "teacher_test_auc_prc", "param_ratio"} <= set(m)
    assert m["n_params"] < m["teacher_n_params"] / 100  # 1 x 8 vs 3 x 100
    # the student's training defaults apply when distilling (tdml/models/defaults.yaml)
    assert p["config.train.lr"] == "0.003" and p["config.train.patience"] == "50"
    mv_t = store.get_model_version_by_alias(TEACHER, "champion")
    assert tags["tdml.teacher_name"] == TEACHER and tags["tdml.teacher_version"] == str(mv_t.version)
    assert tags["tdml.registered_model"] == STUDENT
    smv = store.get_model_version(STUDENT, tags["tdml.registered_version"])
    assert smv.run_id == rid


def test_latest_student_loads_from_the_registry(store):
    student, meta, _ = tracking.load_model(f"models:/{STUDENT}@champion")
    assert isinstance(student, LSTMStudent) and meta["teacher"]["name"] == TEACHER


@pytest.mark.parametrize("uri", [URI, f"models:/{STUDENT}@champion"])
def test_logged_classifiers_have_a_signature_and_an_input_example(store, uri):
    """[B, L, C] float32 in, logits [B, K] out; the example is one window; another length is
    refused naming the expected shape."""
    import mlflow
    import numpy as np
    from mlflow.exceptions import MlflowException

    pf = mlflow.pyfunc.load_model(uri)
    assert pf.metadata.get_input_schema().inputs[0].shape == (-1, 100, 1)
    assert pf.metadata.get_output_schema().inputs[0].shape == (-1, 2)  # ItalyPowerDemand: 2 classes
    example = pf.input_example
    assert example.shape == (1, 100, 1) and example.dtype == np.float32
    assert pf.predict(example).shape == (1, 2)
    with pytest.raises(MlflowException, match=re.escape("does not match expected shape (-1, 100, 1)")):
        pf.predict(np.zeros((1, 24, 1), np.float32))


def test_memkd_pair_seed_follows_the_run_seed(store):
    default = _student_run(store, "memkd").data.params  # the module's run, default train.seed
    assert default["loss.seed"] == default["config.train.seed"] != "7"
    assert main(_distill("memkd", "--epochs", "1", "--seed", "7")) == 0
    seeded = _runs(store, "student", "FINISHED")[0]
    assert seeded.data.params["loss.seed"] == "7"
    assert main(_distill("memkd", "--epochs", "1", "--seed", "7", "--set", "loss.seed=3")) == 0
    assert _runs(store, "student", "FINISHED")[0].data.params["loss.seed"] == "3"  # explicit wins


def test_memkd_on_cell_states_trains_and_logs_its_choice(store):
    """loss.state=cell (an issue-23 option): the run reads both LSTMs' cell-state sequences."""
    terms = {}
    for state in ("hidden", "cell", "hidden"):
        assert main(_distill("memkd", "--epochs", "1", "--set", f"loss.state={state}")) == 0
        run = _runs(store, "student", "FINISHED")[0]
        assert run.data.params["loss.state"] == state
        terms.setdefault(state, []).append(run.data.metrics["train_mem_short"])
    assert terms["hidden"][0] == terms["hidden"][1]  # deterministic, so the difference is the state's
    assert terms["cell"][0] > 0 and terms["cell"][0] != terms["hidden"][0]


def test_best_of_seeds_teacher_selection_uses_validation_auc_prc(store):
    raw = {"data": {"dataset": DATASET}, "model": "lstm_teacher",
           "train": {"epochs": 1, "progress": False}, "tracking": {"latency_repeats": 2}}
    champion = store.get_model_version_by_alias(TEACHER, "champion").version
    sel = select_teacher(raw, [1, 2, 3], metric="auc_prc", mode="max", alias="best")
    assert sel.uri == f"models:/{TEACHER}@best" and set(sel.scores) == {1, 2, 3}
    assert sel.scores[sel.best_seed] == max(sel.scores.values())
    for seed, s in sel.runs.items():
        logged = store.get_run(s.run_id).data.metrics["best_val_auc_prc"]
        assert logged == pytest.approx(sel.scores[seed])
    mv = store.get_model_version_by_alias(TEACHER, "best")
    assert mv.version == sel.best_version and mv.run_id == sel.runs[sel.best_seed].run_id
    assert "best_val_auc_prc" in mv.tags["tdml.selected_by"]
    assert store.get_run(mv.run_id).data.tags["tdml.selected"] == "true"
    assert store.get_model_version_by_alias(TEACHER, "champion").version == champion  # untouched


def _fails(store, capsys, args, message):
    n_failed = len(_runs(store, status="FAILED"))
    assert main(args) == 2
    err = capsys.readouterr().err
    assert re.search(message, err), err
    failed = _runs(store, status="FAILED")
    assert len(failed) == n_failed + 1 and re.search(message, failed[0].data.tags["tdml.error"])


def test_forecasting_teacher_is_refused_for_a_ucr_dataset(store, capsys):
    assert main(tiny_teacher_args()) == 0  # synthetic itransformer, L48 H12
    args = ["distill", "--teacher", "models:/synthetic-itransformer-L48-H12@champion", "--dataset", DATASET,
            "--model", "lstm_student", "--method", "memkd", "--epochs", "1", *QUICK]
    _fails(store, capsys, args, "task: teacher forecast, data classify")


def test_teacher_with_another_resample_length_is_refused(store, capsys):
    _fails(store, capsys, _distill("memkd", "--seq-len", "50"), "seq_len: teacher 100, requested 50")


def test_unknown_ucr_dataset_lists_the_available_ones(store, capsys):
    args = ["train-teacher", "--dataset", "ucr:Nope", "--model", "lstm_teacher", "--epochs", "1", *QUICK]
    _fails(store, capsys, args, r"'Nope' not found.*available: ItalyPowerDemand, MoteStrain, (ShapesAll, )?SwedishLeaf, Trace")


def test_a_forecasting_model_on_a_ucr_dataset_is_refused(store, capsys):
    args = ["train-teacher", "--dataset", DATASET, "--model", "itransformer", "--epochs", "1", *QUICK]
    _fails(store, capsys, args, "is a forecast model but dataset .* is a classify dataset")


def test_memkd_unset_seed_resolves_to_the_torch_seed_in_force():
    import torch

    from tdml.losses.memkd import MemKDConfig, MemKDLoss

    torch.manual_seed(11)
    a = MemKDLoss(MemKDConfig(long_pairs=4))
    torch.manual_seed(12)
    b = MemKDLoss(MemKDConfig(long_pairs=4))
    assert (a.cfg.seed, b.cfg.seed) == (11, 12)
    assert not torch.equal(torch.randint(0, 10**6, (8,), generator=a.generator),
                           torch.randint(0, 10**6, (8,), generator=b.generator))
    assert MemKDLoss(MemKDConfig(seed=3)).cfg.seed == 3


def test_teacher_alone_picks_the_classification_student_and_method(store):
    """`distill --teacher <an LSTM classifier>` with no student or method named: the teacher's
    task decides (lstm_student + memkd), not the forecasting defaults."""
    assert main(["distill", "--teacher", URI, "--epochs", "1", "--set", "tracking.register=false", *QUICK]) == 0
    run = _runs(store, "student", "FINISHED")[0]
    p = run.data.params
    assert (p["config.student"], p["config.method"]) == ("lstm_student", "memkd")
    assert (p["student"], p["method"]) == ("lstm_student", "memkd")
    assert p["config.train.lr"] == "0.003"  # the table's lstm_student row
