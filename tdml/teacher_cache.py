"""A frozen teacher's outputs, computed once per (teacher version, data, split) and reused.

A distill run's teacher is frozen (eval mode, no gradient) and a split's windows are fixed,
so its predictions and the features a loss reads are a function of the window alone: they
are computed in one pass and then looked up by window index (``tdml.data.batching.INDEX``)
at every step of every epoch -- and, with ``disk``, by every later run and study trial on
the same teacher version and data, also from sibling processes.

Entries live in ``$TDML_CACHE_DIR`` (default ``~/.cache/tdml/teacher-outputs``), one folder
per key; the key hashes the teacher's registered identity, the split's actual rows, the
window settings and the feature names, so a new teacher version, other data or other windows
never hit an old entry. The folder is bounded (``$TDML_CACHE_MAX_GB``, default 20): after a
new entry is written the least recently used ones are deleted. Arrays are ``.npy`` files
opened memory-mapped, so a split whose features are gigabytes (C = 321) is streamed from
disk instead of held in RAM. A folder is
written under a temporary name and renamed into place: two processes computing the same
entry both succeed and readers never see a partial one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path
import numpy as np
import torch

from tdml.config import TeacherCacheMode
from tdml.contracts import ModelOutput, run_model

PRED = "__pred__"


def cache_root() -> Path:
    return Path(os.environ.get("TDML_CACHE_DIR") or Path.home() / ".cache" / "tdml" / "teacher-outputs")


@dataclass
class TeacherOutputs:
    """Outputs for every window of one split, row i = window i."""

    pred: torch.Tensor
    features: dict[str, torch.Tensor]
    source: str  # "computed" | "disk"

    def lookup(self, index: torch.Tensor, device: torch.device) -> ModelOutput:
        idx = index.cpu()
        return ModelOutput(_rows(self.pred, idx, device), {k: _rows(v, idx, device) for k, v in self.features.items()})


def _rows(t: torch.Tensor, idx: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t[idx].to(device, non_blocking=True)


def cache_key(teacher_id: str, data, split: str, features: tuple[str, ...]) -> str:
    """Hash of what the outputs depend on: teacher identity, the split's rows, windows, names."""
    h = hashlib.sha256()
    h.update(json.dumps({"teacher": teacher_id, "split": split, "features": sorted(features),
                         "dims": str(data.dims)}, sort_keys=True).encode())
    h.update(np.ascontiguousarray(data.split_array(split)).tobytes())
    return h.hexdigest()[:32]


@torch.no_grad()
def compute(teacher, loader, features: tuple[str, ...], device: torch.device) -> dict[str, np.ndarray]:
    """One pass of the frozen teacher over an unshuffled loader: {name: [N, ...]} arrays."""
    teacher.eval()
    parts: dict[str, list[np.ndarray]] = {PRED: [], **{f: [] for f in features}}
    for batch in loader:
        out = run_model(teacher, {k: v.to(device) for k, v in batch.items()})
        parts[PRED].append(out.pred.float().cpu().numpy())
        for f in features:
            parts[f].append(out.features[f].float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


def teacher_outputs(teacher, teacher_id: str, data, split: str, features: tuple[str, ...], batch_size: int,
                    device: torch.device, mode: TeacherCacheMode) -> TeacherOutputs | None:
    """The split's teacher outputs under ``mode`` (None for ``recompute``: every step)."""
    if mode == "recompute":
        return None
    loader = data.loader(split, batch_size)  # unshuffled: row i is window i
    if mode == "memory":
        arrays, source = compute(teacher, loader, features, device), "computed"
    else:
        path = cache_root() / cache_key(teacher_id, data, split, features)
        source = "disk" if (path / "complete").is_file() else "computed"
        if source == "computed":
            _write(path, compute(teacher, loader, features, device))
            evict(keep=path)
        try:
            arrays = {k: np.load(path / f"{k}.npy", mmap_mode="r") for k in (PRED, *features)}
            now = time.time()  # last use, for eviction (explicit: file-system clocks are coarse)
            os.utime(path / "complete", (now, now))
        except FileNotFoundError:  # evicted by another process between the check and the read
            arrays, source = compute(teacher, loader, features, device), "computed"
    tensors = {k: _tensor(v) for k, v in arrays.items()}
    pred = tensors.pop(PRED)
    return TeacherOutputs(pred, tensors, source)


def max_bytes() -> int:
    """The cache's size bound: ``$TDML_CACHE_MAX_GB`` (default 20 GB)."""
    return int(float(os.environ.get("TDML_CACHE_MAX_GB", "20")) * 1e9)


def evict(keep: Path | None = None, limit: int | None = None) -> list[Path]:
    """Delete the least recently used entries until the cache fits ``limit`` bytes; ``keep``
    (the entry just written) stays. Safe while other processes read: a memory-mapped file
    stays readable after it is unlinked, and a reader that finds an entry gone recomputes."""
    root, limit = cache_root(), max_bytes() if limit is None else limit
    if not root.is_dir():
        return []
    sized = []
    for d in root.iterdir():
        marker = d / "complete"
        if d.name.startswith(".") or not marker.is_file():
            continue
        try:
            sized.append((marker.stat().st_mtime, sum(f.stat().st_size for f in d.iterdir()), d))
        except FileNotFoundError:  # being evicted by someone else
            continue
    total, gone = sum(size for _, size, _ in sized), []
    for _, size, d in sorted(sized, key=lambda e: e[0]):
        if total <= limit:
            break
        if keep is not None and d == keep:
            continue
        shutil.rmtree(d, ignore_errors=True)
        total -= size
        gone.append(d)
    return gone


def _tensor(a: np.ndarray) -> torch.Tensor:
    with warnings.catch_warnings():  # read-only memmap: torch warns, we never write to it
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(a)


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-{uuid.uuid4().hex[:6]}-", dir=path.parent))
    try:
        for k, v in arrays.items():
            np.save(tmp / f"{k}.npy", v)
        (tmp / "complete").write_text("ok\n")
        os.replace(tmp, path)  # atomic; fails if another process already put the entry there
    except OSError:
        if not (path / "complete").is_file():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
