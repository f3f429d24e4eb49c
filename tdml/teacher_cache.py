"""A frozen teacher's outputs, computed once per (teacher version, data, split) and reused.

A distill run's teacher is frozen (eval mode, no gradient) and a split's windows are fixed,
so its predictions and the features a loss reads are a function of the window alone: they
are computed in one pass and then looked up by window index (``tdml.data.batching.INDEX``)
at every step of every epoch -- and, with ``disk``, by every later run and study trial on
the same teacher version and data, also from sibling processes.

Entries live in ``$TDML_CACHE_DIR`` (default ``~/.cache/tdml/teacher-outputs``), one folder
per key; the key hashes the teacher's registered identity, the split's actual rows, the
window settings and the feature names, so a new teacher version, other data or other windows
never hit an old entry. The folder is bounded (``$TDML_CACHE_MAX_GB``, default 20): an entry
that would not fit the bound or the free disk is refused before it is computed, and after a
new entry is written the least recently used ones are deleted.

Memory does not grow with the split: the entry is computed batch by batch and each batch is
appended to its file at once, and a training step reads only its batch's rows
(``tdml.cache_rows``: ``pread``, not a memory map). At Electricity's shape (321 channels,
L = 720, d = 512) an entry is ~12 GB in float32 and the run stays near its no-cache size
(docs/results.md, "Wide data"). Rows are stored as float16 (the run's default), bfloat16 or
float32 (``teacher_cache_dtype``) and are always handed out as float32. A folder is written under a
temporary name and renamed into place: two processes computing the same entry both succeed
and readers never see a partial one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from tdml.cache_rows import FileRows, FileWriter, MemoryRows, row_bytes
from tdml.config import TeacherCacheMode
from tdml.contracts import ModelOutput, run_model
from tdml.errors import CacheError

PRED = "__pred__"


def cache_root() -> Path:
    return Path(os.environ.get("TDML_CACHE_DIR") or Path.home() / ".cache" / "tdml" / "teacher-outputs")


Rows = MemoryRows | FileRows


@dataclass
class TeacherOutputs:
    """Outputs for every window of one split, row i = window i (PRED and each feature)."""

    columns: dict[str, Rows]
    source: str  # "computed" | "disk"

    def lookup(self, index: torch.Tensor, device: torch.device) -> ModelOutput:
        idx = index.cpu().numpy()
        rows = {k: v.take(idx).to(device, non_blocking=True) for k, v in self.columns.items()}
        return ModelOutput(rows.pop(PRED), rows)

    @property
    def pred(self) -> torch.Tensor:
        """Every window's prediction, float32 (the scored split's, for its metrics)."""
        return self.columns[PRED].all()

    def full(self, name: str) -> torch.Tensor:
        return self.columns[name].all()

    def __len__(self) -> int:
        return len(self.columns[PRED])


FORMAT = 2  # 1: whole .npy arrays (their entries are never read again and age out); 2: row files


def cache_key(teacher_id: str, data, split: str, features: tuple[str, ...], dtype: str = "float32") -> str:
    """Hash of what the outputs depend on: teacher identity, the split's rows, windows, names,
    the stored dtype and the entry format."""
    h = hashlib.sha256()
    ident = {"teacher": teacher_id, "split": split, "features": sorted(features), "dims": str(data.dims),
             "dtype": dtype, "format": FORMAT}
    h.update(json.dumps(ident, sort_keys=True).encode())
    h.update(np.ascontiguousarray(data.split_array(split)).tobytes())
    return h.hexdigest()[:32]


def _outputs(teacher, batch: dict, features: tuple[str, ...], device: torch.device) -> dict[str, torch.Tensor]:
    out = run_model(teacher, {k: v.to(device) for k, v in batch.items()})
    return {PRED: out.pred.float().cpu(), **{f: out.features[f].float().cpu() for f in features}}


@torch.no_grad()
def compute(teacher, loader, features: tuple[str, ...], device: torch.device, sink) -> None:
    """One pass of the frozen teacher over an unshuffled loader, each batch handed to
    ``sink(first, chunk)`` as soon as it is computed -- nothing accumulates here, so the
    peak memory is one batch's whatever the split's length."""
    teacher.eval()
    for i, batch in enumerate(loader):
        sink(i == 0, _outputs(teacher, batch, features, device))


def _n_rows(loader) -> int:
    return loader.order.n  # every tdml loader batches through an EpochOrder


def _shapes(chunk: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape[1:]) for k, v in chunk.items()}


def _entry_bytes(shapes: dict[str, tuple[int, ...]], n: int, dtype: str) -> int:
    return n * sum(row_bytes(s, dtype) for s in shapes.values())


def _available_ram() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62  # unknown: do not refuse


def check_ram(need: int) -> None:
    """``teacher_cache=memory`` holds the whole entry: refuse one the machine cannot hold."""
    avail = _available_ram()
    if need > 0.8 * avail:
        raise CacheError(f"teacher_cache=memory would hold {need / 1e9:.2f} GB of teacher outputs, but only "
                         f"{avail / 1e9:.2f} GB of memory is available; use teacher_cache=disk (streamed, "
                         f"constant memory) or a 16-bit teacher_cache_dtype (float16, the default, or bfloat16)")


def check_fits(need: int, dtype: str) -> None:
    """Fail before computing an entry the bound or the disk cannot hold, with the fixes."""
    fixes = ("teacher_cache=recompute (no cache; each step runs the teacher)"
             + ("" if dtype != "float32" else ", teacher_cache_dtype=float16 (half the size)"))
    bound = max_bytes()
    if need > bound:
        raise CacheError(f"the teacher cache entry needs {need / 1e9:.2f} GB, more than the cache bound "
                         f"TDML_CACHE_MAX_GB={bound / 1e9:g}; raise TDML_CACHE_MAX_GB above {need / 1e9:.1f} "
                         f"or set {fixes}")
    root = _writable_root()
    free = shutil.disk_usage(root).free + sum(size for _, size, _ in _entries(root))  # evictable
    if need > free:
        raise CacheError(f"the teacher cache entry needs {need / 1e9:.2f} GB but {root} has "
                         f"{free / 1e9:.2f} GB free (counting entries that could be evicted); free disk "
                         f"space, point TDML_CACHE_DIR at a larger disk, or set {fixes}")


def _writable_root() -> Path:
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = Path(tempfile.mkdtemp(prefix=".probe-", dir=root))
        probe.rmdir()
    except OSError as e:
        raise CacheError(f"the teacher cache folder {root} is not writable ({e.strerror or e}); set "
                         f"TDML_CACHE_DIR to a writable folder, or teacher_cache=memory / recompute") from None
    return root


def teacher_outputs(teacher, teacher_id: str, data, split: str, features: tuple[str, ...], batch_size: int,
                    device: torch.device, mode: TeacherCacheMode, dtype: str = "float32") -> TeacherOutputs | None:
    """The split's teacher outputs under ``mode`` (None for ``recompute``: every step),
    stored as ``dtype`` (float32, float16, bfloat16) and handed out as float32."""
    if mode == "recompute":
        return None
    loader = data.loader(split, batch_size)  # unshuffled: row i is window i
    n = _n_rows(loader)
    if mode == "memory":
        return TeacherOutputs(_compute_memory(teacher, loader, features, device, n, dtype), "computed")
    path = cache_root() / cache_key(teacher_id, data, split, features, dtype)
    source = "disk" if (path / "complete").is_file() else "computed"
    for attempt in range(2):
        if source == "computed":
            _write(path, teacher, loader, features, device, n, dtype)
            evict(keep=path)
        try:
            columns = {k: FileRows(path / f"{k}.bin") for k in (PRED, *features)}
            now = time.time()  # last use, for eviction (explicit: file-system clocks are coarse)
            os.utime(path / "complete", (now, now))
            return TeacherOutputs(columns, source)
        except FileNotFoundError:  # evicted by another process between the check and the read
            source = "computed"
    raise CacheError(f"the teacher cache entry {path} was deleted twice while this run opened it: another "
                     f"process is evicting it (TDML_CACHE_MAX_GB too small for the runs sharing "
                     f"{cache_root()}); raise the bound or give this run its own TDML_CACHE_DIR")


def _compute_memory(teacher, loader, features, device, n: int, dtype: str) -> dict[str, MemoryRows]:
    columns: dict[str, MemoryRows] = {}

    def sink(first: bool, chunk: dict[str, torch.Tensor]) -> None:
        if first:
            shapes = _shapes(chunk)
            check_ram(_entry_bytes(shapes, n, dtype))
            columns.update({k: MemoryRows(n, s, dtype) for k, s in shapes.items()})
        for k, v in chunk.items():
            columns[k].append(v, k)

    compute(teacher, loader, features, device, sink)
    return columns


def max_bytes() -> int:
    """The cache's size bound: ``$TDML_CACHE_MAX_GB`` (default 20 GB)."""
    return int(float(os.environ.get("TDML_CACHE_MAX_GB", "20")) * 1e9)


