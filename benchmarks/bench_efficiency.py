"""Teachers vs the MLP / DMLP students: trainable parameters and CPU forward latency.

At L = 720, H = 96 (TimeDistill's setting) on C = 7 (ETTh1's shape) and C = 321
(electricity's shape), random inputs with 4 calendar features. Every model is built with
its defaults for ``--dataset`` (tdml/models/defaults.yaml, ETTh1 reference sizes) and
measured in this one process, one after the other, under the same settings: eval mode,
``torch.inference_mode``, batch 32, ``--warmup`` untimed calls, then the median (and the
inter-quartile range) of ``--runs`` timed calls.

Threads: ``torch.set_num_threads(--threads)`` (default 1) is set once, before anything
runs, so every model gets the same compute; one thread also keeps numbers stable on a
shared machine. More threads favour the big teachers (more parallel work per call).

Models whose single call is slow get fewer timed runs so one (model, C) stays within
``--budget-s`` (never fewer than ``--min-runs``); the table says how many runs each row
has. Models whose batch-32 call would need more than ``--mem-gb`` of memory (estimated
from a batch-2 probe of the process's peak RSS) run the batch in equal chunks, one after
the other, and the row says so: the latency is then the sum over the chunks.

Rows ``MODEL@DATASET`` (``--extra``) use another dataset's defaults, e.g. ModernTCN with
the electricity setting (ffn_ratio 8) that the published ~132 M parameters refer to.

Prints a Markdown table, writes CSV + Markdown to benchmarks/results/, and logs one MLflow
run (experiment ``tdml-benchmarks``; ``MLFLOW_TRACKING_URI`` is honoured) unless --no-mlflow.

    python benchmarks/bench_efficiency.py                  # full run (C = 321 takes a while)
    python benchmarks/bench_efficiency.py --channels 7 --runs 20 --no-mlflow
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import gc
import math
import platform
import statistics
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tdml.models import Dims, build_model
from tdml.models.defaults import default_params

TEACHERS = ["itransformer", "moderntcn", "timemixer", "patchtst", "micn", "fedformer", "timesnet", "autoformer"]
STUDENTS = ["mlp", "dmlp"]
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    label: str
    channels: int
    params: int
    median_ms: float = math.nan
    iqr_ms: float = math.nan
    runs: int = 0
    chunks: int = 1
    mem_gb: float = math.nan  # estimated extra memory of one batch call
    notes: list[str] = field(default_factory=list)
    ratios: dict[str, float] = field(default_factory=dict)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _peak_rss_reset() -> bool:
    """Reset the kernel's peak-RSS counter of this process (Linux); False where not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def _rss_kb(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def _release_freed_memory() -> None:
    """Hand freed heap pages back to the OS (glibc), so RSS growth measures new memory only."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def probe_memory_gb(model, inputs, probe_batch: int = 4) -> float | None:
    """Estimated peak extra memory (GB) of one full-batch call, scaled from a small batch."""
    gc.collect()
    _release_freed_memory()
    if not _peak_rss_reset():
        return None
    base = _rss_kb("VmRSS")
    with torch.inference_mode():
        model(*(t[:probe_batch] if t is not None else None for t in inputs))
    extra_kb = max(0, _rss_kb("VmHWM") - base)
    return extra_kb / 1e6 * inputs[0].shape[0] / probe_batch


def timed_calls(model, inputs, chunks: int, n: int) -> list[float]:
    B = inputs[0].shape[0]
    size = -(-B // chunks)
    parts = [tuple(t[i:i + size] if t is not None else None for t in inputs) for i in range(0, B, size)]
    times = []
    with torch.inference_mode():
        for _ in range(n):
            t0 = time.perf_counter()
            for part in parts:
                model(*part)
            times.append(time.perf_counter() - t0)
    return times


def measure(label: str, name: str, dataset: str, C: int, args) -> Row:
    dims = Dims(seq_len=args.seq_len, n_channels=C, pred_len=args.pred_len, n_marks=4)
    torch.manual_seed(0)
    model = build_model(name, dims, default_params(name, dataset)).eval()
    row = Row(label, C, model.n_parameters())
    g = torch.Generator().manual_seed(0)
    inputs = (torch.randn(args.batch, args.seq_len, C, generator=g),
              torch.rand(args.batch, args.seq_len, 4, generator=g) - 0.5,
              torch.rand(args.batch, args.pred_len, 4, generator=g) - 0.5)
    est = probe_memory_gb(model, inputs)
    row.mem_gb = math.nan if est is None else est
    if est is not None and est > args.mem_gb:
        row.chunks = min(args.batch, math.ceil(est / args.mem_gb))
        row.notes.append(f"~{est:.0f} GB at batch {args.batch}: run in {row.chunks} chunks")
    first = timed_calls(model, inputs, row.chunks, 1)[0]  # also the first warm-up call
    if first * args.warmup <= args.budget_s / 4:
        timed_calls(model, inputs, row.chunks, args.warmup - 1)
    else:  # a call this slow is not dominated by one-off start-up costs
        row.notes.append("1 warm-up call")
    n = max(args.min_runs, min(args.runs, int(args.budget_s / max(first, 1e-9))))
    if n < args.runs:
        row.notes.append(f"{n} runs (budget {args.budget_s:.0f} s, ~{first:.1f} s per call)")
    times = timed_calls(model, inputs, row.chunks, n)
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [times[0]] * 3
    row.median_ms, row.iqr_ms, row.runs = 1e3 * statistics.median(times), 1e3 * (q[2] - q[0]), n
    del model
    return row


def add_ratios(rows: list[Row]) -> None:
    for C in {r.channels for r in rows}:
        students = {r.label: r for r in rows if r.channels == C and r.label in STUDENTS}
        for r in rows:
            if r.channels != C:
                continue
            for s, sr in students.items():
                r.ratios[f"params/{s}"] = r.params / sr.params
                r.ratios[f"latency/{s}"] = r.median_ms / sr.median_ms


def markdown(rows: list[Row], args) -> str:
    head = (f"L = {args.seq_len}, H = {args.pred_len}, batch {args.batch}, defaults: {args.dataset}, "
            f"torch {torch.__version__}, {args.threads} CPU thread(s), {cpu_name()}\n\n"
            "| model | C | params | params ÷ MLP | params ÷ DMLP | latency ms (median) | IQR ms | "
            "latency ÷ MLP | latency ÷ DMLP | runs | notes |\n"
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
    lines = []
    for r in rows:
        lines.append(f"| {r.label} | {r.channels} | {r.params:,} | {r.ratios.get('params/mlp', math.nan):.1f} | "
                     f"{r.ratios.get('params/dmlp', math.nan):.1f} | {r.median_ms:.1f} | {r.iqr_ms:.1f} | "
                     f"{r.ratios.get('latency/mlp', math.nan):.1f} | {r.ratios.get('latency/dmlp', math.nan):.1f} | "
                     f"{r.runs} | {'; '.join(r.notes)} |")
    return head + "\n".join(lines) + "\n"


def count_table(plan, args) -> str:
    """Parameters only (no timing) at other horizons: the head of most models grows with H."""
    hs = args.count_pred_lens
    lines = ["", f"Trainable parameters at other horizons (L = {args.seq_len}; no timing):", "",
             "| model | C | " + " | ".join(f"H = {h}" for h in hs) + " |", "|---|---:|" + "---:|" * len(hs)]
    for C in args.channels:
        for label, name, dataset in plan:
            counts = [build_model(name, Dims(seq_len=args.seq_len, n_channels=C, pred_len=h, n_marks=4),
                                  default_params(name, dataset)).n_parameters() for h in hs]
            args._counts[f"{label.replace('@', '_at_')}.C{C}"] = dict(zip(hs, counts))
            lines.append(f"| {label} | {C} | " + " | ".join(f"{n:,}" for n in counts) + " |")
    return "\n".join(lines) + "\n"


def write_csv(rows: list[Row], path: Path) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["model", "channels", "params", "median_ms", "iqr_ms", "runs", "chunks", "params_over_mlp",
                    "params_over_dmlp", "latency_over_mlp", "latency_over_dmlp", "notes"])
        for r in rows:
            w.writerow([r.label, r.channels, r.params, f"{r.median_ms:.3f}", f"{r.iqr_ms:.3f}", r.runs, r.chunks,
                        *(f"{r.ratios.get(k, math.nan):.3f}" for k in
                          ("params/mlp", "params/dmlp", "latency/mlp", "latency/dmlp")), "; ".join(r.notes)])


def log_mlflow(rows: list[Row], args, files: list[Path]) -> str:
    import mlflow  # only needed here

    mlflow.set_experiment("tdml-benchmarks")
    with mlflow.start_run(run_name="efficiency") as run:
        mlflow.log_params({"seq_len": args.seq_len, "pred_len": args.pred_len, "batch": args.batch,
                           "threads": args.threads, "runs": args.runs, "warmup": args.warmup,
                           "dataset_defaults": args.dataset, "channels": " ".join(map(str, args.channels)),
                           "torch": torch.__version__, "cpu": cpu_name()})
        for r in rows:
            key = f"{r.label.replace('@', '_at_')}.C{r.channels}"
            mlflow.log_metrics({f"{key}.params": r.params, f"{key}.latency_ms": r.median_ms,
                                **{f"{key}.{k.replace('/', '_over_')}": v for k, v in r.ratios.items()}})
        for key, by_h in getattr(args, "_counts", {}).items():
            mlflow.log_metrics({f"{key}.params_H{h}": n for h, n in by_h.items()})
        for f in files:
            mlflow.log_artifact(str(f))
        return run.info.run_id


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--channels", type=int, nargs="+", default=[7, 321])
    ap.add_argument("--models", nargs="+", default=TEACHERS, help="teachers (students are always added)")
    ap.add_argument("--extra", nargs="*", default=["moderntcn@electricity"], help="MODEL@DATASET rows")
    ap.add_argument("--dataset", default="etth1", help="whose defaults the models use")
    ap.add_argument("--seq-len", type=int, default=720)
    ap.add_argument("--pred-len", type=int, default=96)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--min-runs", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=300.0, help="time budget per (model, C) for the timed runs")
    ap.add_argument("--mem-gb", type=float, default=3.0, help="largest extra memory one call may take")
    ap.add_argument("--count-pred-lens", type=int, nargs="*", default=[336],
                    help="extra horizons at which to count parameters only (the published counts are at 336)")
    ap.add_argument("--no-mlflow", action="store_true")
    args = ap.parse_args(argv)
    args._counts = {}
    torch.set_num_threads(args.threads)

    plan = [(m, m, args.dataset) for m in STUDENTS + args.models]
    plan += [(e, *e.split("@", 1)) for e in args.extra]
    rows = []
    for C in args.channels:
        for label, name, dataset in plan:
            t0 = time.perf_counter()
            rows.append(measure(label, name, dataset, C, args))
            r = rows[-1]
            print(f"  {label:>22} C={C:<4} {r.params:>12,} params {r.median_ms:>10.1f} ms "
                  f"({r.runs} runs, ~{r.mem_gb:.2f} GB, {time.perf_counter() - t0:.0f} s)", flush=True)
    add_ratios(rows)
    table = markdown(rows, args)
    counts = count_table(plan, args) if args.count_pred_lens else ""
    table += counts
    print("\n" + table)

    RESULTS.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    csv_path, md_path = RESULTS / f"efficiency-{stamp}.csv", RESULTS / f"efficiency-{stamp}.md"
    write_csv(rows, csv_path)
    md_path.write_text(table)
    print(f"wrote {csv_path} and {md_path.name}")
    if not args.no_mlflow:
        print(f"MLflow run {log_mlflow(rows, args, [csv_path, md_path])} in experiment tdml-benchmarks")


if __name__ == "__main__":
    main()
