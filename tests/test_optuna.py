"""A search sweeper on populations: Optuna asks for trials in batches, each batch trains as populations."""

import json

import pytest

pytestmark = pytest.mark.slow  # an Optuna study of real trainings

optuna = pytest.importorskip("optuna")  # the `optuna` extra (CI installs it)


def test_an_optuna_study_trains_each_batch_as_a_population_and_sees_every_result(sweep, tmp_path):
    storage = f"sqlite:///{tmp_path / 'search.db'}"  # Optuna's own record of the study, read back below
    search = [
        "hydra/sweeper=optuna",
        "hydra.sweeper.direction=maximize",
        "hydra.sweeper.n_trials=8",
        "hydra.sweeper.n_jobs=2",
        "hydra.sweeper.sampler.seed=0",
        f"hydra.sweeper.storage={storage}",
        "hydra.sweeper.study_name=search",
        "model.optimizer.lr=tag(log, interval(0.001, 0.3))",  # not a list: checked as each trial trains
        "act2=relu,sigmoid",
        "hydra/launcher=population",
        "trainer.max_epochs=1",
    ]
    with sweep(tmp_path / "sweep", *search):
        results = [json.loads(p.read_text()) for p in (tmp_path / "sweep").rglob("result.json")]
        assert len(results) == 8 and all(r["status"] == "ok" and r["population_size"] == 2 for r in results)
        assert (tmp_path / "sweep" / "optimization_results.yaml").is_file()
    trials = optuna.load_study(study_name="search", storage=storage).trials
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 8
    told = sorted((t.params["act2"], round(t.params["model.optimizer.lr"], 12), t.values) for t in trials)
    ours = sorted((r["hparams"]["act2"], round(r["hparams"]["lr"], 12), [r["final_test_acc"]]) for r in results)
    assert told == ours  # Optuna recorded each job's final test accuracy
