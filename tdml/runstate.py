"""What a run measures and draws belongs to that run, not to the process.

A study with ``n_jobs > 1`` runs its trials as threads of one process, so nothing one run
counts or seeds may live in a process global:

* **MLflow seconds** are counted per thread: ``tdml.tracking`` adds the wall time of each of
  its calls to the calling thread's counter, and a run body reads the difference between its
  start and end (``tdml.runs``); a sibling trial's MLflow calls never count as its own.
* **Open runs** are counted per thread (``tdml.tracking.start_run``), so code that would
  change process-wide settings can tell whether a run in another thread may be training now
  (``other_threads_in_runs``; ``tdml.latency`` then leaves the thread count alone).
* **torch's global generator** is one per process. Model initialisation draws from it, so
  "seed, then build the models" must not interleave with another thread's draws:
  ``global_rng()`` is the (re-entrant) lock that every model construction holds
  (``tdml.models.build_model``) and that a run holds around seeding and building its models
  (``tdml.runs``, ``tdml.condensation``). Training itself draws from it only through dropout
  in train mode; docs/tuning.md says what that means for parallel trials.
"""

from __future__ import annotations

import functools
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from tdml.errors import Stopped

_local = threading.local()
_open: dict[int, int] = {}  # thread ident -> runs open in that thread
_open_lock = threading.Lock()
_rng_lock = threading.RLock()


def add_mlflow_seconds(seconds: float) -> None:
    _local.mlflow_seconds = mlflow_seconds() + seconds


def timed(fn):
    """Count the wall time of each call of ``fn`` (an MLflow call of ``tdml.tracking``) as this
    thread's MLflow seconds."""

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
    _local.shield_depth = getattr(_local, "shield_depth", 0) + 1
    try:
        yield
    finally:
        _local.shield_depth -= 1
        if not _local.shield_depth:
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
    if not getattr(_local, "shield_depth", 0) and not in_finalizer:
        check_stop()


def stop_received() -> str | None:
    """The last stop signal this process received (None if none)."""
    return _stops[-1] if _stops else None


def check_stop() -> None:
    """Raise ``Stopped`` if the process was told to stop (called between training steps)."""
    if _stops and threading.current_thread() is threading.main_thread():
        raise Stopped(_stops[-1])


def clear_stops() -> None:
    """Forget received stops (an in-process caller that handled one, e.g. a test)."""
    _stops.clear()


def mlflow_seconds() -> float:
    """Seconds this thread has spent in MLflow calls (``tdml.tracking``) so far."""
    return getattr(_local, "mlflow_seconds", 0.0)


def run_started() -> None:
    with _open_lock:
        me = threading.get_ident()
        _open[me] = _open.get(me, 0) + 1


def run_ended() -> None:
    with _open_lock:
        me = threading.get_ident()
        _open[me] -= 1
        if not _open[me]:
            del _open[me]


def other_threads_in_runs() -> bool:
    """Whether a thread other than the calling one has a tdml run open."""
    with _open_lock:
        me = threading.get_ident()
        return any(ident != me for ident in _open)


@contextmanager
def global_rng() -> Iterator[None]:
    """Hold torch's (and NumPy's and Python's) global generator: seed and draw inside it."""
    with _rng_lock:
        yield
