"""Ray Tune: a small search runs on 2 CPUs, records a failed trial, and the train stage picks up its result."""

import csv
import json

import pytest
import yaml

from comic.config import Params, override
from comic.tune import load_tuned, run_search, search_space, write_outputs

ray = pytest.importorskip("ray")

TINY = {"data.image_size": 36, "train.batch_size": 16, "metrics.many_threshold": 40, "metrics.few_threshold": 10}


def test_the_search_space_comes_from_params_with_one_tune_object_per_key():
    space = search_space(Params().tune.space)
    assert set(space) == set(Params().tune.space)
    assert all(hasattr(dim, "sample") for dim in space.values())


def test_a_bad_search_dimension_names_its_key():
    with pytest.raises(ValueError, match=r"tune\.space\.train\.lr"):
        override(Params(), {"tune.space": {"train.lr": {"type": "loguniform", "low": 0.0, "high": 1.0}}})


@pytest.mark.slow
@pytest.mark.timeout(480)
def test_a_two_value_search_finishes_records_an_injected_failure_and_writes_both_files(
    tiny_data, tmp_path, monkeypatch
):
    from comic.faults import VARIABLE
    from comic.ray_train import init_ray

    space = {"correction.tau": {"type": "uniform", "low": 0.6, "high": 0.8}}
    params = override(
        Params(),
        {**TINY, "tune.space": space, "tune.num_samples": 2, "tune.epochs": 2, "tune.max_concurrent_trials": 2},
    )
    monkeypatch.setenv(VARIABLE, json.dumps({"tune_trial_errors": [1]}))  # before Ray starts: trials inherit it
    init_ray(num_cpus=2)
    try:
        result = run_search(params, tiny_data, storage_path=tmp_path / "ray", name="t")
    finally:
        ray.shutdown()
    assert sorted(row["status"] for row in result.trials) == ["error", "ok"], result.trials
    succeeded = next(row for row in result.trials if row["status"] == "ok")
    assert result.best_sample == {"correction.tau": succeeded["correction.tau"]}
    assert succeeded["epochs"] == 2 and 0 <= succeeded["val/mAP"] <= 100

    best, trials = tmp_path / "tune" / "best_params.yaml", tmp_path / "tune" / "trials.csv"
    write_outputs(result, best, trials)
    assert yaml.safe_load(best.read_text()) == result.best_sample
    rows = list(csv.DictReader(trials.open()))
    assert len(rows) == 2 and {"trial", "status", "correction.tau", "val/mAP", "epochs", "error"} <= set(rows[0])
    assert any("injected failure of trial 1" in row["error"] for row in rows)


def test_the_train_stage_uses_the_tuned_values_only_when_asked(tmp_path):
    best = tmp_path / "best_params.yaml"
    best.write_text(yaml.safe_dump({"correction.tau": 0.66, "train.lr": 0.002}))
    assert load_tuned(Params(), best) == Params()
    tuned = load_tuned(override(Params(), {"train.use_tuned": True}), best)
    assert tuned.correction.tau == 0.66 and tuned.train.lr == 0.002
    assert load_tuned(override(Params(), {"train.use_tuned": True}), tmp_path / "absent.yaml") == override(
        Params(), {"train.use_tuned": True}
    )
    best.write_text(yaml.safe_dump({"correction.tua": 0.66}))
    with pytest.raises(ValueError, match="dvc repro tune"):
        load_tuned(override(Params(), {"train.use_tuned": True}), best)
