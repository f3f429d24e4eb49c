"""CPU latency of a model: the median batch forward time on CPU with ``threads`` intra-op
threads (one by default: comparable across machines, not swung by other processes).

torch's thread count is process-wide; a run is the only one training in its process (parallel
trials are processes, ``tdml.tuning.workers``), so the count is set for the measurement and
restored after it, and left alone when it is already ``threads`` (``OMP_NUM_THREADS=1``).
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from tdml.contracts import run_model


def cpu_latency_ms(model: nn.Module, example: dict[str, torch.Tensor], warmup: int = 5,
                   repeats: int = 20, threads: int = 1) -> float:
    """Median forward latency (ms) of ``model`` on the CPU batch ``example``, after warm-up."""
    model = copy.deepcopy(model).cpu().eval()
    batch = {k: v.cpu() for k, v in example.items()}
    before = torch.get_num_threads()
    if before == threads:
        return _measure(model, batch, warmup, repeats)
    torch.set_num_threads(threads)
    try:
        return _measure(model, batch, warmup, repeats)
    finally:
        torch.set_num_threads(before)


def _measure(model: nn.Module, batch: dict[str, torch.Tensor], warmup: int, repeats: int) -> float:
    times = []
    with torch.inference_mode():
        for i in range(warmup + repeats):
            t = time.perf_counter()
            run_model(model, batch)
            if i >= warmup:
                times.append(time.perf_counter() - t)
    return float(np.median(times) * 1000)
