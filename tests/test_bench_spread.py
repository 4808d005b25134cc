"""benchmarks/spread.py pairs runs by config and seed and reports second − first."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from spread import spread  # noqa: E402


def run(config, seed, mAP, epochs=15, best_epoch=9):
    return {"config": config, "seed": seed, "epochs": epochs, "mAP": mAP, "val_mAP_smoothed": mAP / 2,
            "mAP_few": mAP / 4, "last5_mAP": mAP - 1, "best_epoch": best_epoch, "prediction": "balanced"}  # fmt: skip


def test_spread_pairs_by_config_and_seed_and_skips_unmatched_runs():
    first = [run("comic", 0, 40.0), run("comic", 1, 42.0), run("hill", 0, 43.0), run("comic", 2, 41.0, epochs=25)]
    second = [run("comic_avx2", 1, 41.5, best_epoch=8), run("comic_avx2", 0, 40.4), run("focal_avx2", 0, 1.0),
              run("comic_avx2", 2, 30.0), run("comic", 0, 1.0)]  # fmt: skip
    out = spread(first, second, label="_avx2")
    assert list(out) == ["comic"]  # focal has no first run, comic seed 2 ran another length, "comic" lacks the label
    row = out["comic"]
    assert row["seeds"] == [1, 0]
    assert row["mAP"] == [-0.5, 0.4]
    assert row["val_mAP_smoothed"] == [-0.25, 0.2]
    assert row["same_selection"] == [False, True]
    assert row["mean_mAP_difference"] == -0.05
    assert row["largest_mAP_difference"] == -0.5
