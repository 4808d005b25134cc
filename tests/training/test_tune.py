"""Ray Tune: a small search runs on 2 CPUs, records a failed trial, and the train stage picks up its result."""

import csv
import json
from types import SimpleNamespace

import pytest
import yaml

from comic.config import Params, flatten, override
from comic.tune import METRIC, best_trial, build_searcher, first_trial, run_search, search_space, trial_row
from comic.tune_results import SCORE, applied_values, write_outputs

ray = pytest.importorskip("ray")

TINY = {"data.image_size": 36, "train.batch_size": 16, "metrics.many_threshold": 40, "metrics.few_threshold": 10}


def test_the_search_space_comes_from_params_with_one_tune_object_per_key():
    space = search_space(Params().tune.space)
    assert set(space) == set(Params().tune.space)
    assert all(hasattr(dim, "sample") for dim in space.values())


def test_a_bad_search_dimension_names_its_key():
    with pytest.raises(ValueError, match=r"tune\.space\.train\.lr"):
        override(Params(), {"tune.space": {"train.lr": {"type": "loguniform", "low": 0.0, "high": 1.0}}})


@pytest.mark.parametrize("searcher", ["tpe", "random"])
def test_the_first_trial_runs_the_current_values_and_the_next_one_is_drawn(searcher):
    from ray.tune.search.basic_variant import BasicVariantGenerator

    params = override(Params(), {"tune.searcher": searcher, "correction.tau": 0.9})
    first = first_trial(params)
    assert first == {key: flatten(params)[key] for key in params.tune.space} and first["correction.tau"] == 0.9
    found = build_searcher(params.tune, METRIC, first)
    config = {"sample": search_space(params.tune.space)}
    if isinstance(found, BasicVariantGenerator):
        found.add_configurations({"e": {"run": lambda c: None, "config": config, "num_samples": 2}})
        suggestions = [found.next_trial().config for _ in range(2)]
    else:
        found.set_search_properties(METRIC, "max", config)
        suggestions = [found.suggest(name) for name in ("a", "b")]
    assert suggestions[0] == {"sample": first}
    assert suggestions[1]["sample"]["correction.tau"] != 0.9


def test_without_start_from_current_every_trial_is_drawn():
    assert first_trial(override(Params(), {"tune.start_from_current": False})) is None


def _result(trial: str, score: float | None, error: str | None = None) -> SimpleNamespace:
    metrics = {"trial_id": trial, SCORE: score, "training_iteration": 3} if score is not None else {}
    return SimpleNamespace(
        config={"sample": {"correction.tau": 0.7}}, metrics=metrics, error=error, path=f"/r/t_{trial}"
    )


