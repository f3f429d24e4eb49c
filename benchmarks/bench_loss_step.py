"""CPU time of one TimeDistill training step against a plain one, at a study's shapes, by part.

No registry needed: the teacher is a freshly initialised model of the study's architecture
(op timing does not depend on its weights) whose train-split outputs are cached in memory, as
a distill run with ``teacher_cache`` on reads them. Per round, the plain step (student, MSE,
backward, fused Adam) and the distilled step (``tdml.train.Distillation``: cache lookup, student,
regressor, the four terms, backward, Adam) run on the same batches, alternating, with a third
step, the *floor*: student, regressor and one MSE per distilled target instead of the four terms
-- what any TimeDistill step computes however cheap its terms are; CPU time
(``time.process_time``), median over rounds. Then each part alone. Logged as an MLflow run
(experiment ``tdml-benchmarks``). To compare two trees, run the script in each, back to back
(``PYTHONPATH=<other checkout> python benchmarks/bench_loss_step.py``).

    OMP_NUM_THREADS=1 python benchmarks/bench_loss_step.py                 # the synthetic study
    TDML_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_loss_step.py \\
        --dataset etth1 --seq-len 720 --pred-len 96 --d-model 512
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

import torch

from tdml import tracking
from tdml.config import DataConfig, TrainConfig
from tdml.contracts import run_model
from tdml.data import load_data
from tdml.data.batching import INDEX
from tdml.losses.timedistill import FEATURE_LOG_EPS, TimeDistillConfig, TimeDistillLoss, multi_period_loss, \
    multi_scale_loss
from tdml.models import build_model
from tdml.tasks import TASKS
from tdml.teacher_cache import teacher_outputs
from tdml.train import Distillation, Objective, Supervised, adam


class Floor(Objective):
    """Student + the method's regressor + one MSE per distilled target: the arithmetic every
    TimeDistill step does whatever its terms cost (a lower bound for timing, not a method)."""

    def __init__(self, student, loss: TimeDistillLoss, cached, task):
        super().__init__()
        self.student, self.regressor, self.cached, self.task = student, loss.regressor, cached, task
        self.s_feat, self.t_feat = loss.student_feature, loss.teacher_feature

    def terms(self, batch):
        s = run_model(self.student, batch)
        t = self.cached.lookup(batch[INDEX], batch["x"].device)
        hs, ht = s.features[self.s_feat], self.regressor(t.features[self.t_feat])
        mse = torch.nn.functional.mse_loss
        return {"loss": self.task.target_loss(s.pred, batch["y"]) + mse(s.pred, t.pred) + mse(hs, ht)}


def cpu_ms(fn, n: int) -> float:
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="synthetic")
    ap.add_argument("--seq-len", type=int, default=96)
    ap.add_argument("--pred-len", type=int, default=24)
    ap.add_argument("--teacher", default="itransformer")
    ap.add_argument("--d-model", type=int, default=128, help="the MLP student's width")
    ap.add_argument("--steps", type=int, default=60)
    ap.add_argument("--rounds", type=int, default=9)
    args = ap.parse_args()
    torch.manual_seed(0)
    data = load_data(DataConfig(dataset=args.dataset, seq_len=args.seq_len, pred_len=args.pred_len))
    task = TASKS.get("forecast")
    teacher = build_model(args.teacher, data.dims, {}).eval()
    student = build_model("mlp", data.dims, {"d_model": args.d_model})
    loss = TimeDistillLoss.from_models(TimeDistillConfig(), student, teacher)
    cached = teacher_outputs(teacher, "bench/1/run", data, "train", loss.teacher_features(), 32,
                             torch.device("cpu"), "memory")
    batches = [b for _, b in zip(range(args.steps), data.loader("train", 32, shuffle=True, seed=0))]

    def epoch(obj):
        opt = adam([p for p in obj.parameters() if p.requires_grad], TrainConfig(lr=1e-3))
        obj.train()

        def run():
            for b in batches:
                out = obj.terms(b)
                opt.zero_grad(set_to_none=True)
                out["loss"].backward()
                opt.step()
        return cpu_ms(run, 1) / len(batches)

    steps = {"plain": [], "distilled": [], "floor": []}
    for _ in range(args.rounds):
        steps["plain"].append(epoch(Supervised(copy.deepcopy(student), task)))
        steps["distilled"].append(epoch(Distillation(copy.deepcopy(student), teacher, copy.deepcopy(loss),
                                                     loss.weights(), task, 1.0, cached)))
        steps["floor"].append(epoch(Floor(copy.deepcopy(student), copy.deepcopy(loss), cached, task)))
    ms = {k: statistics.median(v) for k, v in steps.items()}

    b = batches[0]
    t = cached.lookup(b[INDEX], torch.device("cpu"))
    ht_in = t.features[loss.teacher_feature]
    ht = loss.regressor(ht_in).detach().requires_grad_()
    s = run_model(student, b)
    ps, hs = s.pred.detach().requires_grad_(), s.features["hidden"].detach().requires_grad_()
    c = loss.cfg
    parts = {
        "student forward + backward": lambda: run_model(student, b).pred.sum().backward(),
        "regressor forward + backward": lambda: loss.regressor(ht_in).sum().backward(),
        "prediction period": lambda: multi_period_loss(ps, t.pred, c.temperature, 1).backward(),
        "feature period": lambda: multi_period_loss(hs, ht, c.temperature, -1, log_eps=FEATURE_LOG_EPS).backward(),
        "prediction scale": lambda: multi_scale_loss(ps, t.pred, c.scales, 1).backward(),
        "feature scale": lambda: multi_scale_loss(hs, ht, c.scales, -1).backward(),
    }
    for name, fn in parts.items():
        fn()
        ms[name] = cpu_ms(fn, 200)
    lines = [f"{args.dataset} L={args.seq_len} H={args.pred_len}, MLP d={args.d_model}, teacher {args.teacher}, "
             f"batch 32, CPU ms per step (median of {args.rounds} rounds of {len(batches)} steps)",
             "| part | CPU ms |", "|---|---:|"] + [f"| {k} | {v:.2f} |" for k, v in ms.items()]
    lines.append(f"\ndistilled / plain step: **{ms['distilled'] / ms['plain']:.2f}x**; floor (student + "
                 f"regressor, no terms) / plain: **{ms['floor'] / ms['plain']:.2f}x**")
    print("\n".join(lines))
    with tracking.start_run("tdml-benchmarks", f"loss step · {args.dataset} L{args.seq_len}", "benchmark"):
        tracking.log_params({k.replace("_", "."): v for k, v in vars(args).items()})
        tracking.log_metrics({"ms_" + k.replace(" + ", "_").replace(" ", "_"): v for k, v in ms.items()})
        tracking.log_text("\n".join(lines), "loss_step.md")


if __name__ == "__main__":
    main()
