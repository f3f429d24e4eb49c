"""What decides a run's floating-point results besides its config and seed, as one run tag.

Same seed, same config, same torch: a 300-epoch LSTM still ends differently on a CPU with
AVX-512 than on one without, because oneDNN picks its kernels (and their summation order) by
instruction set, and training amplifies the rounding. The thread count does the same. Measured
(ItalyPowerDemand teacher, seed 0): 259 epochs on an AVX-512 host, 296 with
``ONEDNN_MAX_CPU_ISA=AVX2`` (exactly what an AVX2-only host recorded), 265 with two threads.
So every run records these, and a user reproducing a run on other hardware knows what to pin.
"""

from __future__ import annotations

import functools
import os
import platform

import torch

NUMERICS_TAG = "tdml.numerics"
# environment variables that change which kernels run (and so the rounding)
PINNING_VARS = ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "MKL_ENABLE_INSTRUCTIONS", "MKL_CBWR")


@functools.lru_cache(maxsize=1)
def cpu() -> str:
    """CPU model and its widest vector extension (from /proc/cpuinfo where there is one)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    isa = next((name for flag, name in (("amx_tile", "AMX"), ("avx512f", "AVX-512"), ("avx2", "AVX2"))
                if flag in flags), "")
    return f"{model} ({isa})" if isa else model


def numerics() -> str:
    """One line: torch, device, ATen's CPU kernels, threads, and any kernel-pinning variables."""
    parts = [f"torch {torch.__version__}"]
    if torch.cuda.is_available():
        parts.append(f"cuda {torch.version.cuda} {torch.cuda.get_device_name()}")
    parts += [f"cpu {cpu()}", f"aten {torch.backends.cpu.get_cpu_capability()}",
              f"threads {torch.get_num_threads()}"]
    parts += [f"{v}={os.environ[v]}" for v in PINNING_VARS if os.environ.get(v)]
    return "; ".join(parts)
