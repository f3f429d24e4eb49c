"""Learning-rate schedules (issue 23): plateau and step decay from any initial lr, applied by the
one training engine and visible in the run's per-epoch ``lr``; bad settings refused before
training with the valid choices, exit 2 and a FAILED run."""

from __future__ import annotations

import pytest
from mlflow.tracking import MlflowClient

from conftest import SHARED_DATA, runs_of, tiny_teacher_args
from tdml.cli import main


def _lrs(client, run):
    return [m.value for m in sorted(client.get_metric_history(run.info.run_id, "lr"), key=lambda m: m.step)]


def test_step_decay_is_what_the_run_trains_with(mlflow_store):
    args = tiny_teacher_args(epochs=5, lr=0.01)
    assert main([*args, "--set", "train.lr_schedule=step", "--set", "train.lr_step=2", "--set",
                 "train.lr_factor=0.1", "--set", "train.patience=10"]) == 0
    client = MlflowClient()
    (run,) = runs_of(client, "teacher")
    assert _lrs(client, run) == pytest.approx([0.01, 0.01, 0.001, 0.001, 1e-4])


def test_plateau_decays_a_classification_run_from_the_published_initial_rate(mlflow_store, monkeypatch):
    if not (SHARED_DATA / "ucr" / "ItalyPowerDemand").is_dir():
        pytest.skip(f"UCR data not found at {SHARED_DATA / 'ucr'}")
    monkeypatch.setenv("TDML_DATA_DIR", str(SHARED_DATA))
    # MemKD's student: "initial" lr 0.1 (the paper), decayed whenever validation CE stalls
    assert main(["train-teacher", "--dataset", "ucr:ItalyPowerDemand", "--model", "lstm_student", "--epochs", "30",
                 "--lr", "0.1", "--no-progress", "--set", "train.lr_schedule=plateau", "--set", "train.lr_patience=1",
                 "--set", "train.patience=30", "--set", "tracking.latency_repeats=2"]) == 0
    client = MlflowClient()
    (run,) = runs_of(client, "teacher")
    lrs, ce = _lrs(client, run), [m.value for m in sorted(client.get_metric_history(run.info.run_id, "val_ce"),
                                                          key=lambda m: m.step)]
    assert lrs[0] == 0.1 and min(lrs) < 0.1 and all(b <= a for a, b in zip(lrs, lrs[1:]))
    lr, best, bad = 0.1, float("inf"), 0  # replay the rule on the logged validation CE
    for e in range(len(lrs)):
        assert lrs[e] == pytest.approx(lr), (e, ce[:e + 1], lrs[:e + 1])
        bad, best = (0, ce[e]) if ce[e] < best else (bad + 1, best)
        if bad > 1:
            lr, bad = lr * 0.5, 0


@pytest.mark.parametrize("override, message", [
    ("train.lr_schedule=exponential", "'type1', 'cosine', 'constant', 'step', 'plateau'"),
    ("train.lr_factor=1.0", "lr_factor must be in (0, 1) (the lr decays), got 1.0"),
    ("train.lr_patience=0", "lr_patience must be >= 1 epoch, got 0"),
    ("train.lr_step=0", "lr_step must be >= 1 epoch, got 0"),
])
def test_bad_schedule_settings_fail_before_training(mlflow_store, capsys, override, message):
    assert main([*tiny_teacher_args(), "--set", override]) == 2
    err = capsys.readouterr().err
    assert message in err, err
    (run,) = runs_of(MlflowClient(), "teacher")
    assert run.info.status == "FAILED" and "n_params" not in run.data.metrics  # nothing trained


def test_plateau_with_an_early_stop_that_comes_first_is_refused(mlflow_store, capsys):
    assert main([*tiny_teacher_args(), "--set", "train.lr_schedule=plateau", "--set", "train.patience=3"]) == 2
    assert "patience (3) must exceed lr_patience + 1 (11)" in capsys.readouterr().err
