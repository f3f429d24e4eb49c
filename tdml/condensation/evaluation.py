"""Fresh models trained on a (synthetic or real-subset) window set only, by the project's engine.

Checkpoints are picked on the real validation split; the test split is read once per model,
after fitting, and only when ``final_split == 'test'`` (a search keeps it unread).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from tdml.condensation.config import EvalConfig
from tdml.condensation.dataset import with_train_windows
from tdml.config import TrainConfig
from tdml.models import build_model
from tdml.models.defaults import default_params
from tdml.tasks import TASKS
from tdml.train import Supervised, evaluate, fit, seed_everything

EVAL_BATCH = 1024


@dataclass
class EvalRow:
    model: str
    seed: int
    val_mse: float
    val_mae: float
    final: dict[str, float]  # metrics on final_split
    best_epoch: int


def build_eval_model(data, model: str, cfg: EvalConfig):
    """A fresh evaluation model: the dataset's defaults under ``eval.model_params[model]``."""
    return build_model(model, data.dims, {**default_params(model, data.name), **cfg.model_params.get(model, {})})


def fit_on_windows(data, x: torch.Tensor, y: torch.Tensor, model: str, seed: int, cfg: EvalConfig,
                   epochs: int, device: torch.device):
    """(objective, FitResult) of a fresh ``model`` trained on (x, y) (full batch unless
    ``eval.batch_size``), validated on real val."""
    syn = with_train_windows(data, x, y)
    seed_everything(seed)
    objective = Supervised(build_eval_model(syn, model, cfg), TASKS.get("forecast"))
    last = cfg.checkpoint == "last"  # CondTSF's code: every epoch runs, the last one is read
    tcfg = TrainConfig(epochs=epochs, lr=cfg.lr, lr_schedule="constant", patience=epochs + 1 if last else cfg.patience,
                       seed=seed, progress=False, optimizer=cfg.optimizer, momentum=cfg.momentum,
                       checkpoint=cfg.checkpoint)
    result = fit(objective, syn.loader("train", cfg.batch_size or x.shape[0], shuffle=True, seed=seed),
                 syn.loader("val", EVAL_BATCH), tcfg, (), device)
    return objective, result


def validation_score(data, cfg: EvalConfig, device: torch.device):
    """score(x, y) -> val MSE of the first eval model, first seed, a shorter fit (candidate selection)."""

    def score(x: torch.Tensor, y: torch.Tensor) -> float:
        _, res = fit_on_windows(data, x.detach(), y.detach(), cfg.models[0], cfg.seeds[0], cfg,
                                cfg.select_epochs, device)
        return res.best_val["mse"]

    return score


def evaluate_windows(data, x: torch.Tensor, y: torch.Tensor, cfg: EvalConfig, device: torch.device,
                     final_split: str = "test") -> list[EvalRow]:
    rows = []
    for model in cfg.models:
        for seed in cfg.seeds:
            objective, res = fit_on_windows(data, x, y, model, seed, cfg, cfg.epochs, device)
            final = res.best_val if final_split == "val" else evaluate(
                objective, data.loader(final_split, EVAL_BATCH), device)[0]
            rows.append(EvalRow(model, seed, res.best_val["mse"], res.best_val["mae"], dict(final), res.best_epoch))
    return rows


def summarize(rows: list[EvalRow], split: str, prefix: str = "") -> dict[str, float]:
    """Mean/std over seeds per model (``<prefix><split>_mse_<model>``); the first model's numbers
    also without the model suffix (the headline)."""
    out: dict[str, float] = {}
    models = list(dict.fromkeys(r.model for r in rows))
    for i, model in enumerate(models):
        rs = [r for r in rows if r.model == model]
        for metric in ("mse", "mae"):
            vals = np.array([r.final[metric] for r in rs])
            vv = np.array([getattr(r, f"val_{metric}") for r in rs])
            names = [f"_{model}"] + ([""] if i == 0 else [])
            for suffix in names:
                out[f"{prefix}{split}_{metric}{suffix}"] = float(vals.mean())
                out[f"{prefix}{split}_{metric}_std{suffix}"] = float(vals.std())
                out[f"{prefix}val_{metric}{suffix}"] = float(vv.mean())
    return out
