"""The teacher cache's memory does not grow with the split: an entry is streamed to disk while
it is computed and read back by batch (tdml.cache_rows), so a process that builds and then reads
a 4x larger entry peaks at the same resident size. Measured in fresh processes (ru_maxrss)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from tdml.cache_rows import FileRows, FileWriter, MemoryRows
from tdml.errors import CacheError

# A stand-in teacher whose feature is wide (C x 4096 per window) and cheap to compute, so the
# entry is hundreds of MB while the run takes seconds. Real models go through the same path.
CHILD = textwrap.dedent("""
    import json, os, resource, sys
    import torch
    from torch import nn
    from tdml.data.forecast import ForecastData, Split
    from tdml.teacher_cache import teacher_outputs

    n_rows, C, D = int(sys.argv[1]), 16, 4096
    g = torch.Generator().manual_seed(0)
    split = Split(torch.randn(n_rows, C, generator=g), None)
    data = ForecastData("wide", [f"c{i}" for i in range(C)], 24, 8, {"train": split}, None, None,
                        None, "test", None)

    class Wide(nn.Module):
        def forward_features(self, x):
            h = x.mean(1, keepdim=True).transpose(1, 2) * torch.linspace(-1, 1, D)
            return x[:, -8:], {"hidden": h}

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out = teacher_outputs(Wide(), "wide/1", data, "train", ("hidden",), 32, torch.device("cpu"), "disk",
                          sys.argv[2])
    order = torch.randperm(len(out), generator=g)
    total = 0.0
    for i in range(0, len(out), 32):  # one epoch of shuffled batch reads
        total += float(out.lookup(order[i:i + 32], torch.device("cpu")).features["hidden"].sum())
    entry = sum(f.stat().st_size for d in os.scandir(os.environ["TDML_CACHE_DIR"]) if d.is_dir()
                for f in os.scandir(d.path))
    print(json.dumps({"peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                      "base": base * 1024, "entry": entry, "rows": len(out)}))
""")


def _child(tmp_path, n_rows: int, dtype: str = "float32") -> dict:
    cache = tmp_path / f"cache-{n_rows}-{dtype}"
    env = {**os.environ, "TDML_CACHE_DIR": str(cache), "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, str(n_rows), dtype], env=env, capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_memory_does_not_grow_with_the_split(tmp_path):
    small, large = _child(tmp_path, 1_000), _child(tmp_path, 4_000)
    assert large["entry"] > 3.5 * small["entry"] and large["entry"] > 900e6  # ~1 GB entry on disk
    grown = large["peak"] - small["peak"]
    # a held entry would add the ~0.75 GB difference; streaming adds nothing beyond noise
    assert grown < 60e6, (small, large)
    assert large["peak"] - large["base"] < 250e6, large


def test_compact_dtypes_halve_the_entry_and_stay_close(tmp_path):
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal((50, 3, 64)).astype(np.float32))
    for dtype, tol in (("float32", 0), ("float16", 1e-3), ("bfloat16", 8e-3)):
        w = FileWriter(tmp_path / f"{dtype}.bin", 50, (3, 64), dtype)
        w.append(x[:20], "h")
        w.append(x[20:], "h")
        w.close()
        rows = FileRows(tmp_path / f"{dtype}.bin")
        assert (tmp_path / f"{dtype}.bin").stat().st_size == 50 * 3 * 64 * (4 if dtype == "float32" else 2)
        idx = np.array([7, 3, 4, 5, 49, 0, 3])  # unsorted, with a run and a repeat
        got = rows.take(idx)
        assert got.dtype == torch.float32
        torch.testing.assert_close(got, x[idx], rtol=tol, atol=tol)
        torch.testing.assert_close(rows.all(), x, rtol=tol, atol=tol)
        mem = MemoryRows(50, (3, 64), dtype)
        mem.append(x, "h")
        torch.testing.assert_close(mem.take(idx), got)  # same rounding in memory and on disk


def test_float16_overflow_is_an_error_not_inf(tmp_path):
    w = FileWriter(tmp_path / "h.bin", 1, (2,), "float16")
    with pytest.raises(CacheError, match="beyond float16's range.*bfloat16 or float32"):
        w.append(torch.tensor([[1.0, 7e4]]), "hidden")