def evict(keep: Path | None = None, limit: int | None = None) -> list[Path]:
    """Delete the least recently used entries until the cache fits ``limit`` bytes; ``keep``
    (the entry just written) stays. Safe while other processes read: an open row file
    stays readable after it is unlinked (its open file descriptor), and a reader that finds an
    entry gone recomputes it. Temporary folders of writers that died (a day untouched) go too."""
    root, limit = cache_root(), max_bytes() if limit is None else limit
    _remove_abandoned(root)
    sized = _entries(root)
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


ABANDONED_S = 24 * 3600  # a temporary entry folder untouched this long belongs to a dead writer


def _remove_abandoned(root: Path) -> None:
    if not root.is_dir():
        return
    now = time.time()
    for d in root.iterdir():
        try:
            if d.name.startswith(".") and d.is_dir() and now - d.stat().st_mtime > ABANDONED_S:
                shutil.rmtree(d, ignore_errors=True)
        except FileNotFoundError:
            continue


def _entries(root: Path) -> list[tuple[float, int, Path]]:
    """(last use, bytes, folder) of every complete entry."""
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
    return sized


def _write(path: Path, teacher, loader, features, device, n: int, dtype: str) -> None:
    """Compute the entry batch by batch, appending each to its file (``tdml.cache_rows``)."""
    root = _writable_root()
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}-{uuid.uuid4().hex[:6]}-", dir=root))
    writers: dict[str, FileWriter] = {}

    def sink(first: bool, chunk: dict[str, torch.Tensor]) -> None:
        if first:  # sized from the first batch, checked before anything is written
            shapes = _shapes(chunk)
            check_fits(_entry_bytes(shapes, n, dtype), dtype)
            writers.update({k: FileWriter(tmp / f"{k}.bin", n, s, dtype) for k, s in shapes.items()})
        for k, v in chunk.items():
            writers[k].append(v, k)

    try:
        compute(teacher, loader, features, device, sink)
        for w in writers.values():
            w.close()
        (tmp / "complete").write_text("ok\n")
        os.replace(tmp, path)  # atomic; fails if another process already put the entry there
    except OSError as e:
        if not (path / "complete").is_file():
            raise CacheError(f"writing the teacher cache entry under {root} failed ({e.strerror or e}); "
                             f"free disk space or set TDML_CACHE_DIR to another folder, or "
                             f"teacher_cache=recompute") from e
    finally:
        for w in writers.values():
            w.f.close()
        shutil.rmtree(tmp, ignore_errors=True)
