"""The paper's search (issue 23): a grid sampler that enumerates listed values once each, and
trials scored as the mean over several seeds (one child run per seed) -- through the real
MLflow SQLite store and a real Optuna SQLite storage."""

from __future__ import annotations

import numpy as np
import optuna
import pytest
from mlflow.tracking import MlflowClient

from tdml import tuning
from tdml.errors import ConfigError
from tdml.studies import spec_from_dict

from tuning_helpers import teacher_store, tiny_spec


def test_a_grid_over_seeds_runs_every_value_once_and_scores_the_mean(tmp_path):
    grid = [0.1, 1.0, 4.0]
    spec = tiny_spec(sampler={"name": "grid", "seed": 0}, pruner={"name": "none"}, n_trials=10, seeds=[3, 4],
                     finalize=False, plots=False)
    spec["search_space"] = {"loss": {"alpha": {"type": "categorical", "choices": grid}}}
    with teacher_store(tmp_path) as client:
        res = tuning.tune(spec_from_dict(spec), storage=f"sqlite:///{tmp_path / 'optuna.db'}")
        study = optuna.load_study(study_name=spec["name"], storage=f"sqlite:///{tmp_path / 'optuna.db'}")
        trials = study.get_trials(deepcopy=False)
        assert res.n_trials["complete"] == 3 and len(trials) == 3  # the grid is exhausted: the study stops itself
        assert sorted(t.params["loss.alpha"] for t in trials) == grid
        for t in trials:
            trial_run = client.get_run(t.user_attrs["mlflow_run_id"])
            seeds = client.search_runs([trial_run.info.experiment_id],
                                       f"tags.mlflow.parentRunId = '{trial_run.info.run_id}'")
            by_seed = {int(r.data.params["config.train.seed"]): r for r in seeds}
            assert sorted(by_seed) == [3, 4] and all(r.data.tags["tdml.role"] == "trial-seed" for r in seeds)
            vals = [by_seed[s].data.metrics["best_val_mse"] for s in (3, 4)]
            assert vals[0] != vals[1]  # the seeds really differ ...
            assert t.value == pytest.approx(np.mean(vals))  # ... and the trial is scored by their mean
            assert trial_run.data.metrics["objective_val_mse"] == pytest.approx(np.mean(vals))
            assert trial_run.data.metrics["objective_val_mse_std"] == pytest.approx(np.std(vals, ddof=1))
            # (the storages round the 16th digit differently: Optuna's JSON attrs vs MLflow's metric)
            assert t.user_attrs["seed_values"] == {"3": [pytest.approx(vals[0])], "4": [pytest.approx(vals[1])]}
            # the seeds' mean validation metrics on the trial run (ties between trials are broken on them)
            for k in ("best_val_mse", "best_val_mae"):
                assert trial_run.data.metrics[k] == pytest.approx(np.mean([by_seed[s].data.metrics[k] for s in (3, 4)]))


def test_seeds_and_a_searched_seed_cannot_be_combined(tmp_path):
    spec = tiny_spec(seeds=[1, 2])
    spec["search_space"] = {"train": {"seed": {"type": "categorical", "choices": [1, 2]}}}
    with teacher_store(tmp_path):
        with pytest.raises(ConfigError, match=r"`seeds` sets train.seed for each run of a trial; remove it"):
            tuning.tune(spec_from_dict(spec), storage=f"sqlite:///{tmp_path / 'optuna.db'}")
