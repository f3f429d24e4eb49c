"""Process state a run reads: its MLflow seconds and the stop signals received.

* **MLflow seconds**: ``tdml.tracking`` adds the wall time of each of its calls to a process
  counter, and a run body reads the difference between its start and end (``tdml.runs``).
  Parallel trials are processes (``tdml.tuning.workers``), so the counter is the run's own.
* **Stops** (SIGTERM / SIGINT): raised as ``Stopped`` at a safe point, never inside a store
  write (``shielded``).
"""

from __future__ import annotations

import functools
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from tdml.errors import Stopped

_mlflow_seconds = 0.0
_shield_depth = 0


def add_mlflow_seconds(seconds: float) -> None:
    global _mlflow_seconds
    _mlflow_seconds += seconds


def timed(fn):
    """Count the wall time of each call of ``fn`` (an MLflow call of ``tdml.tracking``) as the
    process's MLflow seconds."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        t = time.perf_counter()
        try:
            with shielded():
                return fn(*args, **kwargs)
        finally:
            add_mlflow_seconds(time.perf_counter() - t)

    return wrapper


@contextmanager
def shielded() -> Iterator[None]:
    """A store write (MLflow, Optuna) that a stop signal must not cut in half: a stop landing
    inside it is raised when the outermost shielded call returns."""
    global _shield_depth
    _shield_depth += 1
    try:
        yield
    finally:
        _shield_depth -= 1
        if not _shield_depth:
            check_stop()


_stops: list[str] = []  # stop signals received by this process (the main thread's handler)


def stop(signal_name: str, frame=None) -> None:
    """The stop-signal handler's action (``frame``: where the signal interrupted): raise
    ``Stopped`` now, or later at a safe point. Later when the signal landed inside a store write
    (``shielded``: MLflow and Optuna calls; unwinding mid-write can leave the store's
    transaction open, and the run's own KILLED update then waits on it: raised when the call
    returns) or inside a finalizer (an exception in
    ``__del__`` -- e.g. GitPython's, which MLflow's source tags create -- is printed and
    swallowed: raised at the next training step or MLflow call). The stop is remembered, so
    code that swallows one interruption meets it again at ``check_stop``."""
    _stops.append(signal_name)
    in_finalizer = False
    while frame is not None and not in_finalizer:
        in_finalizer, frame = frame.f_code.co_name == "__del__", frame.f_back
    if not _shield_depth and not in_finalizer:
        check_stop()


def stop_received() -> str | None:
    """The last stop signal this process received (None if none)."""
    return _stops[-1] if _stops else None


def check_stop() -> None:
    """Raise ``Stopped`` if the process was told to stop (called between training steps). Only
    in the main thread: library threads (Optuna's heartbeat, MLflow's async logging) must not
    die of it."""
    if _stops and threading.current_thread() is threading.main_thread():
        raise Stopped(_stops[-1])


def clear_stops() -> None:
    """Forget received stops (an in-process caller that handled one, e.g. a test)."""
    _stops.clear()


def mlflow_seconds() -> float:
    """Seconds this process has spent in MLflow calls (``tdml.tracking``) so far."""
    return _mlflow_seconds
