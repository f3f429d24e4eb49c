"""Trajectory matching (MTT): K differentiable SGD steps on a flat parameter vector.

The student is the expert's architecture evaluated with ``torch.func.functional_call`` on
parameters unflattened from one vector, so the unroll is a plain function of
(start parameters, synthetic data, inner lr) and gradients reach the synthetic series.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


@dataclass(frozen=True)
class FlatParams:
    """Names and shapes of a module's trainable parameters, in ``named_parameters`` order."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]

    @classmethod
    def of(cls, module: nn.Module) -> "FlatParams":
        named = [(n, tuple(p.shape)) for n, p in module.named_parameters() if p.requires_grad]
        return cls(tuple(n for n, _ in named), tuple(s for _, s in named))

    @property
    def numel(self) -> int:
        return sum(int(torch.Size(s).numel()) for s in self.shapes)

    def flatten(self, module: nn.Module) -> torch.Tensor:
        params = dict(module.named_parameters())
        return torch.cat([params[n].detach().reshape(-1) for n in self.names]).clone()

    def unflatten(self, vec: torch.Tensor) -> dict[str, torch.Tensor]:
        out, i = {}, 0
        for n, s in zip(self.names, self.shapes):
            k = int(torch.Size(s).numel())
            out[n] = vec[i:i + k].view(s)
            i += k
        return out


def predict(model: nn.Module, spec: FlatParams, theta: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The model's forecast for ``x`` with parameters ``theta`` (a flat vector)."""
    return functional_call(model, spec.unflatten(theta), (x,))


def unroll(model: nn.Module, spec: FlatParams, theta0: torch.Tensor, x: torch.Tensor, y: torch.Tensor,
           lr: torch.Tensor | float, steps: int, create_graph: bool = True) -> torch.Tensor:
    """theta_K after ``steps`` full-batch SGD steps on MSE(f(theta; x), y), differentiable."""
    theta = theta0.detach().requires_grad_(True) if not theta0.requires_grad else theta0
    for _ in range(steps):
        loss = F.mse_loss(predict(model, spec, theta, x), y)
        (g,) = torch.autograd.grad(loss, theta, create_graph=create_graph)
        theta = theta - lr * g
    return theta


def matching_loss(theta_k: torch.Tensor, start: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """||theta_K - theta*_{t+M}||^2 / ||theta*_t - theta*_{t+M}||^2 (1 when the student stays put)."""
    return (theta_k - target).pow(2).sum() / (start - target).pow(2).sum().clamp_min(1e-12)
