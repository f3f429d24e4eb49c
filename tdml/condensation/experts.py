"""Expert trajectories: N models trained on real windows by the project's engine, with their
parameters flattened after every epoch; one MLflow run (role ``experts``) per set.

Artifact ``experts/``: ``trajectories.safetensors`` (tensor [N, E+1, P], epoch 0 = init) and
``experts.json`` (architecture, parameter layout, expert and data settings). No pickles.
A set is reused by ``runs:/<run_id>``, or found automatically by its settings' fingerprint
(tag ``tdml.experts_key``) so a second condensation with the same settings does not retrain.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.func import functional_call

from tdml import tracking
from tdml.condensation.config import ExpertConfig
from tdml.condensation.matching import FlatParams
from tdml.config import DataConfig, TrainConfig, coerce_dataclass
from tdml.contracts import run_model
from tdml.errors import ConfigError, RegistryError
from tdml.models import Dims, build_model, model_from_config
from tdml.tasks import TASKS
from tdml.train import Supervised, fit, seed_everything

log = logging.getLogger(__name__)

ARTIFACT_DIR = "experts"
KEY_TAG = "tdml.experts_key"
ROLE = "experts"


@dataclass
class Experts:
    trajectories: torch.Tensor  # [N, E+1, P]
    model_config: dict[str, Any]  # TdmlModel.config(): rebuilds the architecture
    spec: FlatParams
    config: ExpertConfig
    data: dict[str, Any]  # dataset, data_path, seq_len, pred_len, sha256
    run_id: str = ""

    def model(self):
        """A fresh module of the experts' architecture (its parameters are ignored by matching)."""
        return model_from_config(self.model_config)

    @property
    def n_epochs(self) -> int:
        return self.trajectories.shape[1] - 1


class SharpnessAware(Supervised):
    """FTD's experts: the loss is taken at theta + rho g/||g|| (SAM), so the engine's Adam step
    uses the gradient at the perturbed point while the stored weights stay at theta."""

    def __init__(self, model, task, rho: float):
        super().__init__(model, task)
        self.rho = rho

    def terms(self, batch):
        params = {n: p for n, p in self.model.named_parameters() if p.requires_grad}
        plain = self.task.target_loss(run_model(self.model, batch).pred, batch["y"])
        grads = torch.autograd.grad(plain, list(params.values()))
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads)).clamp_min(1e-12)
        shifted = {n: p + (self.rho / norm) * g for (n, p), g in zip(params.items(), grads)}
        pred = functional_call(self.model, shifted, (batch["x"],))
        return {"loss": self.task.target_loss(pred, batch["y"]), "plain": plain.detach()}


