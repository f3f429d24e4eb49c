"""What a distilled epoch costs against a plain one, and where a distill step's time goes.

1. Profile: on ``--steps`` training batches of the teacher's data, the wall time of the
   teacher forward, the student forward, each TimeDistill term and the backward pass
   (the frozen teacher's forward is what ``tdml.teacher_cache`` removes).
2. Side by side, in this process and back to back: the MLP alone (``method=none``), the MLP
   + TimeDistill recomputing the teacher every step (``teacher_cache=recompute``) and with
   the cache (``disk``: first run computes the entry, the second reads it), each for the
   same fixed number of epochs; seconds per epoch and whole-run wall time, as ratios to the
   plain run. Every run is logged in MLflow (experiment ``tdml-bench-cost``).
3. ``--variants linear lowrank bf16 ...``: instead of 1 and 2, each cheaper form of the method
   (issue 26) against plain in back-to-back pairs, ``--rounds`` passes, median ratio.

    TDML_DATA_DIR=../shared/data OMP_NUM_THREADS=1 python benchmarks/bench_distill_cost.py \
        --teacher models:/etth1-itransformer-L720-H96@champion --epochs 2
    ... --epochs 2 --rounds 3 --variants reference linear lowrank bf16 linear+bf16
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from collections import defaultdict

import torch
import torch.nn.functional as F

from tdml import tracking
from tdml.data import load_data
from tdml.losses import LOSSES
from tdml.config import TrainConfig
from tdml.data.batching import INDEX
from tdml.contracts import run_model
from tdml.losses.timedistill import FEATURE_LOG_EPS, multi_period_loss, multi_scale_loss
from tdml.models import build_model
from tdml.runs.distill import distill_in_run
from tdml.resolve import Layers, resolve_distill
from tdml.teacher_cache import teacher_outputs
from tdml.train import optimizer as adam


def profile(uri: str, steps: int) -> dict[str, float]:
    """Mean milliseconds per training step of each part of a TimeDistill step (cached and
    recomputed teacher side by side), and of a plain step (``plain:`` rows)."""
    teacher, meta, mv = tracking.load_model(uri)
    cfg = resolve_distill(Layers(explicit={"teacher": uri}), meta)
    data = load_data(cfg.data)
    student = build_model(cfg.student, data.dims, cfg.student_params)
    loss = LOSSES.get(cfg.method).from_models(LOSSES.get(cfg.method).Config(**cfg.loss), student, teacher)
    teacher.eval()
    cached = teacher_outputs(teacher, f"{mv.name}/{mv.version}/{mv.run_id}", data, "train", loss.teacher_features(),
                             cfg.data.batch_size, torch.device("cpu"), "disk")
    c = loss.cfg
    opt = adam([*student.parameters(), *loss.parameters()], TrainConfig(lr=1e-3))
    ms: dict[str, float] = defaultdict(float)

    def timed(name, fn):
        t = time.perf_counter()
        out = fn()
        ms[name] += (time.perf_counter() - t) * 1000 / steps
        return out

    batches = []
    for i, batch in enumerate(data.loader("train", cfg.data.batch_size, shuffle=True, seed=0)):
        if i == steps:
            break
        batches.append(batch)
    for batch in batches:  # the plain step: student, MSE, backward, Adam
        s = timed("plain: student forward", lambda: run_model(student, batch))
        gt = timed("plain: MSE", lambda: F.mse_loss(s.pred, batch["y"]))
        timed("plain: backward", gt.backward)
        timed("plain: optimizer step", opt.step)
        opt.zero_grad(set_to_none=True)
    for batch in batches:
        with torch.no_grad():
            timed("teacher forward (what the cache removes)", lambda: run_model(teacher, batch))
        t = timed("cache lookup", lambda: cached.lookup(batch[INDEX], torch.device("cpu")))
        s = timed("student forward", lambda: run_model(student, batch))
        gt = timed("MSE", lambda: F.mse_loss(s.pred, batch["y"]))
        ht = timed("regressor forward", lambda: loss.regressor(t.features[loss.teacher_feature]))
        hs = s.features[loss.student_feature]
        terms = {
            "pred_scale": timed("pred_scale", lambda: multi_scale_loss(s.pred, t.pred, c.scales, 1)),
            "pred_period": timed("pred_period", lambda: multi_period_loss(s.pred, t.pred, c.temperature, 1, c.kl_mode)),
            "feat_scale": timed("feat_scale", lambda: multi_scale_loss(hs, ht, c.scales, -1)),
            "feat_period": timed("feat_period", lambda: multi_period_loss(hs, ht, c.temperature, -1, c.kl_mode,
                                                                          FEATURE_LOG_EPS)),
        }
        total = gt + sum(loss.weights()[k] * v for k, v in terms.items())
        timed("backward", total.backward)
        timed("optimizer step", opt.step)
        opt.zero_grad(set_to_none=True)
    return dict(ms)


PLAIN = ("MLP alone (method=none)", {"method": "none"})
CACHED = ("MLP + TimeDistill, teacher cache (read from disk)", {"teacher_cache": "disk"})


def side_by_side(uri: str, epochs: int, experiment: str, rounds: int = 1) -> list[dict]:
    """The four runs once, then ``rounds - 1`` more (plain, cached) pairs back to back, so the
    per-epoch ratio can be read per pair (machine noise moves both runs of a pair alike)."""
    runs = [PLAIN,
            ("MLP + TimeDistill, teacher recomputed every step", {"teacher_cache": "recompute"}),
            ("MLP + TimeDistill, teacher cache (computed now)", {"teacher_cache": "disk"}),
            CACHED] + [PLAIN, CACHED] * (rounds - 1)
    rows = []
    for label, extra in runs:
        raw = {"teacher": uri, **extra, "train": {"epochs": epochs, "patience": epochs + 1, "progress": False},
               "tracking": {"register": False, "diagnostics": False}}
        t0 = time.perf_counter()
        with tracking.start_run(experiment, label, "student"):
            s = distill_in_run(raw)
        rows.append({"run": label, "wall_s": time.perf_counter() - t0, "train_s": s.metrics["train_seconds"],
                     "epochs": s.metrics["epochs_run"], "test_mse": s.metrics["test_mse"]})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--teacher", required=True)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--experiment", default="tdml-bench-cost")
    ap.add_argument("--rounds", type=int, default=1,
                    help="(plain, cached) pairs; >1 also prints the per-pair ratios and their median")
    ap.add_argument("--variants", nargs="*", choices=list(VARIANTS),
                    help="only the (plain, variant) pairs of these method variants (issue 26), --rounds passes")
    args = ap.parse_args()
    torch.manual_seed(0)
    if args.variants:
        print(variant_pairs(args.teacher, args.epochs, args.experiment, args.variants, args.rounds))
        return
    with tracking.start_run(args.experiment, "profile of one step", "benchmark"):
        prof = profile(args.teacher, args.steps)
        tracking.log_metrics({"ms_" + re.sub(r"[^A-Za-z0-9_]+", "_", k).strip("_"): v for k, v in prof.items()})
    plain = sum(v for k, v in prof.items() if k.startswith("plain:"))
    cached = sum(v for k, v in prof.items() if not k.startswith(("plain:", "teacher forward")))
    print(f"one training step ({args.steps} steps averaged, same batches), {args.teacher}")
    print("| part | ms per step | share of its step |\n|---|---:|---:|")
    for k, v in prof.items():
        print(f"| {k} | {v:.2f} | {v / (plain if k.startswith('plain:') else cached):.0%} |")
    print(f"plain step {plain:.1f} ms; distilled step {cached:.1f} ms with the cache ({cached / plain:.2f}x), "
          f"{cached + prof['teacher forward (what the cache removes)']:.1f} ms recomputing the teacher")
    rows = side_by_side(args.teacher, args.epochs, args.experiment, args.rounds)
    base = rows[0]
    print(f"\n{args.epochs} epochs each, back to back in one process")
    print("| run | s per epoch | × plain | whole run s | × plain | test MSE |\n|---|---:|---:|---:|---:|---:|")
    for r in rows:
        per = r["train_s"] / r["epochs"]
        print(f"| {r['run']} | {per:.1f} | {per / (base['train_s'] / base['epochs']):.2f} | {r['wall_s']:.0f} | "
              f"{r['wall_s'] / base['wall_s']:.2f} | {r['test_mse']:.4f} |")
    if args.rounds > 1:
        with tracking.start_run(args.experiment, f"per-epoch ratio, {args.rounds} pairs", "benchmark"):
            print(pair_ratios(rows))


# the cheaper forms of issue 26's method decision, each measured in (plain, variant) pairs
VARIANTS = {
    "reference": {},
    "linear": {"loss": {"regressor": "linear"}},
    "lowrank": {"loss": {"regressor": "lowrank", "regressor_rank": 64}},
    "bf16": {"train": {"precision": "bf16"}},
    "linear+bf16": {"loss": {"regressor": "linear"}, "train": {"precision": "bf16"}},
    "lowrank+bf16": {"loss": {"regressor": "lowrank", "regressor_rank": 64}, "train": {"precision": "bf16"}},
}


def variant_pairs(uri: str, epochs: int, experiment: str, names: list[str], rounds: int) -> str:
    """Per-epoch ratio to plain of each variant (cache read from disk), in ``rounds`` passes of
    (plain, variant 1, plain, variant 2, ...) back to back, so each ratio's plain run is its
    neighbour; the median over passes is the figure."""
    ratios: dict[str, list[float]] = {n: [] for n in names}
    for _ in range(rounds):
        for name in names:
            pair = []
            for label, extra in (PLAIN, (f"MLP + TimeDistill, {name}", {"teacher_cache": "disk", **VARIANTS[name]})):
                raw = {"teacher": uri, **extra,
                       "train": {"epochs": epochs, "patience": epochs + 1, "progress": False, **extra.get("train", {})},
                       "tracking": {"register": False, "diagnostics": False, "log_model": False}}
                with tracking.start_run(experiment, label, "student"):
                    s = distill_in_run(raw)
                pair.append(s.metrics["train_seconds"] / s.metrics["epochs_run"])
            ratios[name].append(pair[1] / pair[0])
    with tracking.start_run(experiment, f"per-epoch ratio of each variant, {rounds} passes", "benchmark"):
        tracking.log_metrics({f"median_epoch_ratio_{re.sub(r'[^a-z0-9]+', '_', n)}": statistics.median(v)
                              for n, v in ratios.items()})
    lines = ["| variant | per-epoch ratio to plain, each pass | median |", "|---|---|---:|"]
    lines += [f"| {n} | {', '.join(f'{r:.2f}' for r in v)} | **{statistics.median(v):.2f}×** |"
              for n, v in ratios.items()]
    return "\n".join(lines)


def pair_ratios(rows: list[dict]) -> str:
    """Per-epoch and whole-run ratio of each (plain, cached) pair: rows 0 and 3, then 4-5, 6-7, ..."""
    pairs = [(rows[0], rows[3])] + [(rows[i], rows[i + 1]) for i in range(4, len(rows) - 1, 2)]
    epoch = [(c["train_s"] / c["epochs"]) / (p["train_s"] / p["epochs"]) for p, c in pairs]
    whole = [c["wall_s"] / p["wall_s"] for p, c in pairs]
    tracking.log_metrics({"median_epoch_ratio": statistics.median(epoch), "median_run_ratio": statistics.median(whole)})
    return (f"\nper pair, cached distilled / plain: per epoch {', '.join(f'{r:.2f}' for r in epoch)} "
            f"(median **{statistics.median(epoch):.2f}x**); whole run {', '.join(f'{r:.2f}' for r in whole)} "
            f"(median {statistics.median(whole):.2f}x)")


if __name__ == "__main__":
    main()
