"""Row stores for the teacher cache: a ``[N, ...]`` array written once in order and then read
by arbitrary row sets, in memory or in a file read with ``pread``.

Why not a memory map: every page a process touches through a mapping counts in its resident
set until the kernel reclaims it, so reading random windows of a 12 GB entry through a map
grows the process towards 12 GB over an epoch. ``pread`` copies only the requested rows into
a fresh buffer; the file's pages stay in the kernel's page cache (shared, reclaimable) and
the process holds one batch. Writing is sequential for the same reason.

Stored dtypes: float32, float16 and bfloat16 (bf16 has no numpy dtype: its bytes are stored
as they are and viewed as ``torch.bfloat16``). Rows are always handed out as float32.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import torch

from tdml.errors import CacheError

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
FP16_MAX = 65504.0  # largest finite float16: larger teacher outputs cannot be stored in it


def row_bytes(row_shape: tuple[int, ...], dtype: str) -> int:
    return int(np.prod(row_shape, dtype=np.int64)) * DTYPES[dtype].itemsize


def check_range(t: torch.Tensor, dtype: str, name: str) -> None:
    """float16 overflow is an error, not a silent inf in every later loss."""
    if dtype == "float16" and t.numel() and float(t.abs().max()) > FP16_MAX:
        raise CacheError(f"teacher output {name!r} has values beyond float16's range (|x| > {FP16_MAX:g}); "
                         f"use teacher_cache_dtype=bfloat16 or float32")


def encode(t: torch.Tensor, dtype: str, name: str) -> bytes:
    """A float tensor's bytes in the stored dtype."""
    check_range(t, dtype, name)
    return t.detach().to("cpu", DTYPES[dtype]).contiguous().view(torch.uint8).numpy().tobytes()


class MemoryRows:
    """Rows held in one preallocated tensor (``teacher_cache=memory``)."""

    def __init__(self, n: int, row_shape: tuple[int, ...], dtype: str):
        self.dtype, self.data = dtype, torch.empty((n, *row_shape), dtype=DTYPES[dtype])
        self._filled = 0

    def append(self, t: torch.Tensor, name: str) -> None:
        check_range(t, self.dtype, name)
        self.data[self._filled:self._filled + len(t)] = t.to(self.data.dtype)
        self._filled += len(t)

    def __len__(self) -> int:
        return self.data.shape[0]

    def take(self, idx: np.ndarray) -> torch.Tensor:
        return self.data[torch.from_numpy(idx)].float()

    def all(self) -> torch.Tensor:
        return self.data.float()


class FileRows:
    """Rows of a ``<name>.bin`` file (raw, row-major) described by ``<name>.json``."""

    def __init__(self, path: Path):
        meta = json.loads(path.with_suffix(".json").read_text())
        self.n, self.row_shape, self.dtype = int(meta["n"]), tuple(meta["row_shape"]), meta["dtype"]
        self.row_bytes = row_bytes(self.row_shape, self.dtype)
        # the descriptor stays valid if the entry is evicted (unlinked) while this run reads it
        self.fd = os.open(path, os.O_RDONLY)
        if os.fstat(self.fd).st_size != self.n * self.row_bytes:
            os.close(self.fd)
            raise OSError(f"{path}: size does not match its description (partial entry)")

    def __del__(self):
        fd = getattr(self, "fd", None)
        if fd is not None:
            os.close(fd)

    def __len__(self) -> int:
        return self.n

    def _read(self, start: int, count: int, into: np.ndarray) -> None:
        view, offset = memoryview(into).cast("B"), start * self.row_bytes
        done = 0
        while done < len(view):  # pread may return fewer bytes than asked
            got = os.preadv(self.fd, [view[done:]], offset + done)
            if got <= 0:
                raise OSError(f"short read from the teacher cache at row {start}")
            done += got

    def _rows_raw(self, idx: np.ndarray) -> np.ndarray:
        """Rows ``idx`` as uint8 [len(idx), row_bytes]; each run of consecutive rows is one read."""
        order = np.argsort(idx, kind="stable")
        s = idx[order]
        raw = np.empty((len(idx), self.row_bytes), dtype=np.uint8)
        breaks = np.flatnonzero(np.diff(s) != 1) + 1
        for a, b in zip(np.r_[0, breaks], np.r_[breaks, len(s)]):
            self._read(int(s[a]), int(b - a), raw[a:b])
        out = np.empty_like(raw)
        out[order] = raw
        return out

    def _decode(self, raw: np.ndarray, n: int) -> torch.Tensor:
        t = torch.from_numpy(raw).view(DTYPES[self.dtype]).reshape(n, *self.row_shape)
        return t.float()

    def take(self, idx: np.ndarray) -> torch.Tensor:
        if len(idx) and (idx.min() < 0 or idx.max() >= self.n):
            raise IndexError(f"row index out of range [0, {self.n})")
        return self._decode(self._rows_raw(idx), len(idx))

    def all(self) -> torch.Tensor:
        raw = np.empty((self.n, self.row_bytes), dtype=np.uint8)
        self._read(0, self.n, raw)
        return self._decode(raw, self.n)


class FileWriter:
    """Streams chunks of rows to ``<name>.bin``; ``close`` writes the description."""

    def __init__(self, path: Path, n: int, row_shape: tuple[int, ...], dtype: str):
        self.path, self.n, self.row_shape, self.dtype = path, n, row_shape, dtype
        self.f = open(path, "wb")
        self.written = 0

    def append(self, t: torch.Tensor, name: str) -> None:
        self.f.write(encode(t, self.dtype, name))
        self.written += len(t)

    def close(self) -> None:
        self.f.close()
        if self.written != self.n:
            raise RuntimeError(f"{self.path}: wrote {self.written} rows, expected {self.n}")
        self.path.with_suffix(".json").write_text(json.dumps(
            {"n": self.n, "row_shape": list(self.row_shape), "dtype": self.dtype}))
