"""`dvc repro` of the whole pipeline (data -> tune -> train -> evaluate) on tiny data in a copy of the repo."""

import json
import re

import pytest
import yaml

from tests.data.test_stages import dvc, scratch_repo

METRIC_KEYS = {"mAP", "mAP_many", "mAP_medium", "mAP_few", "recall@0.5", "precision@0.5", "per_class"}


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_dvc_repro_runs_the_whole_pipeline_and_writes_the_declared_metrics_and_plots(tmp_path):
    repo = scratch_repo(
        tmp_path,
        train={"epochs": 2, "batch_size": 16, "num_workers": 2},
        metrics={"many_threshold": 40, "few_threshold": 10},
        tune={"num_samples": 2, "epochs": 1, "grace_period": 1},
        correction={"start_epoch": 0},  # ASHA's grace period must cover the corrector's warm-up
    )

    out = dvc(repo, "repro")
    assert all(f"Running stage '{stage}'" in out for stage in ("tune", "train", "evaluate", "register"))
    # The log: one line per epoch and per trial, each stage's own summary, DVC's framing, and no library
    # noise. (A fresh clone has dvc.lock already; this scratch copy adds "Generating lock file".) Ray Train's
    # controller still warns, with a traceback, when an overloaded CPU delays its resource request: a
    # warning, kept, and left out of the count.
    for noise in ("Add type hints", "Started a local Ray instance", "worker group", "TrainingReport", "INFO"):
        assert noise not in out, noise
    per_epoch_or_trial = r"\bepoch \d+/\d+ |^trial \d+/\d+ |^\S*\(TrainController pid="
    rest = [line for line in out.splitlines() if not re.search(per_epoch_or_trial, line)]
    assert len(rest) - ("Generating lock file" in out) < 60, out
    registry = json.loads((repo / "reports" / "registry.json").read_text())
    assert registry["model_uri"] == "models:/comic/1" and registry["alias"] == "champion"
    assert (repo / "reports" / "tune" / "best_params.yaml").is_file()
    assert len((repo / "reports" / "tune" / "trials.csv").read_text().splitlines()) == 3
    metrics = json.loads((repo / "reports" / "metrics.json").read_text())
    assert METRIC_KEYS <= set(metrics)
    assert {"name", "train_count", "group", "ap"} <= set(metrics["per_class"][0])
    assert 0 <= metrics["mAP"] <= 100
    assert "mAP" in dvc(repo, "metrics", "show")
    for plot in ("plots/ap_vs_train_count.csv", "plots/precision_recall.csv", "train_history.csv"):
        assert (repo / "reports" / plot).stat().st_size > 0
    assert (repo / "mlflow" / "mlflow.db").is_file()
    assert "Data and pipelines are up to date" in dvc(repo, "repro")
    for plot in ("validation_map", "training_loss", "precision_recall", "ap_vs_train_count"):
        assert (repo / "reports" / "plots" / f"{plot}.png").read_bytes().startswith(b"\x89PNG")

    # A bad value, or a typo in a key no stage reads, stops the pipeline at its first stage; every output
    # that git tracks (DVC cannot restore those) is left as it was.
    # (check_params's own report goes with its failed run: DVC removes a stage's outputs before it runs.)
    kept = [p for p in (repo / "reports").rglob("*") if p.is_file() and p.name != "params_check.txt"]
    before = {p: p.read_bytes() for p in kept}
    good = (repo / "params.yaml").read_text()
    for edit, message in [
        ("correction: {tau: -1}", "correction.tau: -1"),
        ("data: {missing_rat: 0.5}", "data.missing_rat"),
    ]:
        broken = yaml.safe_load(good)
        for section, values in yaml.safe_load(edit).items():
            broken[section].update(values)
        (repo / "params.yaml").write_text(yaml.safe_dump(broken, sort_keys=False))
        out = dvc(repo, "repro", ok=False)
        assert "check_params" in out and message in out and "Traceback" not in out, out
        assert {p: p.read_bytes() for p in kept} == before
    (repo / "params.yaml").write_text(good)
