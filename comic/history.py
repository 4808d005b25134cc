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


def progress_line(metrics: dict, epochs: int) -> str:
    """One line per epoch: losses, validation mAP (smoothed, best), speed, the corrector's audit."""
    line = (
        f"epoch {metrics['epoch'] + 1}/{epochs}  loss {metrics['train/loss']:.3f}  "
        f"val mAP {metrics['val/mAP']:.2f} (smoothed {metrics[SELECTED]:.2f}; "
        f"best {metrics['best/val_mAP_smoothed']:.2f} at epoch {metrics['best/epoch'] + 1})  "
        f"{metrics['train/images_per_s']:.0f} img/s"
    )
    recalled = metrics.get("correction/recalled", 0)
    if recalled:
        line += f"  recalled {recalled} (precision {metrics['correction/precision']:.2f})"
    return line


def read_history(path: str | Path) -> list[dict]:
    """The rows `write_history` wrote, numbers as floats (`epoch` as int), empty cells dropped."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: training history not found; the train stage writes it (`dvc repro train`)")
    with path.open(newline="") as handle:
        rows = [{k: float(v) for k, v in row.items() if v not in ("", None)} for row in csv.DictReader(handle)]
    for row in rows:
        row["epoch"] = int(row["epoch"])
    return rows
