"""`dvc repro` of the whole pipeline (data -> tune -> train -> evaluate) on tiny data in a copy of the repo."""

import json
import re
import sqlite3

import pytest
import yaml

from tests.data.test_stages import dvc, ran_stages, scratch_repo
from tests.registry.conftest import free_port

METRIC_KEYS = {"mAP", "mAP_many", "mAP_medium", "mAP_few", "recall@0.5", "precision@0.5", "per_class"}


@pytest.mark.slow
@pytest.mark.timeout(600)
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
    for noise in (
        *("Add type hints", "Started a local Ray instance", "worker group", "TrainingReport", "INFO"),
        *("PreemptionWatcher", "Token authentication", "Trial status", "Current time:"),
    ):
        assert noise not in out, noise
    assert len(re.findall(r"\bepoch \d+/2 ", out)) == 2, out  # from rank 0 only
    assert len(re.findall(r"(?m)^trial \d+/2 ", out)) == 2, out
    per_epoch_or_trial = r"\bepoch \d+/\d+ |^trial \d+/\d+ |^\S*\(TrainController pid="
    rest = [line for line in out.splitlines() if not re.search(per_epoch_or_trial, line)]
    stages = len(re.findall(r"(?m)^Running stage '", out))  # five lines each (command, summary, lock, blank)
    assert len(rest) - ("Generating lock file" in out) < 5 * stages + 10, out
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
    assert ran_stages(dvc(repo, "repro")) == ["scan_sources"]
    for plot in ("validation_map", "training_loss", "precision_recall", "ap_vs_train_count"):
        assert (repo / "reports" / "plots" / f"{plot}.png").read_bytes().startswith(b"\x89PNG")
    # `dvc plots show`'s page embeds every declared plot and loads nothing from the network.
    dvc(repo, "plots", "show", "-o", "page")
    page = (repo / "page" / "index.html").read_text()
    declared = yaml.safe_load((repo / "dvc.yaml").read_text())["plots"]
    assert page.count("<img") == len(declared) and not re.search(r"https?://", page), page

    # A bad value, a typo in a key no stage reads, a renamed key, or a key a stage tracks gone missing stops
    # the pipeline at its first stage; every output git tracks (DVC cannot restore those) and the data are
    # left as they were.
    kept = [p for p in [*(repo / "reports").rglob("*"), *(repo / "data" / "plt").rglob("*")] if p.is_file()]
    before = snapshot(kept)
    good = (repo / "params.yaml").read_text()
    renamed, deleted = yaml.safe_load(good), yaml.safe_load(good)
    renamed["data"]["missing_ratio"] = renamed["data"].pop("missing_rate")
    del deleted["data"]["missing_rate"]
    for broken, message in [
        (edited(good, correction={"tau": -1}), "correction.tau: -1"),
        (edited(good, data={"missing_rat": 0.5}), "data.missing_rat"),
        (renamed, "unknown key(s) data.missing_ratio"),
        (deleted, "data.missing_rate is missing; stage drop_labels"),
    ]:
        (repo / "params.yaml").write_text(yaml.safe_dump(broken, sort_keys=False))
        out = dvc(repo, "repro", ok=False)
        assert "check_params" in out and message in out and "Traceback" not in out, out
        assert snapshot(kept) == before
    (repo / "params.yaml").write_text(good)

    # A stage that fails after DVC removed its outputs: register against a server that is down keeps
    # registry.json; train keeps its history, and `dvc checkout` brings the model files back from DVC's
    # cache. Each says so in one line within seconds.
    dead = f"http://127.0.0.1:{free_port()}"
    (repo / "params.yaml").write_text(yaml.safe_dump(edited(good, tracking={"uri": dead}), sort_keys=False))
    out = dvc(repo, "repro", ok=False)
    assert "Running stage 'register'" in out and dead in out and "Traceback" not in out, out
    out = dvc(repo, "repro", "--force", "--single-item", "train", ok=False)
    assert "Running stage 'train'" in out and dead in out and "Traceback" not in out, out
    assert not (repo / "models" / "model.pt").exists()  # DVC removes a cached output before its stage runs
    assert snapshot(kept) == before
    (repo / "params.yaml").write_text(good)
    dvc(repo, "checkout")
    # check_params last passed on the dead server's params; nothing else has anything to do (scan_sources
    # runs on every repro)
    assert ran_stages(dvc(repo, "repro")) == ["check_params", "scan_sources"]
    assert not mlflow_runs(repo, "RUNNING"), "every MLflow run ends with its status"


def edited(params_text: str, **updates: dict) -> dict:
    params = yaml.safe_load(params_text)
    for section, values in updates.items():
        params[section].update(values)
    return params


def snapshot(paths) -> dict:
    return {p: p.read_bytes() for p in paths}


def mlflow_runs(repo, status: str) -> list[str]:
    with sqlite3.connect(repo / "mlflow" / "mlflow.db") as db:
        return [name for (name,) in db.execute("SELECT name FROM runs WHERE status = ?", (status,))]
