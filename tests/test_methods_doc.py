"""docs/methods.md is the specification the code cites: every ``docs/methods.md §N`` (or
``[methods.md](methods.md) §N``) in the package, tests, benchmarks, studies and docs names a
section heading that exists."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOC = REPO / "docs" / "methods.md"
CITE = re.compile(r"methods\.md\)? §(\d+(?:\.\d+)*)(?:[–-](\d+(?:\.\d+)*))?")
HEADING = re.compile(r"^#{2,4} (\d+(?:\.\d+)*)\.? ", re.M)
SOURCES = ("tdml", "tests", "benchmarks", "studies", "docs")


def _citations() -> dict[str, set[str]]:
    files = [REPO / "README.md"] + [f for d in SOURCES for f in (REPO / d).rglob("*")
                                    if f.suffix in (".py", ".md", ".yaml") and f.is_file()]
    out: dict[str, set[str]] = {}
    for f in files:
        for m in CITE.finditer(f.read_text(encoding="utf-8")):
            for section in filter(None, m.groups()):
                out.setdefault(section, set()).add(str(f.relative_to(REPO)))
    return out


def test_every_cited_section_is_a_heading():
    headings = set(HEADING.findall(DOC.read_text(encoding="utf-8")))
    cited = _citations()
    missing = {s: sorted(where) for s, where in cited.items() if s not in headings}
    assert not missing, f"cited but not a heading of docs/methods.md: {missing}"


def test_the_package_cites_the_spec_of_each_method_and_nothing_outside_the_repo():
    cited = {s for s, where in _citations().items() if any(w.startswith("tdml/") for w in where)}
    assert {s.split(".")[0] for s in cited} == {"1", "2", "3"}
    stale = [str(f.relative_to(REPO)) for f in (REPO / "tdml").rglob("*.py")
             if re.search(r"(?<!docs/)METHODS\.md", f.read_text(encoding="utf-8"))]
    assert not stale, f"cite docs/methods.md, not a file outside the repository: {stale}"
