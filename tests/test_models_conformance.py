"""One conformance suite for every registered forecaster (CPU only, tiny sizes).

Each model must: give [B, H, C] for several shapes, with and without calendar marks;
return exactly the features it declares, with the distill feature per channel [B, C, D];
read marks iff it says so; learn on a tiny batch; be deterministic under a seed; and
rebuild from its config + a pickle-free state_dict to identical predictions.
A model added later without an entry in TINY is tested at its `synthetic` defaults.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from tdml.models import MODELS, Dims, build_model
from tdml.models.base import Forecaster
from tdml.models.defaults import default_params
from tdml.serving import load_bundle, save_bundle

# Smallest sizes that still exercise every code path (attention heads, several scales,
# several periods/branches, grouped features).
TINY: dict[str, dict] = {
    "mlp": {"d_model": 16},
    "dmlp": {"d_model": 16, "moving_avg": 5},
    "dlinear": {"moving_avg": 5},
    "itransformer": {"d_model": 16, "n_heads": 2, "d_ff": 16},
    "patchtst": {"d_model": 16, "n_heads": 2, "d_ff": 16, "patch_len": 8, "stride": 4},
    "moderntcn": {"patch_size": 4, "patch_stride": 2, "d_model": 8, "large_kernel": 7, "small_kernel": 3,
                  "ffn_ratio": 2},
    "timemixer": {"d_model": 8, "d_ff": 16, "down_sampling_layers": 2, "moving_avg": 5},
    "timesnet": {"d_model": 8, "d_ff": 8, "top_k": 2, "num_kernels": 2, "feature_groups": 4},
    "micn": {"d_model": 16, "d_ff": 16, "conv_kernel": [4, 6], "feature_groups": 4},
    "autoformer": {"d_model": 16, "n_heads": 2, "d_ff": 16, "e_layers": 1, "moving_avg": 5,
                   "feature_groups": 4},
    "fedformer": {"d_model": 16, "n_heads": 2, "d_ff": 16, "e_layers": 1, "moving_avg": 5, "modes": 4,
                  "feature_groups": 4},
}

FORECASTERS = [n for n in MODELS.names() if MODELS.get(n).task == "forecast"]
SHAPES = [(32, 8, 3, 0), (48, 12, 2, 4), (40, 5, 1, 4)]  # (L, H, C, n_marks)
B = 4


@pytest.fixture(autouse=True)
def _cpu_threads():
    torch.set_num_threads(1)  # the suite runs next to other jobs on a small machine


def tiny_params(name: str) -> dict:
    return TINY.get(name) or default_params(name, "synthetic")


def make(name: str, L: int, H: int, C: int, n_marks: int, seed: int = 0):
    torch.manual_seed(seed)
    return build_model(name, Dims(seq_len=L, n_channels=C, pred_len=H, n_marks=n_marks), tiny_params(name))


def batch(L: int, H: int, C: int, n_marks: int, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    t = torch.arange(L + H, dtype=torch.float32)[None, :, None]
    phase = torch.rand(B, 1, C, generator=g) * 6.28
    series = torch.sin(2 * torch.pi * t / 8 + phase) + 0.1 * torch.randn(B, L + H, C, generator=g)
    marks = torch.rand(B, L + H, n_marks, generator=g) - 0.5 if n_marks else None
    x, y = series[:, :L], series[:, L:]
    xm, ym = (marks[:, :L], marks[:, L:]) if n_marks else (None, None)
    return x, y, xm, ym


def test_every_teacher_is_registered():
    expected = {"itransformer", "moderntcn", "timemixer", "patchtst", "micn", "fedformer", "timesnet",
                "autoformer", "dlinear", "mlp", "dmlp"}
    assert expected <= set(FORECASTERS)


@pytest.mark.parametrize("name", FORECASTERS)
def test_shapes_and_declared_features(name):
    cls = MODELS.get(name)
    assert cls.distill_feature, name
    for L, H, C, M in SHAPES:
        model = make(name, L, H, C, M).eval()
        x, _, xm, ym = batch(L, H, C, M)
        declared = model.feature_shapes()
        assert declared == Forecaster.feature_shapes(model), "closed form disagrees with a real pass"
        assert cls.distill_feature in declared
        assert len(declared[cls.distill_feature]) == 2 and declared[cls.distill_feature][0] == C
        with torch.no_grad():
            for marks in ([xm, ym], [None, None]):  # a model built with marks still runs without dates
                y, feats = model.forward_features(x, *marks)
                assert y.shape == (B, H, C)
                assert torch.isfinite(y).all()
                assert set(feats) == set(declared)
                for k, v in feats.items():
                    assert tuple(v.shape) == (B, *declared[k]), k
                assert feats[cls.distill_feature].dim() == 3
            assert torch.equal(model(x, xm, ym), model.forward_features(x, xm, ym)[0])


@pytest.mark.parametrize("name", FORECASTERS)
def test_reads_marks_iff_declared(name):
    L, H, C, M = SHAPES[1]
    model = make(name, L, H, C, M).eval()
    x, _, xm, ym = batch(L, H, C, M)
    with torch.no_grad():
        changed = not torch.allclose(model(x, xm, ym), model(x, xm + 0.3, ym - 0.3))
    assert changed == MODELS.get(name).uses_time_features == model.reads_marks()
    assert not make(name, L, H, C, 0).reads_marks()  # data without dates
    if hasattr(MODELS.get(name).Params, "use_time_features"):  # the switch turns the marks off
        torch.manual_seed(0)
        off = build_model(name, Dims(seq_len=L, n_channels=C, pred_len=H, n_marks=M),
                          {**tiny_params(name), "use_time_features": False}).eval()
        with torch.no_grad():
            assert not off.reads_marks() and torch.equal(off(x, xm, ym), off(x, xm + 0.3, ym - 0.3))


@pytest.mark.parametrize("name", FORECASTERS)
def test_a_few_adam_steps_lower_the_loss(name):
    L, H, C, M = SHAPES[1]
    model = make(name, L, H, C, M).train()
    x, y, xm, ym = batch(L, H, C, M)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss() -> torch.Tensor:
        torch.manual_seed(123)  # same dropout masks each time we measure
        return torch.nn.functional.mse_loss(model(x, xm, ym), y)

    with torch.no_grad():
        before = loss().item()
    for step in range(10):
        opt.zero_grad()
        loss().backward()
        if step == 0:  # every parameter takes part in the forecast
            dead = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
            assert not dead, f"{name}: parameters without gradient: {dead}"
        opt.step()
    with torch.no_grad():
        after = loss().item()
    assert after < before, f"{name}: {before:.4f} -> {after:.4f}"


@pytest.mark.parametrize("name", FORECASTERS)
def test_same_seed_same_output(name):
    L, H, C, M = SHAPES[0]
    x, _, xm, ym = batch(L, H, C, M)
    outs = []
    for _ in range(2):
        model = make(name, L, H, C, M, seed=7).eval()
        with torch.no_grad():
            outs.append(model(x, xm, ym))
    assert torch.equal(outs[0], outs[1])


@pytest.mark.parametrize("name", FORECASTERS)
def test_round_trip_without_pickle(name, tmp_path):
    """Through the registry's own bundle format: config.json + weights.safetensors."""
    L, H, C, M = SHAPES[1]
    model = make(name, L, H, C, M, seed=3)
    x, y, xm, ym = batch(L, H, C, M)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)  # move weights (and BatchNorm stats) off their init
    for _ in range(2):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(x, xm, ym), y).backward()
        opt.step()
    model.eval()

    bundle = save_bundle(model, {"task": model.task}, tmp_path / "bundle")
    assert sorted(p.name for p in bundle.iterdir()) == ["config.json", "weights.safetensors"]
    torch.manual_seed(999)  # a different init, so equality comes from the weights alone
    rebuilt, meta = load_bundle(bundle)
    assert type(rebuilt) is type(model) and not rebuilt.training
    assert rebuilt.config() == model.config() and meta["model"] == json.loads(json.dumps(model.config()))
    with torch.no_grad():
        assert torch.equal(rebuilt(x, xm, ym), model(x, xm, ym))
        assert all(torch.equal(a, b) for a, b in zip(rebuilt.features(x, xm, ym).values(),
                                                     model.features(x, xm, ym).values()))


def test_models_never_name_a_device():
    root = Path(__file__).resolve().parents[1] / "tdml" / "models"
    offenders = [str(p) for p in root.rglob("*.py") if "cuda" in p.read_text()]
    assert not offenders, f"device literals in models: {offenders}"
