"""conda.yaml (the environment of `mlflow run .` without `--env-manager local`) and the docker
image install what pyproject.toml declares: the same packages with the same bounds."""

from __future__ import annotations

import re

import pytest
import yaml
from packaging.requirements import Requirement

from conftest import REPO

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

# the extras an `mlflow run` environment needs besides the core: workers on a PostgreSQL Optuna
# storage. `auth` (the tracking server's basic-auth app) and `dashboard` run server-side, from
# the docker image (docker/Dockerfile), not inside a project run.
CONDA_EXTRAS = ("postgres",)
# the only pins allowed in conda.yaml instead of pyproject's range (inside that range)
PINNED = {"torch"}


def _project() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["project"]


def _by_name(reqs) -> dict[str, Requirement]:
    out: dict[str, Requirement] = {}
    for r in map(Requirement, reqs):
        key = r.name.lower()
        assert key not in out, f"{r.name} listed twice"
        out[key] = r
    return out


def _conda_pip() -> list[str]:
    env = yaml.safe_load((REPO / "conda.yaml").read_text())
    pips = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pips) == 1, "conda.yaml: one `pip:` list"
    return pips[0]


def test_conda_yaml_matches_pyproject():
    project = _project()
    want = _by_name(project["dependencies"])
    for extra in CONDA_EXTRAS:
        for name, r in _by_name(project["optional-dependencies"][extra]).items():
            assert name not in want or want[name].specifier == r.specifier, f"{name}: extra {extra} disagrees"
            want[name] = r
    have = _by_name(_conda_pip())
    assert sorted(have) == sorted(want), (f"conda.yaml lacks {sorted(set(want) - set(have))}, "
                                          f"has extra {sorted(set(have) - set(want))}")
    for name, r in have.items():
        w = want[name]
        assert r.extras == w.extras, f"{name}: extras {sorted(r.extras)} in conda.yaml, {sorted(w.extras)} in pyproject"
        if name in PINNED:
            (pin,) = r.specifier
            assert pin.operator == "==" and w.specifier.contains(pin.version), (
                f"conda.yaml pins {r}, outside pyproject's {w.specifier}")
        else:
            assert r.specifier == w.specifier, f"{name}: {r.specifier} in conda.yaml, {w.specifier} in pyproject"


def test_extras_agree_with_the_core_and_the_image_installs_them():
    project = _project()
    core = _by_name(project["dependencies"])
    extras = project["optional-dependencies"]
    for extra, reqs in extras.items():
        for name, r in _by_name(reqs).items():
            if name in core:  # e.g. mlflow[auth]: the same range as the core's mlflow
                assert r.specifier == core[name].specifier, f"[{extra}] {r} vs core {core[name]}"
    # the test extra holds every other extra the tests exercise, with the same bounds
    test = _by_name(extras["test"])
    for extra in ("postgres", "dashboard", "auth"):
        for name, r in _by_name(extras[extra]).items():
            assert name in test and test[name].specifier == r.specifier and r.extras <= test[name].extras, \
                f"[test] lacks or disagrees with [{extra}] {r}"
    # the deployment image takes its versions from pyproject's extras, not from its own list
    installs = re.findall(r"pip install (.+)", (REPO / "docker" / "Dockerfile").read_text())
    tdml_line = next(line for line in installs if '".[' in line)
    assert set(re.search(r'"\.\[([^\]]*)\]"', tdml_line).group(1).split(",")) >= {"postgres", "dashboard", "auth"}
    assert "mlflow" not in tdml_line.replace(".[", ""), "docker/Dockerfile: mlflow comes from pyproject (auth extra)"
