"""Seed-by-seed differences between two runs of an accuracy table (another machine, other CPU kernels).

    PYTHONPATH=. .venv/bin/python benchmarks/spread.py docs/results/accuracy.json docs/results/accuracy_avx2.json \
        --out docs/results/spread_avx2.json

Runs are matched by config and seed; with `--label`, only the second file's configs with that suffix,
matched without it (`--label _cas` on one file twice: each `x_cas` against `x`);
for each config the result holds the per-seed differences (second minus first) of the headline test
mAP, the selected validation score and the few-shot mAP, the difference of the means, and whether the
selected epoch and prediction rule were the same.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

KEYS = ("mAP", "val_mAP_smoothed", "mAP_few", "last5_mAP")


def spread(first: list[dict], second: list[dict], label: str = "") -> dict[str, dict]:
    """Per config present in both: per-seed differences second − first, and of the means."""
    mine = {(r["config"], r["seed"]): r for r in first}
    out: dict[str, dict] = {}
    for run in second:
        if not run["config"].endswith(label):
            continue
        name = run["config"].removesuffix(label) if label else run["config"]
        base = mine.get((name, run["seed"]))
        if base is None or base["epochs"] != run["epochs"]:
            continue
        row = out.setdefault(name, {"seeds": [], **{k: [] for k in KEYS}, "same_selection": []})
        row["seeds"].append(run["seed"])
        for key in KEYS:
            row[key].append(round(run[key] - base[key], 2))
        row["same_selection"].append((run["best_epoch"], run["prediction"]) == (base["best_epoch"], base["prediction"]))
    for row in out.values():
        row["mean_mAP_difference"] = round(statistics.mean(row["mAP"]), 2)
        row["largest_mAP_difference"] = max(row["mAP"], key=abs)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("first")
    parser.add_argument("second")
    parser.add_argument("--label", default="", help="suffix on the second file's config names")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from comic.files import write_json

    runs = [json.loads(Path(path).read_text())["runs"] for path in (args.first, args.second)]
    result = {"first": args.first, "second": args.second, "configs": spread(*runs, label=args.label)}
    write_json(Path(args.out), result)
    for name, row in result["configs"].items():
        mean = row["mean_mAP_difference"]
        print(f"{name:>12}: test mAP {row['mAP']} (mean {mean:+.2f}), val {row['val_mAP_smoothed']}")


if __name__ == "__main__":
    main()
