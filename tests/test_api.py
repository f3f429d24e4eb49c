"""The Python API (issue 25): ``import tdml`` runs the README's quick start as written, through
the real MLflow SQLite store, registry and Optuna SQLite storage; bad input raises typed errors
that say what is valid."""

from __future__ import annotations

import re
import shutil

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

import tdml
from conftest import REPO
from tdml import options
from tdml.errors import ConfigError, DataError, RegistryError

TINY = {"train.max_batches": 4, "tracking.latency_repeats": 1, "tracking.diagnostics": False}


def _frame(n=700, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame({"date": pd.date_range("2022-01-01", periods=n, freq="h"),
                         "load": np.sin(2 * np.pi * t / 24) + 0.1 * rng.normal(size=n),
                         "temp": np.cos(2 * np.pi * t / 24) + 0.1 * rng.normal(size=n),
                         "price": np.sin(2 * np.pi * t / 168) + 0.1 * rng.normal(size=n)})


def test_the_readme_quick_start_runs_as_written(tmp_path, mlflow_store):
    text = (REPO / "README.md").read_text()
    block = re.search(r"### Python API.*?```python\n(.*?)```", text, re.S).group(1)
    _frame().assign(date=lambda d: d.date.astype(str)).to_csv(tmp_path / "my.csv", index=False)
    (tmp_path / "studies").mkdir()
    shutil.copy(REPO / "studies" / "timedistill_synthetic.yaml", tmp_path / "studies")
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    t, s, m, table, res = (scope[k] for k in ("t", "s", "m", "table", "res"))
    assert re.fullmatch(r"models:/dataframe-itransformer-L96-H24/\d+", t.model_uri) and t.metrics["test_mse"] > 0
    assert s.model_uri == "models:/dataframe-itransformer-L96-H24-student-mlp/1" and s.role == "student"
    assert scope["forecast"].shape == (1, 24, 3) and m.name == "dataframe-itransformer-L96-H24-student-mlp"
    assert {"teacher", "student"} <= set(table.role) and t.run_id in set(table.run_id)
    assert res.n_trials["complete"] + res.n_trials["pruned"] == 4 and res.finals


def test_a_dataframe_is_the_same_dataset_as_its_csv(tmp_path, mlflow_store):
    df = _frame(500)
    df.assign(date=df.date.astype(str)).to_csv(tmp_path / "same.csv", index=False)
    a = tdml.train_teacher(data=df, model="dlinear", seq_len=48, pred_len=12, epochs=1, progress=False, set=TINY)
    b = tdml.train_teacher(data=str(tmp_path / "same.csv"), model="dlinear", seq_len=48, pred_len=12, epochs=1,
                           progress=False, set=TINY)
    client = MlflowClient()
    ins = [{i.dataset.name.rsplit("-", 1)[1]: i.dataset for i in client.get_run(r.run_id).inputs.dataset_inputs}
           for r in (a, b)]
    assert ins[0]["train"].digest == ins[1]["train"].digest and ins[0]["train"].source_type
    assert "pandas.DataFrame" in ins[0]["train"].source
    assert client.get_run(a.run_id).data.params["config.data.data_path"].startswith("frame:")
    assert a.metrics["test_mse"] == pytest.approx(b.metrics["test_mse"], rel=1e-6)  # the same rows, the same run
    # the frame lives in this process: a distill run here reuses it through the teacher's config
    s = tdml.distill(teacher=a.model_uri, epochs=1, progress=False, set=TINY)
    assert s.metrics["test_mse"] > 0


def test_bad_input_raises_typed_errors_that_name_the_fix(tmp_path, mlflow_store):
    with pytest.raises(ConfigError, match=r"tdml.train_teacher: unknown option\(s\) sequence_len; valid: "
                                          + re.escape(", ".join(sorted(options.TEACHER_OPTS)))):
        tdml.train_teacher(sequence_len=96)
    with pytest.raises(ConfigError, match=r"tdml.distill: unknown option\(s\) alhpa; valid: .*alpha"):
        tdml.distill(teacher="models:/x@champion", alhpa=0.5)
    bad = _frame(300).assign(site="north")
    with pytest.raises(DataError, match=r"column\(s\) 'site' are not numeric"):
        tdml.train_teacher(data=bad, seq_len=24, pred_len=8, progress=False)
    nan = _frame(300)
    nan.loc[5, "temp"] = np.nan
    with pytest.raises(DataError, match=r"missing values \(NaN\) in 'temp' \(1 missing\)"):
        tdml.train_teacher(data=nan, seq_len=24, pred_len=8, progress=False)
    dates = _frame(300).assign(date=lambda d: d.date.astype(str))
    dates.loc[3, "date"] = "not a date"
    with pytest.raises(DataError, match=r"the first is 'not a date' at row 3"):
        tdml.train_teacher(data=dates, seq_len=24, pred_len=8, progress=False)
    failed = [r for r in MlflowClient().search_runs([e.experiment_id for e in MlflowClient().search_experiments()])
              if r.info.status == "FAILED"]
    assert len(failed) == 3  # each bad frame is a FAILED run with its reason, as a bad CSV is
    tdml.train_teacher(data=_frame(300), seq_len=24, pred_len=8, epochs=1, progress=False, set=TINY)
    with pytest.raises(RegistryError, match=r"cannot load models:/nope@champion: .*registered models: "
                                            r"dataframe-itransformer-L24-H8"):
        tdml.load_model("models:/nope@champion")
    with pytest.raises(AttributeError, match="no attribute 'trian_teacher'"):
        tdml.trian_teacher


def test_dry_run_shows_every_value_with_its_layer_and_starts_nothing(mlflow_store, capsys):
    from tdml.cli import main

    assert main(["train-teacher", "--dataset", "synthetic", "--epochs", "3", "--set", "train.patience=2",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"data.seq_len\s+= 96\s+# dataset default", out), out
    assert re.search(r"train.epochs\s+= 3\s+# explicit", out) and re.search(r"train.patience\s+= 2\s+# explicit", out)
    assert re.search(r"train.lr\s+= \S+\s+# defaults table", out)
    assert re.search(r"data.batch_size\s+= 32\s+# class default", out)
    client = MlflowClient()
    assert not client.search_runs([e.experiment_id for e in client.search_experiments()])  # nothing started
    d = tdml.main(dry_run=True)
    assert d["teacher"].config["data.seq_len"] == 336 and d["teacher"].sources["data.seq_len"] == "entry default"
    assert d["student"].sources["data.seq_len"] == "teacher's data" and d["student"].sources["student"] == "teacher's task"
    c = tdml.condense(method="mtt+ddtime", dry_run=True)
    assert c.config["layout"] == "samples" and c.sources["layout"] == "defaults table"
    assert c.sources["method"] == "explicit" and c.sources["n_windows"] == "class default"
    # a run logs the same sources as config_sources.json
    import mlflow

    t = tdml.train_teacher(epochs=1, seq_len=48, pred_len=12, progress=False, set=TINY)
    src = mlflow.artifacts.load_dict(f"runs:/{t.run_id}/config_sources.json")
    assert src["train.epochs"] == {"value": 1, "source": "explicit"} and src["train.max_batches"]["source"] == "explicit"
    assert src["data.batch_size"] == {"value": 32, "source": "class default"}
    assert src["train.lr"]["source"] == "defaults table"
