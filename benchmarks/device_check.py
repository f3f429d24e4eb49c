"""The device check (issue 26, item 4): the CUDA paths no CI machine has, in one short script.

Steps, each a ``tdml`` process of its own against a fresh SQLite store under ``--out``:

1. ``main``: the main job (teacher -> registry -> MLP alone and distilled) on the embedded data;
2. ``distill-<precision>``: the main job's teacher distilled again under mixed precision
   (bf16 and, on CUDA, fp16 with its gradient scaler), against the main job's fp32 student;
3. ``study``: a 2-trial Optuna study (``studies/timedistill_synthetic.yaml``, SQLite storage);
4. ``heavy-teacher``: FEDformer (d_model 512, the Time-Series-Library ETTh1 setting, L = H = 96)
   for one full ETTh1 epoch (``--max-batches`` caps it; on CPU the step is a smoke: 20 batches
   at d_model 64, since evaluating d_model 512 takes many minutes there).

A precision the device cannot run is recorded as skipped with tdml's own refusal, which is
itself checked (exit 2). Numbers (seconds, test MSE, peak GPU memory) go to
``<out>/device_check.json`` and ``.md``; the exit status is non-zero when a step failed.
``benchmarks/device_check.sh`` is the entry point; docs/device.md says how to run it.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent


def env_info(device: str) -> dict:
    info = {"torch": torch.__version__, "device": device, "python": sys.version.split()[0]}
    if device == "cuda":
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, memory_gb=round(p.total_memory / 2**30, 1), capability=f"{p.major}.{p.minor}",
                    bf16=torch.cuda.is_bf16_supported())
    else:
        from tdml.precision import cpu_has_bf16

        info.update(cpu=torch.backends.cpu.get_cpu_capability(), bf16=cpu_has_bf16())
    return info


class Check:
    def __init__(self, out: Path, device: str):
        self.out, self.device = out, device
        self.steps: dict[str, dict] = {}
        self.env = {**os.environ, "MLFLOW_TRACKING_URI": f"sqlite:///{out / 'mlflow.db'}", "TQDM_DISABLE": "1",
                    "TDML_CACHE_DIR": str(out / "cache"), "PYTHONUNBUFFERED": "1"}

    def tdml(self, name: str, args: list[str], expect: int = 0) -> dict:
        t0 = time.perf_counter()
        with open(self.out / f"{name}.log", "w") as log:
            rc = subprocess.run([sys.executable, "-m", "tdml.cli", *args, "--no-progress"], cwd=self.out,
                                env=self.env, stdout=log, stderr=subprocess.STDOUT).returncode
        step = {"seconds": round(time.perf_counter() - t0, 1), "exit": rc, "ok": rc == expect}
        if rc != expect:
            step["log_tail"] = (self.out / f"{name}.log").read_text()[-2000:]
        self.steps[name] = step
        print(f"{name}: {'ok' if step['ok'] else 'FAILED'} in {step['seconds']} s", flush=True)
        return step

    def latest(self, role: str, n: int = 1) -> list[dict]:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(self.env["MLFLOW_TRACKING_URI"])
        ids = [e.experiment_id for e in client.search_experiments()]
        runs = client.search_runs(ids, f"tags.`tdml.role` = '{role}'", order_by=["attributes.start_time DESC"],
                                  max_results=n)
        return [{"name": r.info.run_name, "status": r.info.status,
                 "registered": r.data.tags.get("tdml.registered_model", ""), **{k: round(v, 5) for k, v in r.data.metrics.items()
                 if k in ("test_mse", "val_mse", "best_val_mse", "train_seconds", "epochs_run", "teacher_test_mse")}} for r in runs]


def run(args) -> int:
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    check = Check(out, args.device)
    dev = ["--set", f"train.device={args.device}"]
    report = {"env": env_info(args.device), "steps": check.steps}

    teacher = "models:/synthetic-itransformer-L336-H96@champion"  # the main job's teacher
    if check.tdml("main", ["main", "--device", args.device])["ok"]:
        check.steps["main"]["runs"] = check.latest("teacher") + check.latest("student", 2)
        teacher = f"models:/{check.steps['main']['runs'][0]['registered']}@champion"
    for prec in ("bf16", "fp16"):
        supported = prec in _supported(args.device)
        name = f"distill-{prec}"
        step = check.tdml(name, ["distill", "--teacher", teacher, *dev, "--set", f"train.precision={prec}",
                                 "--set", "tracking.register=false"], expect=0 if supported else 2)
        if supported and step["ok"]:
            step["runs"] = check.latest("student")
        elif not supported:
            step["skipped"] = f"{prec} not supported on {args.device}: tdml refused it with exit 2 (checked)"
    check.tdml("study", ["tune", "--study", str(ROOT / "studies" / "timedistill_synthetic.yaml"), "--n-trials", "2",
                         "--storage", f"sqlite:///{out / 'optuna.db'}", "--set", f"base.train.device={args.device}",
                         "--set", f"train_teacher.train.device={args.device}"])
    cap = ["--set", f"train.max_batches={args.max_batches}"] if args.max_batches else []
    if args.device == "cpu":  # a smoke of the step: FEDformer at d_model 512 evaluates for many minutes on CPU
        cap += ["--set", "model_params.d_model=64", "--set", "model_params.d_ff=128"]
    if check.tdml("heavy-teacher", ["train-teacher", "--dataset", "etth1", "--model", "fedformer", "--seq-len", "96",
                                    "--pred-len", "96", "--epochs", "1", *dev, *cap,
                                    "--set", "tracking.register=false", "--set", "tracking.diagnostics=false"])["ok"]:
        check.steps["heavy-teacher"]["runs"] = check.latest("teacher")
        check.steps["heavy-teacher"]["settings"] = " ".join(cap) or "full epoch, d_model 512"
    report["total_seconds"] = round(sum(s["seconds"] for s in check.steps.values()), 1)
    report["passed"] = all(s["ok"] for s in check.steps.values())
    (out / "device_check.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "device_check.md").write_text(_markdown(report))
    print(_markdown(report))
    return 0 if report["passed"] else 1


def _supported(device: str) -> list[str]:
    from tdml.precision import supported

    return supported(torch.device(device))


def _markdown(report: dict) -> str:
    env = ", ".join(f"{k} {v}" for k, v in report["env"].items())
    lines = [f"device check: {env}; total {report['total_seconds']} s; "
             f"{'PASSED' if report['passed'] else 'FAILED'}", "", "| step | result | seconds | runs |",
             "|---|---|---:|---|"]
    for name, s in report["steps"].items():
        runs = "; ".join(", ".join(f"{k} {v}" for k, v in r.items()) for r in s.get("runs", []))
        result = "skipped (refused, exit 2)" if "skipped" in s and s["ok"] else ("ok" if s["ok"] else f"FAILED ({s['exit']})")
        lines.append(f"| {name} | {result} | {s['seconds']} | {runs} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--out", type=Path, default=Path(os.environ.get("OUT") or "device_check_out"))
    ap.add_argument("--max-batches", type=int, default=None,
                    help="cap the heavy teacher's epoch (default: full epoch on cuda, 20 batches on cpu)")
    args = ap.parse_args()
    if args.max_batches is None:
        args.max_batches = 0 if args.device == "cuda" else 20
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("device_check: --device cuda but torch sees no CUDA device; use --device cpu here")
    sys.exit(run(args))


if __name__ == "__main__":
    main()
