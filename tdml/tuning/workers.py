"""``n_jobs = k > 1``: the search runs in k worker processes on the study's storage.

Threads bought nothing (docs/tuning.md, "Threads or processes?": 0.67-1.01x serial against
1.56-1.91x for two processes), so parallel trials are processes, the same thing as starting k
``tdml tune`` workers by hand, with three differences: the study run (MLflow parent) is the
caller's and every trial run is its child; worker ``i`` samples with ``sampler.seed + i`` (k
workers on one seed would all draw the same random start-up trials); and the k workers share
the caller's torch threads (``max(1, threads // k)`` each) instead of each taking every core.

A worker is ``python -m tdml.tuning.workers <job file>``; the job file holds the spec (pickled:
it is this package's own dataclass, written and read by the same code in the same moment), the
storage URL, the parent run, the artifact folder, its share of the trials and its index. A worker
that fails writes its error next to the job file; the caller raises it. A stop (SIGTERM /
SIGINT) of the caller is passed on to every worker, which queues its trial again as any stopped
worker does (``tdml.tuning.objective``), and the caller waits for them before it unwinds.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import torch

from tdml.errors import TdmlError
from tdml.studies import StudySpec

log = logging.getLogger(__name__)


def shares(n_trials: int, n_jobs: int) -> list[int]:
    """Trials per worker: ``n_trials`` split as evenly as possible over at most ``n_trials`` workers."""
    k = max(1, min(n_jobs, n_trials))
    return [n_trials // k + (i < n_trials % k) for i in range(k)]


def run_workers(spec: StudySpec, url: str, parent_run_id: str, store_dir: Path, n_trials: int, n_jobs: int) -> None:
    """Run the search in worker processes and wait for all of them; raise the first failure."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow.get_tracking_uri()}
    registry = mlflow.get_registry_uri()
    if registry and registry != env["MLFLOW_TRACKING_URI"]:
        env["MLFLOW_REGISTRY_URI"] = registry
    parts = shares(n_trials, n_jobs)
    threads = max(1, torch.get_num_threads() // len(parts))
    with tempfile.TemporaryDirectory(prefix="tdml-workers-") as tmp:
        procs = []
        for i, share in enumerate(parts):
            job = Path(tmp) / f"worker-{i}.pkl"
            job.write_bytes(pickle.dumps({"spec": spec, "url": url, "parent_run_id": parent_run_id,
                                          "store_dir": str(store_dir), "n_trials": share, "index": i,
                                          "threads": threads}))
            procs.append(subprocess.Popen([sys.executable, "-m", "tdml.tuning.workers", str(job)], env=env))
        try:
            codes = [p.wait() for p in procs]
        except BaseException:  # our stop (or an error): the workers stop too, each ending its own trial
            for p in procs:
                if p.poll() is None:
                    p.send_signal(signal.SIGTERM)
            for p in procs:
                p.wait()
            raise
        for i, code in enumerate(codes):
            if code:
                err = Path(tmp) / f"worker-{i}.err"
                if err.exists():
                    raise pickle.loads(err.read_bytes())
                raise TdmlError(f"study {spec.name!r}: worker {i} of {len(procs)} exited with status {code} "
                                  f"(its output is above); the trials it finished are in the study")


def _worker(job_file: Path) -> int:
    from tdml import runstate
    from tdml.tuning.kinds import KINDS
    from tdml.tuning.objective import make_objective
    from tdml.tuning.storage import create_or_load_study

    job = pickle.loads(job_file.read_bytes())
    spec: StudySpec = job["spec"]
    torch.set_num_threads(job["threads"])
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, frame: runstate.stop(signal.Signals(signum).name, frame))
    try:
        study = create_or_load_study(spec, job["url"], worker=job["index"])
        objective = make_objective(spec, KINDS.get(spec.kind)(spec), job["parent_run_id"], Path(job["store_dir"]),
                                   shared_parent=True)
        study.optimize(objective, n_trials=job["n_trials"], timeout=spec.timeout_s or None,
                       catch=(FloatingPointError,))
    except TdmlError as e:
        job_file.with_suffix(".err").write_bytes(pickle.dumps(e))
        return 2
    except KeyboardInterrupt as e:  # Stopped: the trial was queued again and its run KILLED
        name = getattr(e, "signal_name", "SIGINT")
        return 128 + getattr(signal, name).value
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("alembic", "mlflow.store", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sys.exit(_worker(Path(sys.argv[1])))
