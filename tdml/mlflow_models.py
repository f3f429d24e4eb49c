"""The MLflow model registry as tdml uses it: ``models:/`` URIs, versions and aliases, and
tdml models logged and loaded as pyfunc bundles (``tdml.serving``: config + safetensors, so
loading never unpickles code). Part of the tracking layer; ``tdml.tracking`` re-exports every
public name here, so callers keep writing ``tracking.load_model(...)``."""

from __future__ import annotations

import json
import re
import tempfile
from pathlib import Path
from typing import Any

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tdml.errors import RegistryError
from tdml.runstate import timed


def active_run_id() -> str:
    return mlflow.active_run().info.run_id


_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))$")


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    m = _URI.match(uri.strip())
    if not m:
        raise RegistryError(f"teacher {uri!r} is not a registry URI; use models:/<name>@<alias> "
                            f"or models:/<name>/<version>, e.g. models:/etth1-itransformer-L720-H96@champion")
    return m["name"], m["alias"], m["version"]


@timed
def resolve_version(uri: str) -> ModelVersion:
    """The ModelVersion a ``models:/`` URI points to, with errors that list what exists."""
    name, alias, version = parse_model_uri(uri)
    client = MlflowClient()
    try:
        rm = client.get_registered_model(name)
    except MlflowException:
        names = sorted(m.name for m in client.search_registered_models(max_results=200))
        raise RegistryError(
            f"registered model {name!r} does not exist in {mlflow.get_tracking_uri()}; "
            f"registered models: {', '.join(names) or '(none)'}. Train one with "
            f"`mlflow run . -e train_teacher ...` or check MLFLOW_TRACKING_URI."
        ) from None
    if alias is not None:
        aliases = dict(rm.aliases or {})
        if alias not in aliases:
            listed = ", ".join(f"@{a} (v{v})" for a, v in sorted(aliases.items())) or "(none)"
            raise RegistryError(f"registered model {name!r} has no alias {alias!r}; its aliases: {listed}")
        return client.get_model_version_by_alias(name, alias)
    try:
        return client.get_model_version(name, version)
    except MlflowException:
        raise RegistryError(f"registered model {name!r} has no version {version}") from None


def _bundle_dir(model_dir: Path) -> Path:
    mlmodel = mlflow.models.Model.load(str(model_dir / "MLmodel"))
    conf = mlmodel.flavors.get("python_function", {})
    if conf.get("loader_module") != "tdml.serving":
        raise RegistryError(f"{model_dir} is not a tdml model (pyfunc loader "
                            f"{conf.get('loader_module')!r}); tdml loads only models it logged")
    return model_dir / conf["data"]


@timed
def load_model(uri: str, device: str = "cpu"):
    """(model, meta, version) for a ``models:/`` URI; weights via safetensors, no pickle."""
    from tdml.serving import load_bundle

    mv = resolve_version(uri)
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=f"models:/{mv.name}/{mv.version}"))
    model, meta = load_bundle(_bundle_dir(local), device)
    return model, meta, mv


@timed
def log_model(model, meta: dict[str, Any], registered_name: str | None, example=None,
              metrics: dict[str, float] | None = None, version_tags: dict[str, str] | None = None,
              step: int = 0) -> ModelVersion | None:
    """Log the model bundle to the active run with its signature (``tdml.serving.signature``:
    [B, L, C] float32, or a dated frame for a calendar-feature model) and ``example`` as input
    example, log ``metrics`` linked to it (the Models tab and the version page show them) and
    register it as a new version tagged ``version_tags`` (no alias moves: ``tdml.promotion.gate``
    decides that). ``step``: the metrics' step (see ``tdml.runs.common.publish``)."""
    from tdml.serving import save_bundle, signature

    with tempfile.TemporaryDirectory() as tmp:
        bundle = save_bundle(model, meta, Path(tmp) / "tdml_model")
        info = mlflow.pyfunc.log_model(
            name="model", loader_module="tdml.serving", data_path=str(bundle),
            pip_requirements=_requirements(), metadata={"tdml": _json_safe(meta)},
            signature=signature(model, meta), input_example=example,
        )
    if metrics:
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()}, step=step, model_id=info.model_id)
    if not registered_name:
        return None
    tags = {"tdml.task": meta.get("task", ""), "tdml.run_id": active_run_id(), **(version_tags or {})}
    teacher = meta.get("teacher") or {}
    if teacher:  # a student version names its teacher in the registry UI too
        tags.update({"tdml.teacher_name": teacher["name"], "tdml.teacher_version": str(teacher["version"])})
    return mlflow.register_model(info.model_uri, registered_name, tags=tags)


@timed
def model_version(name: str, version: str) -> ModelVersion:
    return MlflowClient().get_model_version(name, version)


def _requirements() -> list[str]:
    import numpy
    import safetensors
    import torch

    return [f"torch=={torch.__version__.split('+')[0]}", f"numpy=={numpy.__version__}",
            f"safetensors=={safetensors.__version__}", f"mlflow=={mlflow.__version__}"]


def _json_safe(meta: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(meta, default=str))


@timed
def current_alias_version(name: str, alias: str) -> ModelVersion | None:
    """The version ``name@alias`` points to, or None when the model or the alias does not exist."""
    client = MlflowClient()
    try:
        aliases = dict(client.get_registered_model(name).aliases or {})
    except MlflowException:
        return None
    return client.get_model_version(name, aliases[alias]) if alias in aliases else None


@timed
def set_alias(name: str, alias: str, version: str) -> None:
    MlflowClient().set_registered_model_alias(name, alias, version)


@timed
def set_version_tags(name: str, version: str, tags: dict[str, Any]) -> None:
    client = MlflowClient()
    for k, v in tags.items():
        client.set_model_version_tag(name, version, k, str(v))
