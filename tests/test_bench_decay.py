"""benchmarks/rule_choice.py replays selection per seed and pairs auto against balanced;
benchmarks/epoch_table.py averages each epoch's diagnosis over seeds."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from epoch_table import table  # noqa: E402
from rule_choice import compare  # noqa: E402

RULES = ("head", "tail", "balanced", "unfused", "mean")


def run(seed: int, balanced: list[float], mean: list[float], shift: float = 0.0) -> dict:
    """A COMIC run whose validation and test mAP by rule follow `balanced` and `mean` (others 0)."""
    log, diagnosis = [], []
    for epoch, (b, m) in enumerate(zip(balanced, mean, strict=True)):
        val = {rule: {"balanced": b, "mean": m}.get(rule, 0.0) for rule in RULES}
        log.append({"epoch": epoch, **{f"val/rule/{k}/mAP": v for k, v in val.items()}})
        diagnosis.append({"test": {k: v + 20 + shift for k, v in val.items()}, "hidden": dict.fromkeys(RULES, 30.0)})
    return {"config": "comic", "seed": seed, "epochs_log": log, "epoch_diagnosis": diagnosis}


def test_auto_is_paired_with_balanced_on_the_same_run_and_signs_are_checked():
    runs = [run(0, [10, 12, 11], [9, 9, 14]), run(1, [10, 12, 11], [9, 9, 14], shift=1.0)]
    result = compare(runs, "comic", window=1)
    first = result["seeds"][0]
    assert (first["balanced"]["epoch"], first["balanced"]["test"]) == (1, 32.0)
    assert (first["auto"]["rule"], first["auto"]["epoch"], first["auto"]["test"]) == ("mean", 2, 34.0)
    assert [s["test_difference"] for s in result["seeds"]] == [2.0, 2.0] and result["test_agree"] == "yes"


def test_a_run_without_its_epoch_diagnosis_is_refused():
    bare = run(0, [10.0], [9.0])
    del bare["epoch_diagnosis"]
    with pytest.raises(ValueError, match="no epoch_diagnosis"):
        compare([bare], "comic", window=1)


def test_the_epoch_table_averages_over_seeds():
    text = table([run(0, [10, 12], [9, 9]), run(1, [20, 22], [9, 9])], "comic")
    assert "| 0 | 0.0 / 0.0 / 15.0 / 0.0 / 9.0 | 20.0 / 20.0 / 35.0 / 20.0 / 29.0 |" in text
    assert text.count("\n| ") == 3  # the header row and two epochs