def test_a_trial_the_search_was_interrupted_in_is_recorded_as_such_and_cannot_win():
    space = {"correction.tau": {}}
    rows = [
        trial_row(_result("a", 20.0), space, completed={"a"}),
        trial_row(_result("b", 30.0), space, completed={"a"}),  # still running at Ctrl+C: a score of fewer epochs
        trial_row(_result("c", None, "Traceback ...\nValueError: bad tau"), space, completed={"a"}),
    ]
    assert [row["status"] for row in rows] == ["ok", "interrupted", "error"]
    assert rows[2]["error"] == "ValueError: bad tau" and rows[2]["trial"] == "t_c"
    assert best_trial(rows)["trial"] == "a"
    with pytest.raises(
        RuntimeError,
        match=r"no trial of 2 finished with a score \(1 interrupted, 1 error\); the "
        r"first error: ValueError: bad tau",
    ):
        best_trial(rows[1:])


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
        {
            **TINY,
            "tune.space": space,
            "tune.num_samples": 2,
            "tune.epochs": 2,
            "tune.grace_period": 1,
            "correction.start_epoch": 0,
            "tune.max_concurrent_trials": 2,
        },
    )
    monkeypatch.setenv(
        VARIABLE, json.dumps({"tune_trial_errors": [[1], str(tmp_path / "claims")]})
    )  # before Ray starts: trials inherit it
    init_ray(num_cpus=2)
    try:
        result = run_search(params, tiny_data, storage_path=tmp_path / "ray", name="t")
    finally:
        ray.shutdown()
    assert sorted(row["status"] for row in result.trials) == ["error", "ok"], result.trials
    assert params.correction.tau in {row["correction.tau"] for row in result.trials}  # trial 1: the current value
    succeeded = next(row for row in result.trials if row["status"] == "ok")
    assert result.best_sample == {"correction.tau": succeeded["correction.tau"]}
    assert succeeded["epochs"] == 2 and 0 <= succeeded[SCORE] <= 100
    assert len(list((tmp_path / "ray").rglob("checkpoint_*"))) == 1  # the last epoch's of 2; the failed trial has none

    best, trials = tmp_path / "tune" / "best_params.yaml", tmp_path / "tune" / "trials.csv"
    write_outputs(result, params, best, trials)
    record = yaml.safe_load(best.read_text())
    assert record["params"] == result.best_sample and record["trial"] == succeeded["trial"]
    assert record["search"] == {"searcher": "tpe", "seed": 0, "trials": 2, "epochs_per_trial": 2}
    rows = list(csv.DictReader(trials.open()))
    assert len(rows) == 2 and {"trial", "status", "correction.tau", SCORE, "epochs", "error"} <= set(rows[0])
    assert any("injected failure of trial 1" in row["error"] for row in rows)


def test_a_distributed_trial_keeps_its_last_checkpoint_only(tmp_path):
    from comic.tune import distributed_trial_run_config

    assert distributed_trial_run_config("t", str(tmp_path), []).checkpoint_config.num_to_keep == 1


def test_the_train_stage_applies_the_searched_values_only_when_asked(tmp_path):
    from comic.config import apply_file

    best = tmp_path / "best_params.yaml"
    best.write_text(yaml.safe_dump({"params": {"correction.tau": 0.66, "loss.mfm.w_neg": 0.5}, "trial": "t1"}))
    assert applied_values(False, best) == {} and applied_values(False, tmp_path / "absent.yaml") == {}
    assert applied_values(True, best) == {"correction.tau": 0.66, "loss.mfm.w_neg": 0.5}
    with pytest.raises(FileNotFoundError, match="dvc repro tune"):
        applied_values(True, tmp_path / "absent.yaml")
    applied = tmp_path / "applied.yaml"
    applied.write_text(yaml.safe_dump(applied_values(True, best)))
    tuned = apply_file(Params(), applied)
    assert tuned.correction.tau == 0.66 and tuned.loss.mfm.w_neg == 0.5
    applied.write_text("{}\n")
    assert apply_file(Params(), applied) == Params()
    applied.write_text(yaml.safe_dump({"correction.tua": 0.66}))
    with pytest.raises(ValueError, match="dvc repro tune"):
        apply_file(Params(), applied)


def test_a_stopped_trial_s_sigterm_exit_prints_nothing_and_other_unraisable_errors_still_print():
    """Ray's SIGTERM handler in a trial actor raises SystemExit where it cannot propagate; Python reports it
    through sys.unraisablehook as a 10-line traceback. Emulated here with __del__, which reports the same way."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        """
        from comic.tune import quiet_stopped_trial

        quiet_stopped_trial()
        quiet_stopped_trial()  # once per trial in a reused actor: one hook

        def sigterm_handler(signum, frame):  # the name of Ray's handler in ray._private.worker
            raise SystemExit(1)

        class StoppedTrial:
            def __del__(self):
                sigterm_handler(15, None)

        class Other:
            def __del__(self):
                raise SystemExit(2)

        StoppedTrial()
        Other()
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "sigterm_handler" not in done.stderr and "SystemExit: 1" not in done.stderr
    assert "SystemExit: 2" in done.stderr  # anything else is still printed
