"""The multi-seed harness (comic.experiments): paired differences, sign agreement, mean ± sample std against
a float64 reference, the tables it writes, --set parsing, and one tiny run end to end."""

import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from comic import experiments
from comic.experiments import METRICS, agree, cell, markdown, mean_std, paired, parse_sets, summarise

REPO = Path(__file__).resolve().parents[1]
SCORES = ("val_mAP_smoothed", *METRICS, *(f"{p}_{k}" for p in ("last", "last5") for k in METRICS))


def run(config: str, seed: int, mAP: float, **extra) -> dict:
    """A result row as run_one writes it; every score `mAP` unless given."""
    return {"config": config, "seed": seed, "epochs": 2, **{k: mAP for k in SCORES}, "epochs_log": [], **extra}


def test_paired_differences_are_the_reference_minus_the_config_on_the_seeds_both_ran():
    runs = [run("comic", 0, 30.0), run("comic", 1, 31.5), run("comic", 2, 29.0), run("hill", 2, 29.25),
            run("hill", 0, 30.5), run("hill", 3, 10.0), run("asl", 1, 30.004)]  # fmt: skip
    assert paired(runs, "comic") == {"hill": [-0.5, -0.25], "asl": [1.5]}


def test_paired_differences_are_rounded_to_the_tables_two_decimals():
    assert paired([run("a", 0, 1.0), run("b", 0, 0.6666)], "a") == {"b": [0.33]}


@pytest.mark.parametrize(
    ("diffs", "verdict"),
    [([0.5, 1.0], "yes"), ([-0.1, -2.0, -0.3], "yes"), ([0.5, -0.1], "no"), ([0.5, 0.0], "no"), ([], "no")],
)
def test_signs_agree_only_when_every_seed_moves_the_same_way(diffs, verdict):
    assert agree(diffs) == verdict


def test_mean_and_sample_std_match_a_float64_reference_and_skip_missing_values():
    rng = np.random.default_rng(0)
    values = list(rng.normal(30.0, 2.0, size=7))
    mean, std = mean_std([*values, None, math.nan])
    reference = np.asarray(values, dtype=np.float64)
    assert mean == pytest.approx(reference.mean(), abs=1e-12)
    assert std == pytest.approx(reference.std(ddof=1), abs=1e-12)  # the sample std, n - 1


def test_one_value_has_no_spread_and_none_is_not_a_number():
    assert mean_std([3.0]) == (3.0, 0.0)
    assert all(math.isnan(v) for v in mean_std([None, math.nan]))
    assert cell(mean_std([])) == "-" and cell((1.234, 0.5)) == "1.23 ± 0.50"


def test_the_summary_keeps_configs_in_order_of_first_run_and_seeds_sorted():
    rows = summarise([run("b", 2, 1.0), run("a", 0, 2.0), run("b", 0, 3.0)])
    assert [(r["config"], r["seeds"]) for r in rows] == [("b", [0, 2]), ("a", [0])]
    assert rows[0]["mAP"] == (2.0, pytest.approx(math.sqrt(2)))


def test_the_tables_show_mean_std_per_config_and_the_paired_row_against_the_reference():
    runs = [run("comic", 0, 30.0), run("comic", 1, 32.0), run("hill", 0, 29.0), run("hill", 1, 33.0)]
    text = markdown(runs, "the command", "comic")
    assert text.startswith("Command: `the command`\n")
    cells = " | ".join(["31.00 ± 1.41"] * 5 + ["31.00 ± 1.41"] * 3)
    assert f"| comic | 2 | {cells} |" in text.splitlines()
    assert "| hill | [1.0, -1.0] | no | [1.0, -1.0] | no | [1.0, -1.0] | [1.0, -1.0] |" in text.splitlines()
    assert "Diagnostics" not in text  # no COMIC diagnostics logged
    assert "Paired" not in markdown(runs, "c", "asl")  # no reference run: no paired table


