"""tdml.reporting: mean ± std over seeds, ranks with ties, wins, the Markdown/CSV/plotly outputs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from tdml.reporting import PUBLISHED_AUC_PRC, rank_desc, results_table


def _records(table: dict[str, dict[str, list[float]]]) -> list[dict]:
    return [{"dataset": d, "method": m, "seed": i, "score": v}
            for d, ms in table.items() for m, vals in ms.items() for i, v in enumerate(vals)]


def test_rank_desc_ties_share_the_average_rank():
    assert rank_desc([0.9, 0.8, 0.8, 0.1]) == [1.0, 2.5, 2.5, 4.0]
    assert rank_desc([0.5, 0.5, 0.5]) == [2.0, 2.0, 2.0]
    assert rank_desc([0.1, 0.3, 0.2], higher_is_better=False) == [1.0, 3.0, 2.0]
    r = rank_desc([0.3, float("nan"), 0.7])
    assert r[0] == 2.0 and math.isnan(r[1]) and r[2] == 1.0


def test_mean_and_sample_std_over_seeds():
    t = results_table(_records({"A": {"x": [0.1, 0.2, 0.3], "y": [0.5]}}), "score", scale=100.0)
    c = t.cells.set_index("method")
    assert c.loc["x", "mean"] == pytest.approx(20.0)
    assert c.loc["x", "std"] == pytest.approx(10.0)  # ddof = 1: sqrt((100 + 0 + 100) / 2)
    assert c.loc["x", "n"] == 3
    assert c.loc["y", "std"] == 0.0  # one seed


def test_nan_runs_are_dropped_and_counted():
    t = results_table(_records({"A": {"x": [0.2, float("nan"), 0.4]}}), "score", scale=1.0)
    c = t.cells.iloc[0]
    assert c["mean"] == pytest.approx(0.3) and c["n"] == 2 and c["n_nan"] == 1


def test_average_rank_and_wins_with_ties_and_reference_excluded():
    recs = _records({
        "A": {"teacher": [0.99], "x": [0.9, 0.9], "y": [0.8, 0.8], "z": [0.8, 0.8]},  # y, z tie 2.5
        "B": {"teacher": [0.99], "x": [0.5, 0.5], "y": [0.7, 0.7], "z": [0.7, 0.7]},  # y, z tie for best
        "C": {"teacher": [0.99], "x": [0.1], "y": [0.3]},  # z missing here
    })
    t = results_table(recs, "score", reference=("teacher",))
    s = t.summary.set_index("method")
    assert s.loc["x", "avg_rank"] == pytest.approx((1 + 3 + 2) / 3)
    assert s.loc["y", "avg_rank"] == pytest.approx((2.5 + 1.5 + 1) / 3)
    assert s.loc["z", "avg_rank"] == pytest.approx((2.5 + 1.5) / 2)
    assert s.loc["x", "wins"] == 1 and s.loc["y", "wins"] == 2 and s.loc["z", "wins"] == 1  # ties: both win
    assert math.isnan(s.loc["teacher", "avg_rank"]) and s.loc["teacher", "wins"] == 0
    assert t.cells[t.cells.method == "teacher"]["rank"].isna().all()


def test_lower_is_better_metric():
    t = results_table(_records({"A": {"x": [1.0], "y": [2.0]}}), "score", higher_is_better=False, reference=())
    s = t.summary.set_index("method")
    assert s.loc["x", "wins"] == 1 and s.loc["x", "avg_rank"] == 1.0 and s.loc["y", "avg_rank"] == 2.0


def test_markdown_layout_with_published_values(tmp_path):
    recs = _records({"Trace": {"teacher": [0.70], "none": [0.50, 0.60], "memkd": [0.80, 0.70]}})
    t = results_table(recs, "score", methods=["teacher", "none", "memkd", "kd"], published=PUBLISHED_AUC_PRC)
    md = t.to_markdown()
    lines = md.splitlines()
    assert lines[0] == "| dataset | Teacher | Base | MemKD | KD |"
    row = lines[2]
    assert "| Trace | 70.00 ± 0.00 (73.84) |" in row
    assert "55.00 ± 7.07 (64.76)" in row  # Base: published 64.76
    assert "**75.00 ± 7.07** (78.76)" in row  # best mean in bold
    assert row.endswith("| – |")  # KD has no runs
    assert lines[3].startswith("| avg rank | – | 2.00 | 1.00 |")
    assert lines[4].startswith("| wins | – | 0 | 1 |")
    t.to_csv(tmp_path / "t.csv")
    csv = pd.read_csv(tmp_path / "t.csv")
    assert set(csv.columns) >= {"dataset", "method", "mean", "std", "rank", "published", "avg_rank", "wins"}
    assert len(csv) == 3
    fig = t.figure()
    assert [tr.name for tr in fig.data] == ["Teacher", "Base", "MemKD", "KD", "published"]


def test_published_values_match_methods_md():
    p = PUBLISHED_AUC_PRC
    assert (p["Trace"]["none"], p["Trace"]["memkd"]) == (64.76, 78.76)
    assert (p["ItalyPowerDemand"]["teacher"], p["SwedishLeaf"]["dt2w"], p["MoteStrain"]["kd"]) == (99.24, 73.14, 81.87)


def test_missing_metric_column_is_an_error():
    with pytest.raises(ValueError, match="score"):
        results_table([{"dataset": "A", "method": "x", "seed": 0, "other": 1.0}], "score")
