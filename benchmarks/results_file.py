"""Where a benchmark's table goes besides stdout: benchmarks/results/<name> (git-ignored)."""

from __future__ import annotations

from pathlib import Path


def publish(table: str, name: str) -> None:
    print(table)
    out = Path(__file__).parent / "results"
    out.mkdir(exist_ok=True)
    (out / name).write_text(table + "\n")
