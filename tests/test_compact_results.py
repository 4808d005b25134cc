"""tools/compact_results.py: the committed result files are already compact, and compaction keeps every
field that comic.experiments' tables and tuning.py's trial-length table read."""

import importlib.util
import json
import math
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("compact_results", REPO / "tools" / "compact_results.py")
compact_results = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(compact_results)


def _run(epochs: int = 4) -> dict:
    log = [
        {
            "epoch": e,
            "val/mAP": 10.0 + e,
            "val/mAP_smoothed": 9.5 + e,
            "val/recall@0.5": 50.0,
            "correction/recalled": 3 * (e >= 2),
            "correction/correct": 2 * (e >= 2),
            "correction/wrong": 1 * (e >= 2),
            "correction/precision": 2 / 3 if e >= 2 else math.nan,
            "diagnostics/grad_share/logits/main": 0.8,
            "diagnostics/grad_share/features/main": 0.8,
            "val/rule/balanced/mAP": 10.0 + e,
        }
        for e in range(epochs)
    ]
    return {"config": "comic", "seed": 0, "mAP": 43.123456789, "val_curve": [row["val/mAP"] for row in log],
            "epochs_log": log}  # fmt: skip


def test_every_committed_result_file_is_already_compact():
    for path in sorted((REPO / "docs" / "results").glob("*.json")):
        text = path.read_text()
        assert compact_results.dumps(compact_results.compact(json.loads(text))) + "\n" == text, path.name


def test_compaction_keeps_the_audit_the_last_epoch_and_the_headline_numbers():
    run = compact_results.compact({"command": "benchmarks/accuracy.py", "runs": [_run()]})["runs"][0]
    log = run["epochs_log"]
    assert run["mAP"] == 43.123456789 and run["val_curve"] == [10.0, 11.0, 12.0, 13.0]
    assert log[0] == {"val/rule/balanced/mAP": 10.0} and log[2]["correction/precision"] == 2 / 3
    assert "val/mAP_smoothed" not in log[2] and [row["val/rule/balanced/mAP"] for row in log] == [10, 11, 12, 13]
    assert sum(row.get("correction/wrong", 0) for row in log) == 2
    assert log[-1]["epoch"] == 3 and log[-1]["diagnostics/grad_share/logits/main"] == 0.8
    assert "diagnostics/grad_share/features/main" not in log[-1] and "val/recall@0.5" not in log[-1]


def test_a_correlation_file_keeps_every_epoch_s_trial_score():
    result = {"command": "benchmarks/tuning.py correlation --epochs 4", "runs": [_run()]}
    log = compact_results.compact(result)["runs"][0]["epochs_log"]
    assert [row["val/mAP_smoothed"] for row in log] == [9.5, 10.5, 11.5, 12.5]


def test_compacting_twice_changes_nothing():
    once = compact_results.compact({"command": "x", "runs": [_run()]})
    assert compact_results.dumps(compact_results.compact(once)) == compact_results.dumps(once)
