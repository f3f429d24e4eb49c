"""Mixed-precision training (``train.precision``): which precisions a device supports, and the
autocast context and gradient scaler the engine uses for them.

- ``fp32``: everywhere.
- ``bf16``: CUDA devices that report bf16 support; CPUs with AVX-512 BF16 or AMX (below
  that, PyTorch emulates bf16 matmuls and they are slower than fp32).
- ``fp16``: CUDA only (with a gradient scaler: fp16 gradients underflow); CPU autocast has
  no fast fp16 path.

Only model forwards run in the reduced precision: the losses are computed in float32 from
outputs cast back (``tdml.train``), and the weights, optimizer state, evaluation and the
served model stay float32. A precision the device cannot run fails before training with the
supported choices.
"""

from __future__ import annotations

import contextlib
from typing import Literal

import torch

from tdml.errors import ConfigError

Precision = Literal["fp32", "bf16", "fp16"]
DTYPE = {"bf16": torch.bfloat16, "fp16": torch.float16}


def full(x: torch.Tensor) -> torch.Tensor:
    """A reduced-precision forward output back in float32 (float32 and float64 pass through)."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def cpu_has_bf16() -> bool:
    cpu = torch.cpu
    return bool(getattr(cpu, "_is_avx512_bf16_supported", lambda: False)()
                or getattr(cpu, "_is_amx_tile_supported", lambda: False)())


def supported(device: torch.device) -> list[str]:
    if device.type == "cuda":
        return ["fp32", "fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
    if device.type == "cpu":
        return ["fp32"] + (["bf16"] if cpu_has_bf16() else [])
    return ["fp32"]


def check(precision: str, device: torch.device) -> None:
    ok = supported(device)
    if precision not in ok:
        why = {"fp16": "CPU autocast has no fast float16 path", "bf16": "this CPU has neither AVX-512 BF16 nor AMX"}
        reason = why.get(precision, "") if device.type == "cpu" else ""
        raise ConfigError(f"train.precision={precision} is not supported on {device}"
                          f"{f' ({reason})' if reason else ''}; supported here: {', '.join(ok)}")


def autocast(precision: str, device: torch.device):
    """The context a training forward runs in (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPE[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """fp16's loss scaling; disabled (every call passes straight through) for the others."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")
