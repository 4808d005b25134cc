"""Epoch selection on the smoothed validation curve, and the prediction rule it picks."""

import pytest

from comic.config import Params, override
from comic.history import trailing_mean
from comic.training import selection_candidates, smoothed_best


def rows(curves: dict[str, list[float]]) -> list[dict]:
    epochs = len(next(iter(curves.values())))
    return [{f"val/rule/{r}/mAP": curve[e] for r, curve in curves.items()} for e in range(epochs)]


def test_the_trailing_mean_averages_the_last_window_values():
    assert trailing_mean([1.0, 2.0, 6.0], 3) == 3.0
    assert trailing_mean([1.0, 2.0, 6.0], 2) == 4.0
    assert trailing_mean([5.0], 3) == 5.0
    with pytest.raises(ValueError):
        trailing_mean([], 3)


def test_a_one_epoch_spike_does_not_win_against_a_plateau():
    curve = [10.0, 30.0, 12.0, 20.0, 21.0, 22.0]  # epoch 1 spikes
    history = rows({"balanced": curve})
    best = max(range(len(curve)), key=lambda e: smoothed_best(history[: e + 1], ["balanced"], 3)[0])
    assert best == 5
    raw = max(range(len(curve)), key=lambda e: smoothed_best(history[: e + 1], ["balanced"], 1)[0])
    assert raw == 1


def test_auto_prediction_chooses_the_best_smoothed_rule():
    history = rows({"balanced": [10, 11, 12], "unfused": [9, 9, 9], "mean": [12, 13, 14]})
    assert smoothed_best(history, ["balanced", "unfused", "mean"], 2) == (13.5, "mean")
    assert selection_candidates(override(Params(), {"balance.prediction": "auto"})) == ["balanced", "unfused", "mean"]
    assert selection_candidates(Params()) == ["balanced"]
    assert selection_candidates(override(Params(), {"model.name": "single"})) == ["single"]