def test_diagnostics_rows_average_the_last_epoch_and_the_audit_over_seeds():
    last = {"diagnostics/grad_share/logits/main": 0.5, "diagnostics/grad_share/logits/rlc": 0.25,
            "diagnostics/grad_share/logits/htb": 0.25, "diagnostics/recalled/net_grad": -0.1}  # fmt: skip
    audit = {"correction/recalled": 4, "correction/precision": 0.75, "correction/correct": 3, "correction/wrong": 1}
    runs = [run("comic", seed, 30.0, epochs_log=[audit, last]) for seed in (0, 1)]
    rows = experiments.diagnostics_rows(runs)
    assert rows[-1] == "| comic | 0.50 / 0.25 / 0.25 | -0.10 | 0.75 | 3 / 1 | - / - / - / - / - |"


def results_files() -> list[Path]:
    """Committed result files the harness wrote, each with its Markdown tables beside it."""
    found = []
    for path in sorted(REPO.glob("docs/results/**/*.json")):
        command = json.loads(path.read_text()).get("command", "") if path.with_suffix(".md").is_file() else ""
        if isinstance(command, str) and re.search(r"benchmarks/(accuracy|options_loo)\.py", command):
            found.append(path)
    return found


@pytest.mark.parametrize("path", results_files(), ids=lambda p: p.name)
def test_a_committed_result_file_renders_to_its_committed_tables(path):
    result = json.loads(path.read_text())
    reference = re.search(r"--reference (\S+)", result["command"])
    default = "comic_tuned" if "options_loo" in result["command"] else "comic"
    text = markdown(result["runs"], result["command"], reference.group(1) if reference else default)
    assert text == path.with_suffix(".md").read_text()


def test_set_values_are_read_as_yaml():
    assert parse_sets(["a.b=true", "c=0.1", "d=null", "e=hill", "f=x=y", "g=1e-3"]) == {
        "a.b": True, "c": 0.1, "d": None, "e": "hill", "f": "x=y", "g": "1e-3",
    }  # fmt: skip
    with pytest.raises(ValueError, match="KEY=VALUE"):
        parse_sets(["novalue"])


def test_the_recorded_command_leaves_empty_options_out():
    args = {"data": "data/plt", "seeds": [0, 1], "label": "", "set": [], "reference": None, "jobs": 2}
    assert experiments.command_line("benchmarks/accuracy.py", args) == (
        "PYTHONPATH=. .venv/bin/python benchmarks/accuracy.py --data data/plt --seeds 0 1 --jobs 2"
    )


def test_results_round_trip_and_a_missing_file_is_no_runs(tmp_path):
    out = tmp_path / "r.json"
    assert experiments.read_runs(out) == []
    runs = [run("comic", 0, 30.0), run("hill", 0, 29.0)]
    experiments.write_results(out, "cmd", runs, "comic")
    written = json.loads(out.read_text())
    assert set(written) == {"command", "summary", "runs"} and experiments.read_runs(out) == runs
    assert out.with_suffix(".md").read_text() == markdown(runs, "cmd", "comic")


def test_a_config_that_hides_no_labels_trains_on_a_full_label_copy_and_other_rates_are_refused(tmp_path, monkeypatch):
    base = {"data": {"missing_rate": 0.4}}
    copies = []
    monkeypatch.setattr(experiments, "full_label_copy", lambda data, out: copies.append(out) or out)
    assert experiments.data_folder(base, {}, tmp_path, str(tmp_path)) == tmp_path
    full = experiments.data_folder(base, {"data.missing_rate": 0.0}, tmp_path, str(tmp_path))
    assert full.parent == tmp_path and full.name.startswith("full-") and copies == [full]
    other = experiments.data_folder(base, {"data.missing_rate": 0.0}, tmp_path / "other", str(tmp_path))
    assert other != full  # a kept scratch folder holds one copy per data folder
    with pytest.raises(ValueError, match="data.missing_rate 0.2"):
        experiments.data_folder(base, {"data.missing_rate": 0.2}, tmp_path, str(tmp_path))


