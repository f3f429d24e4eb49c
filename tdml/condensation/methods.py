"""Condensation methods as a registry: a base (``random`` | ``mtt``) joined by ``+`` with plug-ins.

``mtt+condtsf+ddtime+datm`` = MTT with CondTSF label interpolation, both DDTime terms and a
widening start-epoch window. Each name only sets config defaults; explicit ``--set`` keys win,
so ``--method mtt+ddtime --set ddtime.isib=false`` is DDTime's frequency term alone.
"""

from __future__ import annotations

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


def method_defaults(method: str) -> dict[str, Any]:
    """The config defaults a method string implies (merged *under* explicit settings)."""
    from tdml.config import deep_merge

    base, plugins = parse_method(method)
    out: dict[str, Any] = dict(BASES.get(base))
    for p in plugins:
        out = deep_merge(out, PLUGINS.get(p))
    return out
