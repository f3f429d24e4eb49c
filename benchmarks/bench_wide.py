"""Wide data: what a TimeDistill run costs as the channel count grows (issue 26, item 1).

For each shape of ``tdml.data.synthetic.WIDE_SHAPES`` (ETTh1's 7 channels; Solar's 137 at 10
minutes; Electricity's 321 and Traffic's 862, hourly; each with its real row count) a CSV is
generated, an iTransformer teacher (L = 720, H = 96, d_model 512, 3 layers: the reference's
Electricity/Traffic setting) is trained for one epoch capped at ``--max-batches`` batches, and
the MLP student is distilled from it twice -- alone (``method=none``) and with TimeDistill
(the teacher cache built in that run, ``teacher_cache=disk``) -- for ``--epochs`` epochs of at
most ``--max-batches`` batches. Every step is its own ``tdml`` process, launched by this script,
whose peak resident memory is the kernel's ``ru_maxrss`` for that process (``os.wait4``).

Recorded per shape: the cache entry's size on disk, each process's peak RSS, seconds per
(capped) epoch for plain and distilled and their ratio, the teacher-cache build time, and a
projection of a full epoch (s/batch x batches in the training split). Runs are logged in MLflow
(``<out>/mlflow.db``, experiment ``tdml``); the records file ``<out>/records.json`` is what a
later invocation resumes from (a finished step is never rerun). Cache entries are deleted once
a shape is measured (they are 1-25 GB each). ``--report-only`` redraws the table and the plot.

Item 2 (a 16-bit cache changes nothing beyond the seed spread, on a wide set): ``--seeds`` runs
the distilled step once per student seed (records ``distilled@s<seed>``; the default seed 2021
is the table's ``distilled``), and ``--cache-dtype float16`` does the same with the 16-bit entry;
``spread.md`` gives best validation and test MSE, mean +- std over the seeds, per cache dtype:

    python benchmarks/bench_wide.py --shapes solar --seeds 2021 2022 2023 [--cache-dtype float16]

    python benchmarks/bench_wide.py --out benchmarks/results/wide
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tdml.data.synthetic import WIDE_SHAPES, make_synthetic

SEQ, PRED = 720, 96
DEFAULT_SEED = 2021  # tdml.config.TrainConfig.seed: the table's rows
TEACHER = {"e_layers": 3, "d_model": 512, "d_ff": 512}


def peak_rss(cmd: list[str], env: dict, log: Path) -> tuple[int, int, float]:
    """(exit status, peak RSS bytes, seconds) of one child process."""
    t0 = time.perf_counter()
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, usage.ru_maxrss * 1024, time.perf_counter() - t0


def dir_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file()) if path.exists() else 0


def latest_run(db: Path, role: str) -> dict:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db}")
    exp = client.get_experiment_by_name("tdml")
    run = client.search_runs([exp.experiment_id], f"tags.`tdml.role` = '{role}'",
                             order_by=["attributes.start_time DESC"], max_results=1)[0]
    return {"run_id": run.info.run_id, "status": run.info.status, **run.data.metrics,
            "train_windows": int(run.data.params.get("data.n_windows_train", 0)),
            **{k: v for k, v in run.data.tags.items() if k.startswith("tdml.")}}


class Bench:
    def __init__(self, out: Path, max_batches: int, epochs: int, dtype: str, seeds: list[int]):
        self.out, self.max_batches, self.epochs, self.dtype, self.seeds = out, max_batches, epochs, dtype, seeds
        self.records_path = out / "records.json"
        self.records = json.loads(self.records_path.read_text()) if self.records_path.exists() else {}
        self.db = (out / "mlflow.db").resolve()

    def save(self) -> None:
        self.records_path.write_text(json.dumps(self.records, indent=1, sort_keys=True) + "\n")

    def env(self, shape: str) -> dict:
        return {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{self.db}", "TQDM_DISABLE": "1",
                "TDML_CACHE_DIR": str((self.out / "cache" / shape).resolve()),
                "TDML_CACHE_MAX_GB": "60"}

    def step(self, shape: str, name: str, args: list[str], role: str) -> dict:
        rec = self.records.setdefault(shape, {})
        if name in rec:
            return rec[name]
        logs = self.out / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "tdml.cli", *args, "--no-progress",
               "--set", f"train.max_batches={self.max_batches}"]
        print(f"[{shape}] {name}: {' '.join(args)}", flush=True)
        rc, rss, wall = peak_rss(cmd, self.env(shape), logs / f"{shape}-{name}.log")
        if rc != 0:
            raise SystemExit(f"[{shape}] {name} exited {rc}; see {logs / f'{shape}-{name}.log'}")
        run = latest_run(self.db, role)
        rec[name] = {"peak_rss_gb": rss / 1e9, "wall_s": wall, "cache_gb": dir_bytes(self.out / "cache" / shape) / 1e9,
                     **{k: run[k] for k in ("run_id", "train_seconds", "epochs_run", "teacher_cache_seconds",
                                            "test_mse", "best_val_mse", "train_windows", "tdml.registered_model",
                                            "tdml.teacher_cache")
                        if k in run}}
        self.save()
        print(f"[{shape}] {name}: peak RSS {rss / 1e9:.2f} GB, {wall:.0f} s", flush=True)
        return rec[name]

    def registered(self, teacher: dict) -> bool:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        try:
            MlflowClient(f"sqlite:///{self.db}").get_model_version_by_alias(teacher["tdml.registered_model"], "champion")
            return True
        except MlflowException:
            return False

    def shape(self, shape: str) -> None:
        """Teacher, plain and distilled steps of one shape (each skipped when recorded)."""
        n_rows, n_channels, freq = WIDE_SHAPES[shape]
        data = self.out / "data" / f"synth-{shape}.csv"  # not a catalog name: generic defaults
        if not data.exists():
            data.parent.mkdir(parents=True, exist_ok=True)
            make_synthetic(n_rows, n_channels, freq=freq).to_csv(data, index=False)
        common = ["--data-path", str(data.resolve()), "--seq-len", str(SEQ), "--pred-len", str(PRED)]
        # float32 is the table's row; a 16-bit cache is recorded beside it (``distilled-float16``)
        name = "distilled" if self.dtype == "float32" else f"distilled-{self.dtype}"
        rec = self.records.get(shape, {})
        if "teacher" in rec and name not in rec and not self.registered(rec["teacher"]):
            rec.pop("teacher")  # a fresh checkout has the records but not the store: train it again
        teacher = self.step(shape, "teacher", ["train-teacher", *common, "--model", "itransformer", "--epochs", "1",
                                               *sum((["--set", f"model_params.{k}={v}"] for k, v in TEACHER.items()), [])],
                            "teacher")
        uri = f"models:/{teacher['tdml.registered_model']}@champion"
        distill = ["distill", "--teacher", uri, "--epochs", str(self.epochs), "--set", f"train.patience={self.epochs + 1}"]
        self.step(shape, "plain", [*distill, "--method", "none"], "student")
        for seed in self.seeds:  # one cache entry per dtype serves every seed (the teacher's outputs)
            self.step(shape, name if seed == DEFAULT_SEED else f"{name}@s{seed}",
                      [*distill, "--set", f"teacher_cache_dtype={self.dtype}", "--set", f"train.seed={seed}"], "student")
        rec = self.records[shape]
        rec["n_rows"], rec["n_channels"], rec["freq"] = n_rows, n_channels, freq
        rec["train_windows"] = next(rec[k]["train_windows"] for k in rec if k.startswith(name))
        rec["max_batches"], rec["epochs"] = self.max_batches, self.epochs
        self.save()
        shutil.rmtree(self.out / "cache" / shape, ignore_errors=True)


def table(records: dict) -> str:
    rows = ["| shape | C | rows | train windows | cache on disk (GB) | cache build (s) | peak RSS teacher / plain / "
            "distilled (GB) | s per capped epoch plain / distilled | ratio | projected full epoch plain / "
            "distilled (s) |", "|---|---:|---:|---:|---:|---:|---|---|---:|---|"]
    for shape in WIDE_SHAPES:
        r = records.get(shape, {})
        if "distilled" not in r or "n_channels" not in r:
            continue
        t, p, d = r["teacher"], r["plain"], r["distilled"]
        per = {k: r[k]["train_seconds"] / r[k]["epochs_run"] for k in ("plain", "distilled")}
        full = {k: per[k] / r["max_batches"] * -(-r["train_windows"] // 32) for k in per}
        rows.append(f"| {shape} | {r['n_channels']} | {r['n_rows']:,} | {r['train_windows']:,} | "
                    f"{d['cache_gb']:.2f} | {d.get('teacher_cache_seconds', 0):.0f} | {t['peak_rss_gb']:.2f} / "
                    f"{p['peak_rss_gb']:.2f} / {d['peak_rss_gb']:.2f} | {per['plain']:.2f} / {per['distilled']:.2f} | "
                    f"{per['distilled'] / per['plain']:.2f} | {full['plain']:.0f} / {full['distilled']:.0f} |")
    return "\n".join(rows)


def backfill(records: dict, db: Path) -> None:
    """Best validation MSE of records made before it was recorded, read from the store if it has them."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    if not db.exists():  # a fresh checkout: the records are all there is
        return
    client = MlflowClient(f"sqlite:///{db}")
    for shape in records.values():
        for rec in (v for v in shape.values() if isinstance(v, dict) and "run_id" in v and "best_val_mse" not in v):
            try:
                rec["best_val_mse"] = client.get_run(rec["run_id"]).data.metrics["best_val_mse"]
            except (KeyError, MlflowException):
                pass


