"""The published-protocol mode (issue 22 item 3): CondTSF's code schedule -- SGD experts on
stride-12 windows, two soft-label matching updates per iteration with a self-normalised loss,
DATM's sliding window, CondTSF instead of a matching step every third iteration, SGD evaluation
read at the last epoch -- beside ours, selected by one switch; and its pieces, each checked."""

from __future__ import annotations

import pytest
import torch
from mlflow.tracking import MlflowClient

from conftest import runs_of
from tdml.cli import main
from tdml.condensation.condenser import start_epoch_range
from tdml.condensation.methods import method_defaults
from tdml.config import DataConfig, TrainConfig
from tdml.data import load_data
from tdml.data.batching import INDEX
from tdml.models import build_model
from tdml.resolve import resolve_condense
from tdml.tasks import TASKS
from tdml.train import Supervised, fit, optimizer

SHRUNK = ["--set", "experts.n_experts=2", "--set", "experts.epochs=4", "--set", "experts.max_batches=4",
          "--set", "match.syn_steps=2", "--set", "match.max_start_epoch=1", "--set", "eval.epochs=3",
          "--set", "eval.select_epochs=2", "--set", "eval.select_every=3", "--set", "eval.seeds=[0,1]"]


def test_the_switch_sets_the_published_schedule_and_explicit_settings_still_win():
    ours, pub = resolve_condense({"method": "mtt+condtsf+datm+ftd"}), resolve_condense(
        {"method": "mtt+condtsf+datm+ftd", "protocol": "published", "match": {"iterations": 7}})
    assert (ours.experts.n_experts, ours.experts.optimizer, ours.match.updates) == (5, "adam", 1)
    e, m, c, ev = pub.experts, pub.match, pub.condtsf, pub.eval
    assert (e.n_experts, e.epochs, e.optimizer, e.lr, e.momentum, e.stride, e.sharpness) == (40, 80, "sgd", 5e-4, 0.9, 12, 2.0)
    assert (m.iterations, m.updates, m.syn_steps, m.expert_epochs, m.max_start_epoch) == (7, 2, 20, 2, 4)
    assert (m.inner_lr, m.learn_inner_lr, m.series_lr, m.soft_label, m.normalize, m.datm_mode) == \
        (3e-4, False, 0.1, 0.2, True, "slide")
    assert (c.every, c.replaces_match) == (3, True)
    assert (ev.models, ev.seeds, ev.optimizer, ev.lr, ev.batch_size, ev.epochs, ev.checkpoint) == \
        (["dlinear"], [0, 1, 2, 3, 4], "sgd", 1e-4, 64, 250, "last")
    assert "datm_mode" not in method_defaults("mtt", "published")["match"]  # a plug-in's value only with it


def test_datm_slides_its_window_as_condtsfs_code_does():
    cfg = resolve_condense({"method": "mtt+datm", "protocol": "published"})
    assert start_epoch_range(cfg, 0, 80) == (0, 2) and start_epoch_range(cfg, 39, 80) == (0, 2)
    assert start_epoch_range(cfg, 40, 80) == (1, 3) and start_epoch_range(cfg, 299, 80) == (7, 9)
    assert start_epoch_range(cfg, 10_000, 80) == (12, 16)  # at most [max + 8, max + 12)
    assert start_epoch_range(cfg, 10_000, 10) == (8, 9)  # and never past the trajectory's end
    widen = resolve_condense({"method": "mtt+datm"})
    assert start_epoch_range(widen, 0, 10)[0] == 0


def test_sgd_with_momentum_and_the_last_epoch_checkpoint():
    data = load_data(DataConfig(seq_len=16, pred_len=8))
    torch.manual_seed(0)
    model = build_model("dlinear", data.dims, {})
    cfg = TrainConfig(epochs=3, lr=1e-3, optimizer="sgd", momentum=0.9, checkpoint="last", patience=5,
                      max_batches=3, progress=False, lr_schedule="constant")
    opt = optimizer(list(model.parameters()), cfg)
    assert isinstance(opt, torch.optim.SGD) and opt.defaults["momentum"] == 0.9
    res = fit(Supervised(model, TASKS.get("forecast")), data.loader("train", 32, shuffle=True),
              data.loader("val", 256), cfg)
    assert res.best_epoch == 2 and res.best_val["mse"] == res.history[-1]["val_mse"]  # the last, not the best
    with pytest.raises(Exception, match="momentum is an sgd setting"):
        TrainConfig(momentum=0.5).validate()


def test_windows_at_a_stride_start_every_stride_rows():
    data = load_data(DataConfig(seq_len=16, pred_len=8))
    full, strided = data.loader("train", 1000), data.loader("train", 1000, stride=12)
    assert strided.n_windows == -(-full.n_windows // 12)
    batch = next(iter(strided))
    assert torch.equal(batch[INDEX][:4], torch.tensor([0, 12, 24, 36]))
    v = data.splits["train"].values
    assert torch.equal(batch["x"][3], v[36:52]) and torch.equal(batch["y"][3], v[52:60])


def test_a_published_protocol_run_end_to_end_and_a_bad_protocol(mlflow_store, capsys):
    base = ["condense", "--experiment", "pub", "--dataset", "synthetic", "--seq-len", "16", "--pred-len", "8",
            "--n-windows", "4", "--iterations", "6", "--seed", "5", *SHRUNK]
    assert main([*base, "--method", "mtt+condtsf+ddtime", "--protocol", "published"]) == 0
    client = MlflowClient()
    (run,) = [r for r in runs_of(client) if r.data.tags.get("tdml.role") == "condense"]
    p = run.data.params
    assert run.info.status == "FINISHED" and p["config.protocol"] == "published"
    assert (p["config.experts.optimizer"], p["config.eval.checkpoint"], p["config.match.updates"]) == ("sgd", "last", "2")
    match = [m.value for m in client.get_metric_history(run.info.run_id, "cond_match")]
    # optimised as the loss over its own value (always 1), logged before that: the raw matching loss
    assert match and all(v > 0 for v in match) and not all(v == pytest.approx(1.0) for v in match)
    # CondTSF replaced the matching step at iterations 3 and 6: no terms were logged for them
    import pandas as pd
    from tdml import tracking

    hist = pd.read_csv(tracking.download_run_artifacts(run.info.run_id, "report") / "loss_curves.csv")
    assert list(hist.iteration) == [0, 1, 3, 4]
    assert main([*base, "--protocol", "paper"]) == 2
    err = capsys.readouterr().err
    assert "unknown condensation protocol 'paper'; valid condensation protocols: ours, published" in err
    failed = [r for r in runs_of(client) if r.info.status == "FAILED"]
    assert len(failed) == 1 and "protocol 'paper'" in failed[0].data.tags["tdml.error"]
