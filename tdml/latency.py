"""CPU latency of a model without touching what sibling runs depend on.

The number is the median batch forward time on CPU with ``threads`` intra-op threads (one by
default: comparable across machines, not swung by other processes). torch's thread count is
process-wide (the global default that new threads start with, and MKL's count, which every
thread's matrix products use), so it is changed only when no other thread of this process
has a run open (``tdml.runstate``):

1. the count in force is already ``threads`` (``OMP_NUM_THREADS=1``, the tests): measured as
   it is, in the calling thread;
2. no run open in another thread (a CLI run, a sequential study): the count is set for the
   measurement and restored, as before;
3. otherwise (trials of a study with ``n_jobs > 1``): measured in a child process
   (``python -m tdml.latency``) that uses ``threads`` threads, so sibling trials keep their
   thread count and their numerics. The child starts once per process and ``threads`` value
   (a few seconds) and is reused; the model reaches it pickled through a pipe (this process's
   own object, never a registry artifact), from the same ``sys.path``.
"""

from __future__ import annotations

import atexit
import copy
import logging
import os
import pickle
import struct
import subprocess
import sys
import threading
import time

import numpy as np
import torch
from torch import nn

from tdml.contracts import run_model
from tdml.runstate import other_threads_in_runs

log = logging.getLogger(__name__)
_children: dict[int, "_Child"] = {}
_children_lock = threading.Lock()


def cpu_latency_ms(model: nn.Module, example: dict[str, torch.Tensor], warmup: int = 5,
                   repeats: int = 20, threads: int = 1) -> float:
    """Median forward latency (ms) of ``model`` on the CPU batch ``example``, after warm-up."""
    model = copy.deepcopy(model).cpu().eval()
    batch = {k: v.cpu() for k, v in example.items()}
    if torch.get_num_threads() == threads:
        return _measure(model, batch, warmup, repeats)
    if not other_threads_in_runs():
        before = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return _measure(model, batch, warmup, repeats)
        finally:
            torch.set_num_threads(before)
    try:
        return _child(threads).measure(model, batch, warmup, repeats)
    except Exception as e:  # noqa: BLE001 - e.g. a model class the child cannot import
        log.warning("latency: no child process (%s: %s); measured with this process's %d threads",
                    type(e).__name__, e, torch.get_num_threads())
        return _measure(model, batch, warmup, repeats)


def _measure(model: nn.Module, batch: dict[str, torch.Tensor], warmup: int, repeats: int) -> float:
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t = time.perf_counter()
            run_model(model, batch)
            if i >= warmup:
                times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)


def _child(threads: int) -> "_Child":
    with _children_lock:
        if threads not in _children or _children[threads].proc.poll() is not None:
            _children[threads] = _Child(threads)
        return _children[threads]


class _Child:
    """``python -m tdml.latency <threads>``: reads (model, batch, warmup, repeats) frames on
    stdin, answers each with (ok, milliseconds or error) on its original stdout."""

    def __init__(self, threads: int):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self.proc = subprocess.Popen([sys.executable, "-m", "tdml.latency", str(threads)], env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.lock = threading.Lock()
        atexit.register(self.proc.kill)

    def measure(self, *args) -> float:
        with self.lock:
            _send(self.proc.stdin, args)
            ok, value = _receive(self.proc.stdout)
        if not ok:
            raise RuntimeError(value)
        return value


def _send(stream, obj) -> None:
    data = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(struct.pack("<Q", len(data)) + data)
    stream.flush()


def _receive(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("the latency child process ended")
    return pickle.loads(stream.read(struct.unpack("<Q", head)[0]))


def _serve(threads: int) -> None:
    torch.set_num_threads(threads)
    out = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)  # anything printed goes to stderr, not into the answers
    while True:
        try:
            args = _receive(sys.stdin.buffer)
        except EOFError:
            return
        try:
            answer = (True, _measure(*args))
        except Exception as e:  # noqa: BLE001 - reported to the parent, which falls back
            answer = (False, f"{type(e).__name__}: {e}")
        _send(out, answer)


if __name__ == "__main__":
    _serve(int(sys.argv[1]))
