"""The per-epoch history of a training run: the selection rule on its validation curve, and its CSV file.

Selection takes the epoch whose *smoothed* validation mAP is highest, the smoothing being the trailing
mean of the last `window` epochs (fewer at the start). A one-epoch spike on a small validation split then
moves the choice by a third (window 3) of its height instead of deciding it; `window: 1` is the plain
best epoch. The weights kept are those of the chosen epoch itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from comic.files import write_csv

SELECTED = "val/mAP_smoothed"  # the history column selection maximises


def trailing_mean(values: Sequence[float], window: int) -> float:
    """Mean of the last `window` values (all of them if fewer)."""
    if window < 1 or not values:
        raise ValueError(f"need window >= 1 and at least one value, got window={window}, {len(values)} values")
    tail = values[-window:]
    return sum(tail) / len(tail)


def write_history(path: str | Path, history: list[dict]) -> None:
    """One CSV row per epoch, `epoch` first, the other columns sorted."""
    columns = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    write_csv(path, history, columns)