def spread(records: dict) -> str:
    """Per shape and cache dtype: best validation / test MSE over the distilled runs' seeds."""
    import statistics

    def ms(v: list[float]) -> str:
        return (f"{statistics.mean(v):.4f}" + (f" ± {statistics.stdev(v):.4f}" if len(v) > 1 else "")) if v else "–"

    rows = ["| shape | cache dtype | seeds | best val MSE | test MSE | cache on disk (GB) | peak RSS (GB) |",
            "|---|---|---:|---:|---:|---:|---:|"]
    for shape, r in records.items():
        for dtype in ("float32", "float16", "bfloat16"):
            name = "distilled" if dtype == "float32" else f"distilled-{dtype}"
            runs = [v for k, v in r.items() if k == name or k.startswith(name + "@s")]
            if len(runs) < 2:
                continue
            rows.append(f"| {shape} | {dtype} | {len(runs)} | {ms([v['best_val_mse'] for v in runs if 'best_val_mse' in v])} | "
                        f"{ms([v['test_mse'] for v in runs])} | {max(v['cache_gb'] for v in runs):.2f} | "
                        f"{max(v['peak_rss_gb'] for v in runs):.2f} |")
    return "\n".join(rows)


def svg_plot(records: dict) -> str:
    """Cost against C (log x): cache GB, peak RSS GB of the distill run, cache build minutes."""
    pts = [(r["n_channels"], r) for s, r in records.items() if "n_channels" in r and "distilled" in r]
    pts.sort(key=lambda p: p[0])
    series = {"cache on disk (GB)": ("#1f77b4", [r["distilled"]["cache_gb"] for _, r in pts]),
              "peak RSS, distill run (GB)": ("#d62728", [r["distilled"]["peak_rss_gb"] for _, r in pts]),
              "peak RSS, plain run (GB)": ("#ff9896", [r["plain"]["peak_rss_gb"] for _, r in pts]),
              "cache build (min)": ("#2ca02c", [r["distilled"].get("teacher_cache_seconds", 0) / 60 for _, r in pts])}
    import math

    w, h, m = 640, 380, 60
    xs = [math.log10(c) for c, _ in pts]
    ymax = max(max(v) for _, v in series.values()) * 1.1 or 1
    x0, x1 = min(xs) - 0.1, max(xs) + 0.1
    X = lambda v: m + (v - x0) / (x1 - x0) * (w - 2 * m)  # noqa: E731
    Y = lambda v: h - m - v / ymax * (h - 2 * m)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" '
           f'font-size="12"><rect width="100%" height="100%" fill="white"/>',
           f'<line x1="{m}" y1="{h - m}" x2="{w - m}" y2="{h - m}" stroke="black"/>',
           f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h - m}" stroke="black"/>',
           f'<line x1="{m}" y1="{Y(8):.1f}" x2="{w - m}" y2="{Y(8):.1f}" stroke="#999" stroke-dasharray="4"/>'
           f'<text x="{w - m - 90}" y="{Y(8) - 4:.1f}" fill="#666">8 GB target</text>' if ymax > 8 else "",
           f'<text x="{w / 2 - 100}" y="{h - 15}">channels C (log scale), L = 720, H = 96</text>']
    for c, x in zip([c for c, _ in pts], xs):
        out.append(f'<text x="{X(x) - 8:.1f}" y="{h - m + 16}">{c}</text>')
    for k in range(6):
        v = ymax * k / 5
        out.append(f'<text x="{m - 35}" y="{Y(v) + 4:.1f}">{v:.1f}</text>')
    for i, (label, (color, ys)) in enumerate(series.items()):
        path = " ".join(f"{X(x):.1f},{Y(y):.1f}" for x, y in zip(xs, ys))
        out.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        out += [f'<circle cx="{X(x):.1f}" cy="{Y(y):.1f}" r="3" fill="{color}"/>' for x, y in zip(xs, ys)]
        out.append(f'<text x="{m + 10}" y="{m - 30 + 14 * i}" fill="{color}">{label}</text>')
    return "\n".join(out + ["</svg>"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/wide"))
    ap.add_argument("--shapes", nargs="+", default=list(WIDE_SHAPES), choices=list(WIDE_SHAPES))
    ap.add_argument("--max-batches", type=int, default=20, help="cap on training batches per epoch")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--cache-dtype", default="float32", choices=["float32", "float16", "bfloat16"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[DEFAULT_SEED], help="student seeds of the distilled step")
    ap.add_argument("--report-only", action="store_true")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    bench = Bench(args.out, args.max_batches, args.epochs, args.cache_dtype, args.seeds)
    if not args.report_only:
        for shape in args.shapes:
            bench.shape(shape)
    md = table(bench.records)
    (args.out / "table.md").write_text(md + "\n")
    backfill(bench.records, bench.db)
    (args.out / "spread.md").write_text(spread(bench.records) + "\n")
    if any("distilled" in r for r in bench.records.values() if isinstance(r, dict)):  # a float32 row to plot
        (args.out / "cost_vs_channels.svg").write_text(svg_plot(bench.records))
    print(md)


if __name__ == "__main__":
    main()
