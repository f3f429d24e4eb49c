"""The main job with its shipped defaults, over several seeds: does distillation pay off?

Runs ``tdml main`` (teacher -> registry -> MLP alone and MLP + TimeDistill through the
alias) once per seed, each an MLflow parent run of experiment ``tdml-bench-main``, and
prints teacher / MLP alone / MLP distilled test MSE as mean ± std over the seeds, with the
per-seed change of the distilled MLP vs the MLP alone. Nothing is tuned here: every
setting is the default a new user gets.

    OMP_NUM_THREADS=1 python benchmarks/bench_main_synthetic.py --seeds 2021 2022 2023
"""

from __future__ import annotations

import argparse
import statistics
import time
import mlflow

from results_file import publish
from tdml.cli import main as tdml_main

ROWS = (("teacher", "teacher"), ("alone", "MLP alone (no teacher)"), ("student", "MLP + TimeDistill"))


def run_seed(seed: int, experiment: str, extra: list[str]) -> dict[str, float]:
    t0 = time.perf_counter()
    assert tdml_main(["main", "--no-progress", "--seed", str(seed), "--experiment", experiment, *extra]) == 0
    wall = time.perf_counter() - t0
    client = mlflow.MlflowClient()
    exp = client.get_experiment_by_name(experiment)
    run = client.search_runs([exp.experiment_id], "tags.`tdml.role` = 'pipeline'",
                             order_by=["attributes.start_time DESC"], max_results=1)[0]
    return {**run.data.metrics, "seed": seed, "wall_s": wall}


def table(results: list[dict[str, float]]) -> str:
    def ms(key):
        vals = [r[key] for r in results]
        return f"{statistics.mean(vals):.4f}" + (f" ± {statistics.stdev(vals):.4f}" if len(vals) > 1 else "")

    lines = [f"Main job defaults, synthetic data, seeds {', '.join(str(int(r['seed'])) for r in results)}; "
             f"test split read once per run", "",
             "| run | test MSE | test MAE |", "|---|---:|---:|"]
    lines += [f"| {label} | {ms(f'{k}_test_mse')} | {ms(f'{k}_test_mae')} |" for k, label in ROWS]
    lines += ["", "| seed | distilled vs alone (MSE) | distilled vs teacher (MSE) | wall s |", "|---|---:|---:|---:|"]
    lines += [f"| {int(r['seed'])} | {r['student_vs_alone_mse_change']:+.1%} | "
              f"{r['student_vs_teacher_mse_change']:+.1%} | {r['wall_s']:.0f} |" for r in results]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[2021, 2022, 2023])
    ap.add_argument("--experiment", default="tdml-bench-main")
    ap.add_argument("--set", action="append", default=[], help="extra --set for every main job (ablations only)")
    args = ap.parse_args()
    extra = [a for s in args.set for a in ("--set", s)]
    results = [run_seed(seed, args.experiment, extra) for seed in args.seeds]
    publish(table(results), "main_synthetic.md")


if __name__ == "__main__":
    main()
