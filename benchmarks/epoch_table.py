"""Per-epoch diagnosis of a config in a result file: validation, test and hidden-positive mAP by prediction
rule and the corrector's audit, each the mean over the config's seeds; with `--hold`, how well every config
holds its selected epoch, on validation and on test.

    PYTHONPATH=. .venv/bin/python benchmarks/epoch_table.py docs/results/photo_case.json --config comic
    PYTHONPATH=. .venv/bin/python benchmarks/epoch_table.py docs/results/photo_case.json --hold

Test mAP (full labels) and the hidden positives' mAP on the training split come from the runs'
`epoch_diagnosis` (`comic.experiments.epoch_diagnosis`): they show where a run peaks and which branch
falls after the peak, and choose nothing.
"""

from __future__ import annotations

import argparse
import math
import statistics
from pathlib import Path

from comic.experiments import LAST, read_runs

RULES = ("head", "tail", "balanced", "unfused", "mean")


def mean(values: list[float]) -> float:
    values = [v for v in values if v is not None and not math.isnan(v)]
    return statistics.mean(values) if values else math.nan


def table(runs: list[dict], config: str) -> str:
    mine = [r for r in runs if r["config"] == config]
    if not mine or any("epoch_diagnosis" not in r for r in mine):
        raise ValueError(f"{config}: no runs with an epoch_diagnosis in this file")
    rules = [r for r in RULES if r in mine[0]["epoch_diagnosis"][0]["test"]] or ["single"]
    head = " / ".join(rules)
    lines = [
        f"{config}, mean over seeds {sorted(r['seed'] for r in mine)}; each cell {head}:",
        "",
        "| epoch | val mAP (observed) | test mAP | hidden-positive mAP, train | recalled (precision) |",
        "|---:|---|---|---|---|",
    ]
    for epoch in range(min(len(r["epoch_diagnosis"]) for r in mine)):
        rows = [r["epochs_log"][epoch] for r in mine]
        points = [r["epoch_diagnosis"][epoch] for r in mine]
        val = " / ".join(f"{mean([row.get(f'val/rule/{k}/mAP') for row in rows]):.1f}" for k in rules)
        test = " / ".join(f"{mean([p['test'][k] for p in points]):.1f}" for k in rules)
        hidden = " / ".join(f"{mean([p['hidden'][k] for p in points]):.1f}" for k in rules)
        recalled = mean([row.get("correction/recalled", 0) for row in rows])
        precision = mean([row.get("correction/precision", math.nan) for row in rows])
        audit = f"{recalled:.0f} ({precision:.2f})" if recalled else "-"
        lines.append(f"| {epoch} | {val} | {test} | {hidden} | {audit} |")
    return "\n".join(lines) + "\n"


def val_by_epoch(run: dict) -> list[float]:
    """Validation mAP per epoch under the run's selected prediction rule (a single head has one)."""
    if run["prediction"] == "single":
        return run["val_curve"]
    return [row[f"val/rule/{run['prediction']}/mAP"] for row in run["epochs_log"]]


def hold(runs: list[dict]) -> str:
    """Per config: validation mAP at the selected epoch (smoothed) and over the last LAST epochs under the
    selected rule, test mAP at the selected epoch and over the last LAST epochs, the test drop per seed."""
    lines = [
        f"| config | seeds | val, selected | val, last {LAST} | test, selected | test, last {LAST} | drop | per seed |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in dict.fromkeys(r["config"] for r in runs):
        mine = sorted((r for r in runs if r["config"] == name), key=lambda r: r["seed"])
        val_last = [mean(val_by_epoch(r)[-LAST:]) for r in mine]
        drops = [round(r["mAP"] - r["last5_mAP"], 2) for r in mine]
        cells = [mean([r["val_mAP_smoothed"] for r in mine]), mean(val_last), mean([r["mAP"] for r in mine]),
                 mean([r["last5_mAP"] for r in mine]), mean(drops)]  # fmt: skip
        lines.append(f"| {name} | {len(mine)} | " + " | ".join(f"{c:.2f}" for c in cells) + f" | {drops} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--config", default="comic")
    parser.add_argument("--hold", action="store_true", help="the hold table of every config instead")
    args = parser.parse_args()
    runs = read_runs(args.results)
    print(hold(runs) if args.hold else table(runs, args.config), end="")


if __name__ == "__main__":
    main()