def test_a_tiny_run_is_scored_at_the_selected_last_and_last_five_epochs(tmp_path):
    from comic.config import load_params, to_dict
    from tests.data.conftest import run_data_stages, write_params

    with pytest.MonkeyPatch.context() as monkeypatch:
        data = run_data_stages(write_params(tmp_path), tmp_path, monkeypatch)
    base = to_dict(load_params(tmp_path / "params.yaml"))
    updates = {"data.image_size": 36, "train.batch_size": 16, "metrics.many_threshold": 8, "metrics.few_threshold": 3}
    job = experiments.Job("comic_no_htb", 0, str(data), 2, base, {**updates, "model.name": "single",
                          "model.classifier": "cosine"}, None, 1)  # fmt: skip
    result = experiments.run_one(job)
    assert (result["config"], result["seed"], result["epochs"]) == ("comic_no_htb", 0, 2)
    assert len(result["val_curve"]) == len(result["epochs_log"]) == 2
    assert {*SCORES, "best_epoch", "prediction", "test_rules", "cpu_kernels"} <= set(result)
    assert 0 <= result["mAP"] <= 100 and result["best_epoch"] in (0, 1)


def test_a_frozen_trunk_run_caches_features_with_its_eval_crop_and_records_each_epochs_diagnosis(tmp_path):
    from comic.config import load_params, to_dict
    from tests.data.conftest import run_data_stages, write_params

    pytest.importorskip("timm")
    with pytest.MonkeyPatch.context() as monkeypatch:
        data = run_data_stages(write_params(tmp_path), tmp_path, monkeypatch)
    base = to_dict(load_params(tmp_path / "params.yaml"))
    updates = {"data.image_size": 36, "train.batch_size": 16, "metrics.many_threshold": 8, "metrics.few_threshold": 3,
               "model.backbone": "efficientnet_lite0", "model.pretrained": True, "model.freeze_backbone": True,
               "model.input_size": 32, "balance.shared_backbone": True, "augment.preset": "photo"}  # fmt: skip
    features = experiments.cached_features(base, updates, str(data), {}, str(tmp_path))  # photo: eval crop 0.875
    result = experiments.run_one(experiments.Job("comic", 0, str(data), 2, base, updates, features, 1))
    curve = result["epoch_diagnosis"]
    assert len(curve) == 2
    for point in curve:
        assert set(point["test"]) == set(point["hidden"]) == {"balanced", "unfused", "head", "tail", "mean"}
        assert all(0 <= v <= 100 for part in point.values() for v in part.values())


def test_reselect_replays_the_training_loops_selection_for_any_rule_set():
    def row(epoch, balanced, mean):
        return {"epoch": epoch, "val/rule/balanced/mAP": balanced, "val/rule/unfused/mAP": 0.0,
                "val/rule/mean/mAP": mean}  # fmt: skip

    log = [row(0, 10.0, 9.0), row(1, 14.0, 9.0), row(2, 11.0, 20.0), row(3, 11.0, 20.0)]
    tests = [{"test": {"balanced": 30.0 + e, "unfused": 0.0, "mean": 40.0 + e}} for e in range(4)]
    run = {"epochs_log": log, "epoch_diagnosis": tests}
    # balanced alone, window 2: trailing means 10, 12, 12.5, 11 -> epoch 2 (a tie would keep the earlier)
    assert experiments.reselect(run, ["balanced"], 2) == {"epoch": 2, "rule": "balanced", "val": 12.5, "test": 32.0}
    # with mean among the candidates: mean's trailing 9, 9, 14.5, 20 -> epoch 3, rule mean
    assert experiments.reselect(run, ["balanced", "unfused", "mean"], 2) == {
        "epoch": 3, "rule": "mean", "val": 20.0, "test": 43.0}  # fmt: skip
