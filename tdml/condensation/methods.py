"""Condensation methods as a registry: a base (``random`` | ``mtt``) joined by ``+`` with plug-ins.

``mtt+condtsf+ddtime+datm`` = MTT with CondTSF label interpolation, both DDTime terms and a
widening start-epoch window. Each name only sets config defaults; explicit ``--set`` keys win,
so ``--method mtt+ddtime --set ddtime.isib=false`` is DDTime's frequency term alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tdml.errors import ConfigError
from tdml.registry import Registry

BASES: Registry[dict[str, Any]] = Registry("condensation base")
BASES.register("random")({})  # a random real subset of the same size: no experts, no matching
BASES.register("mtt")({})

PLUGINS: Registry[dict[str, Any]] = Registry("condensation plug-in")
PLUGINS.register("condtsf")({"condtsf": {"enabled": True}})
# DDTime's synthetic set is S independent windows updated by Adam at lr 0.1 (its paper); the
# other methods keep CondTSF's series layout and lr 0.01 (docs/condense.md, "Decisions")
PLUGINS.register("ddtime")({"ddtime": {"freq": True, "isib": True}, "layout": "samples",
                            "match": {"series_lr": 0.1}})
PLUGINS.register("ftd")({"experts": {"sharpness": 0.05}})
PLUGINS.register("datm")({"match": {"datm": True}})

# the combinations the benchmark and the docs name (any base+plug-ins string is accepted)
NAMED = ["random", "mtt", "mtt+condtsf", "mtt+ddtime", "mtt+condtsf+ddtime", "mtt+ddtime+ftd",
         "mtt+ddtime+datm"]


def parse_method(method: str) -> tuple[str, list[str]]:
    parts = [p.strip().lower() for p in method.split("+") if p.strip()]
    if not parts:
        raise ConfigError(f"method is empty; use one of {', '.join(NAMED)}")
    base, plugins = parts[0], parts[1:]
    if base not in BASES:
        raise ConfigError(f"method {method!r}: unknown base {base!r}; valid bases: {', '.join(BASES.names())}, "
                          f"e.g. {', '.join(NAMED)}")
    for p in plugins:
        if p not in PLUGINS:
            raise ConfigError(f"method {method!r}: unknown plug-in {p!r}; valid plug-ins: "
                              f"{', '.join(PLUGINS.names())} (joined with '+', e.g. mtt+condtsf+ddtime)")
    if base == "random" and plugins:
        raise ConfigError(f"method {method!r}: 'random' takes no plug-ins; use mtt+{'+'.join(plugins)}")
    if len(set(plugins)) != len(plugins):
        raise ConfigError(f"method {method!r} names a plug-in twice")
    return base, plugins


@dataclass(frozen=True)
class Protocol:
    """A schedule: config defaults, and per plug-in defaults that differ under it."""

    defaults: dict[str, Any]
    plugins: dict[str, dict[str, Any]]


PROTOCOLS: Registry[Protocol] = Registry("condensation protocol")
PROTOCOLS.register("ours")(Protocol({}, {}))  # validation-selected; the config classes' defaults
# CondTSF's public code (RafaDD/CondTSF: distill.py, buffer.py, backbone.py, utils.py), the
# schedule DDTime's published numbers come from, except that sets are chosen on validation (its
# code picks the best on the test split). Channel independence needs no switch here: DLinear
# shares its weights across channels, so a C-channel window trains it as C univariate ones.
PROTOCOLS.register("published")(Protocol(
    {"experts": {"n_experts": 40, "epochs": 80, "optimizer": "sgd", "lr": 5e-4, "momentum": 0.9,
                 "batch_size": 64, "stride": 12},
     "match": {"iterations": 300, "updates": 2, "syn_steps": 20, "expert_epochs": 2, "max_start_epoch": 4,
               "inner_lr": 3e-4, "learn_inner_lr": False, "series_lr": 0.1, "soft_label": 0.2, "normalize": True},
     "eval": {"models": ["dlinear"], "seeds": [0, 1, 2, 3, 4], "optimizer": "sgd", "lr": 1e-4, "momentum": 0.9,
              "batch_size": 64, "epochs": 250, "select_epochs": 250, "checkpoint": "last", "select_every": 50}},
    {"ftd": {"experts": {"sharpness": 2.0}},  # its GSAM rho (ours is SAM: the closest we have)
     "condtsf": {"condtsf": {"every": 3, "replaces_match": True}},
     "datm": {"match": {"datm_mode": "slide"}}}))


def method_defaults(method: str, protocol: str = "ours") -> dict[str, Any]:
    """The config defaults a method string implies under a protocol (merged *under* explicit
    settings): the protocol's, then the base's and each plug-in's, then the protocol's own
    values for those plug-ins."""
    from tdml.config import deep_merge

    base, plugins = parse_method(method)
    proto = PROTOCOLS.get(protocol)
    out: dict[str, Any] = deep_merge(proto.defaults, BASES.get(base))
    for p in plugins:
        out = deep_merge(deep_merge(out, PLUGINS.get(p)), proto.plugins.get(p, {}))
    return out
