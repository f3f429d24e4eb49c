"""Learning curves of the MemKD benchmark's final runs, per method: what a table row hides.

Reads the final runs (``memkd_protocol.finished_finals``) of one dataset from a bench_memkd store
and summarises, per method over its seeds: validation AUC-PRC at fixed epochs (what a pruner
sees at its checks), best and last epoch, how many seeds hit the epoch cap (still improving),
and the distillation terms' share of the training loss at the first and the best epoch
(``(train_loss - train_gt) / train_loss``: how much the teacher actually pulls). Writes
``<out>/curves_<dataset>.csv`` (every epoch of every run) and ``curves_<dataset>.md``, and logs
both as an MLflow run (experiment ``tdml-benchmarks``) in the same store.

    MLFLOW_TRACKING_URI=sqlite:///$PWD/benchmarks/results/memkd_swl_nopruner/mlflow.db \\
      python benchmarks/memkd_curves.py --dataset SwedishLeaf --out benchmarks/results/memkd_swl_nopruner
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import mlflow
from mlflow.tracking import MlflowClient

from memkd_protocol import finished_finals
from tdml import tracking

CHECKS = (25, 50, 100, 200, 300, 400)  # epochs (0-based steps) at which the curves are read
CURVES = ("val_auc_prc", "val_ce", "train_loss", "train_gt")


def final_runs(client: MlflowClient, dataset: str, experiment: str | None):
    exps = [client.get_experiment_by_name(experiment)] if experiment else client.search_experiments()
    out: dict[str, dict[int, object]] = {}
    for _, ds, method, seed, r in finished_finals(client, [e.experiment_id for e in exps if e is not None]):
        if ds == dataset:
            out.setdefault(method, {}).setdefault(seed, r)  # newest first: keep it
    return out


def curves(client: MlflowClient, run) -> dict[str, dict[int, float]]:
    return {m: {p.step: p.value for p in client.get_metric_history(run.info.run_id, m)} for m in CURVES}


def _mean(xs):
    xs = [x for x in xs if x is not None]
    return statistics.fmean(xs) if xs else None


def _share(c: dict, epoch: int):
    loss, gt = c["train_loss"].get(epoch), c["train_gt"].get(epoch)
    return None if loss is None or gt is None or loss == 0 else (loss - gt) / loss


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--experiment", default=None, help="default: every experiment of the store")
    ap.add_argument("--cap", type=int, default=500, help="the student epoch cap of the benchmark")
    args = ap.parse_args(argv)
    client = MlflowClient()
    runs = final_runs(client, args.dataset, args.experiment)
    if not runs:
        raise SystemExit(f"no finished final runs of {args.dataset!r} in {mlflow.get_tracking_uri()}")
    out = Path(args.out)
    rows, lines = ["method,seed,epoch," + ",".join(CURVES)], []
    head = ["method", "seeds", *[f"val AUC-PRC @{e}" for e in CHECKS], "best epoch", "at cap",
            "distill share @0", "distill share @best", "test AUC-PRC"]
    lines += ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    fmt = lambda v, p=3: "–" if v is None else f"{v:.{p}f}"  # noqa: E731
    for method in sorted(runs):
        per_seed = {s: (r, curves(client, r)) for s, r in sorted(runs[method].items())}
        for s, (r, c) in per_seed.items():
            for e in sorted(c["val_auc_prc"]):
                rows.append(f"{method},{s},{e}," + ",".join(str(c[m].get(e, "")) for m in CURVES))
        at = [_mean(c["val_auc_prc"].get(e) for _, c in per_seed.values()) for e in CHECKS]
        best = [int(r.data.metrics["best_epoch"]) for r, _ in per_seed.values()]
        cap = sum(int(r.data.metrics["epochs_run"]) >= args.cap for r, _ in per_seed.values())
        s0 = _mean(_share(c, 0) for _, c in per_seed.values())
        sb = _mean(_share(c, b) for (_, c), b in zip(per_seed.values(), best))
        test = _mean(r.data.metrics.get("test_auc_prc") for r, _ in per_seed.values())
        lines.append("| " + " | ".join([method, str(len(per_seed)), *[fmt(a) for a in at],
                                        f"{statistics.fmean(best):.0f}", f"{cap}/{len(per_seed)}",
                                        fmt(s0, 2), fmt(sb, 2), fmt(test)]) + " |")
    md = (f"# {args.dataset}: the final runs' learning curves\n\n(mean over the seeds still training at that "
          f"epoch; epochs 0-based)\n\n" + "\n".join(lines) + "\n")
    out.mkdir(parents=True, exist_ok=True)
    (out / f"curves_{args.dataset}.csv").write_text("\n".join(rows) + "\n")
    (out / f"curves_{args.dataset}.md").write_text(md)
    print(md)
    with tracking.start_run("tdml-benchmarks", f"memkd curves · {args.dataset}", "benchmark",
                            tags={"tdml.bench": "memkd-curves"}):
        tracking.log_params({"dataset": args.dataset, "methods": json.dumps(sorted(runs))})
        tracking.log_text(md, f"curves_{args.dataset}.md")
        tracking.log_text("\n".join(rows) + "\n", f"curves_{args.dataset}.csv")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
