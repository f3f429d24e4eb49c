"""The package's import graph has no cycles (every import counted, also inside functions)
and never goes up a layer of docs/architecture.md's table: a plug-in registers through
``Registry(plugins=...)`` instead of being imported by its host."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "tdml"
DOC = PKG.parent / "docs" / "architecture.md"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _edges(mods: dict[str, Path]) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for m, f in mods.items():
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module != "__future__" and not node.level:
                targets = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            edges[m] |= {t for t in targets if t in mods and t != m}
    return edges


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges[m]):
            if state.get(n) == 1:
                return stack[stack.index(n):] + [n]
            if n not in state and (found := visit(n)):
                return found
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (found := visit(m)):
            return found
    return None


def test_no_import_cycles():
    edges = _edges(_modules())
    # a package imports its own submodules in __init__; that is not a cycle of the code
    edges = {m: {n for n in ns if not m.startswith(n + ".")} for m, ns in edges.items()}
    cycle = _cycle(edges)
    assert cycle is None, " -> ".join(cycle)


def test_the_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def _layers() -> dict[str, int]:
    """{module name prefix: layer} from the table of docs/architecture.md (its third column)."""
    out = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and cells[0].isdigit():
            out.update({name: int(cells[0]) for name in re.findall(r"`(tdml[\w.]*)`", cells[2])})
    return out


def _layer_of(module: str, layers: dict[str, int]) -> int | None:
    """The layer of the longest listed name that is ``module`` or a package above it (the root
    package ``tdml`` is only itself: a new top-level module must be placed)."""
    for name in sorted(layers, key=len, reverse=True):
        if module == name or ("." in name and module.startswith(name + ".")):
            return layers[name]
    return None


def test_the_layer_table_places_every_module_and_no_import_goes_up():
    layers = _layers()
    assert {0, 6} <= set(layers.values()), "docs/architecture.md's layer table was not found"
    mods = _modules()
    unplaced = sorted(m for m in mods if _layer_of(m, layers) is None)
    assert not unplaced, f"place these modules in the layer table of docs/architecture.md: {unplaced}"
    up = [f"{m} (layer {_layer_of(m, layers)}) imports {n} (layer {_layer_of(n, layers)})"
          for m, ns in _edges(mods).items() for n in sorted(ns)
          if not m.startswith(n + ".") and _layer_of(n, layers) > _layer_of(m, layers)]
    assert not up, "imports that go up a layer (use a registry's plugins= instead):\n" + "\n".join(up)


def test_the_layer_check_finds_an_upward_import():
    layers = {"tdml": 0, "tdml.low": 1, "tdml.high": 2, "tdml.low.top": 2}
    assert _layer_of("tdml.low.x", layers) == 1 and _layer_of("tdml.low.top.y", layers) == 2
    assert _layer_of("tdml.lower", layers) is None  # a prefix of the name, not of a package
    assert _layer_of("tdml.new", layers) is None  # unplaced, not layer 0