def experts_key(data_info: dict[str, Any], cfg: ExpertConfig) -> str:
    """Fingerprint of everything that determines a trajectory set (data file, shapes, all expert settings)."""
    blob = json.dumps({"data": data_info, "experts": dataclasses.asdict(cfg)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def data_info(data, data_cfg: DataConfig) -> dict[str, Any]:
    return {"dataset": data.name, "data_path": data_cfg.data_path or "", "seq_len": data.seq_len,
            "pred_len": data.pred_len, "sha256": data.sha256 or "", "n_channels": len(data.columns)}


def check_model(name: str, dims: Dims, params: dict) -> None:
    model = build_model(name, dims, params)
    if model.task != "forecast":
        raise ConfigError(f"experts.model {name!r} is a {model.task} model; condensation needs a forecaster "
                          f"(dlinear, mlp, cnn, lstm_forecaster)")
    if getattr(model, "uses_time_features", False):
        raise ConfigError(f"experts.model {name!r} reads calendar features, which a synthetic set has not; "
                          f"pick one that does not (dlinear, mlp, cnn, lstm_forecaster)")


def train_experts(data, cfg: ExpertConfig, device: torch.device, progress: bool = False) -> tuple[torch.Tensor, dict, FlatParams]:
    """[N, E+1, P] trajectories of ``cfg.n_experts`` models trained by ``tdml.train.fit``."""
    task = TASKS.get("forecast")
    trajs, model_cfg, spec = [], None, None
    for i in range(cfg.n_experts):
        seed = cfg.seed * 1000 + i
        seed_everything(seed)
        model = build_model(cfg.model, data.dims, cfg.model_params)
        spec = FlatParams.of(model)
        model_cfg = model.config()
        snaps = [spec.flatten(model)]
        objective = SharpnessAware(model, task, cfg.sharpness) if cfg.sharpness > 0 else Supervised(model, task)
        # constant lr and no early stop: the trajectory is the whole run, not the best checkpoint
        tcfg = TrainConfig(epochs=cfg.epochs, lr=cfg.lr, lr_schedule="constant", patience=cfg.epochs + 1,
                           seed=seed, progress=progress, max_batches=cfg.max_batches, optimizer=cfg.optimizer,
                           momentum=cfg.momentum, checkpoint="last")

        def snapshot(epoch, train_terms, val_metrics, lr, _model=model, _i=i):
            snaps.append(spec.flatten(_model).cpu())
            tracking.log_metrics({f"expert{_i}_train_loss": train_terms["loss"],
                                  f"expert{_i}_val_mse": val_metrics["mse"]}, step=epoch)

        fit(objective, data.loader("train", cfg.batch_size, shuffle=True, seed=seed, stride=cfg.stride),
            data.loader("val", 512), tcfg, [snapshot], device)
        trajs.append(torch.stack(snaps))
    return torch.stack(trajs), model_cfg, spec


def save_experts(ex: Experts, directory: Path) -> Path:
    from safetensors.torch import save_file

    directory.mkdir(parents=True, exist_ok=True)
    save_file({"trajectories": ex.trajectories.contiguous()}, str(directory / "trajectories.safetensors"))
    meta = {"model": ex.model_config, "param_names": list(ex.spec.names),
            "param_shapes": [list(s) for s in ex.spec.shapes], "experts": dataclasses.asdict(ex.config),
            "data": ex.data}
    (directory / "experts.json").write_text(json.dumps(meta, indent=2))
    return directory


def load_experts_dir(directory: Path, run_id: str = "") -> Experts:
    from safetensors.torch import load_file

    meta = json.loads((directory / "experts.json").read_text())
    trajs = load_file(str(directory / "trajectories.safetensors"))["trajectories"]
    spec = FlatParams(tuple(meta["param_names"]), tuple(tuple(s) for s in meta["param_shapes"]))
    return Experts(trajs, meta["model"], spec, coerce_dataclass(ExpertConfig, meta["experts"], "experts"),
                   meta["data"], run_id)


def load_experts(uri: str) -> Experts:
    """Experts from ``runs:/<run_id>`` (optionally ``/experts``), with errors naming the fix."""
    if not uri.startswith("runs:/"):
        raise ConfigError(f"experts {uri!r}: expected runs:/<run_id> of an experts run, '' (reuse by "
                          f"settings or train) or 'new' (always train)")
    run_id = uri[len("runs:/"):].split("/")[0]
    status, tags = tracking.run_info(run_id)
    if tags.get(tracking.ROLE_TAG) != ROLE or status != "FINISHED":
        raise RegistryError(f"run {run_id} is not a finished experts run (role {tags.get(tracking.ROLE_TAG)!r}, "
                            f"status {status}); pass the id of a run tagged tdml.role=experts")
    return load_experts_dir(tracking.download_run_artifacts(run_id, ARTIFACT_DIR), run_id)


def check_compatible(ex: Experts, info: dict[str, Any]) -> None:
    diffs = [f"{k}: experts {ex.data.get(k)!r}, requested {info[k]!r}"
             for k in ("seq_len", "pred_len", "n_channels") if ex.data.get(k) != info[k]]
    if diffs:
        raise ConfigError(f"experts run {ex.run_id} does not fit this data: " + "; ".join(diffs)
                          + ". Use experts trained with these settings or pass experts='' to train them.")


def get_experts(uri: str, data, data_cfg: DataConfig, cfg: ExpertConfig, device: torch.device,
                progress: bool = False) -> tuple[Experts, bool]:
    """(experts, reused): by URI, by fingerprint, or trained now in a nested run of role 'experts'."""
    info = data_info(data, data_cfg)
    if uri not in ("", "new"):
        ex = load_experts(uri)
        check_compatible(ex, info)
        return ex, True
    check_model(cfg.model, data.dims, cfg.model_params)
    key = experts_key(info, cfg)
    if uri == "":
        found = tracking.find_finished_runs({tracking.ROLE_TAG: ROLE, KEY_TAG: key})
        if found:
            try:
                return load_experts(f"runs:/{found[0]}"), True
            except RegistryError as e:  # a store copied without its artifact folder (a fresh checkout)
                log.warning("experts run %s has these settings but cannot be read (%s); training them again",
                            found[0], e)
    with tracking.start_run("", f"experts-{cfg.model}", ROLE, tags={KEY_TAG: key}, nested=True):
        tracking.log_params({"experts": dataclasses.asdict(cfg), "data": info})
        trajs, model_cfg, spec = train_experts(data, cfg, device, progress)
        ex = Experts(trajs, model_cfg, spec, cfg, info, tracking.active_run_id())
        with tempfile.TemporaryDirectory() as tmp:
            tracking.log_artifacts(save_experts(ex, Path(tmp) / ARTIFACT_DIR), ARTIFACT_DIR)
        tracking.log_metrics({"n_params": spec.numel, "n_epochs": ex.n_epochs})
    return ex, False


__all__ = ["Experts", "get_experts", "load_experts", "train_experts", "save_experts", "load_experts_dir",
           "SharpnessAware", "experts_key"]
