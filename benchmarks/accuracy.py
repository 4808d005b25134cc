"""Accuracy benchmark: COMIC, its ablations and the baselines on the same data, several seeds.

    PYTHONPATH=. .venv/bin/python benchmarks/accuracy.py --data data/plt --epochs 20 --seeds 0 1 2 \
        --jobs 2 --out docs/results/accuracy.json

Each run trains in one process (the training math is the same as under Ray DDP, tests/test_ddp.py),
selects its epoch on the validation split (observed labels only), and is scored once on the test split
with the full labels. Rows marked `full` train on a copy of the data with every label observed, so the
partial-label gap shows apart from the long-tail effect. Results (mean and std over seeds) go to a JSON
file and a markdown table next to it; the test split never feeds back into any setting.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

BASELINE = {"model.name": "single", "correction.weight": 0.0}
CONFIGS: dict[str, dict] = {
    "comic": {},
    "comic_shared_trunk": {"balance.shared_backbone": True},
    "comic_no_rlc": {"correction.weight": 0.0},
    "comic_no_ht_factor": {"loss.mfm.w_neg": 0.0, "loss.mfm.class_weight": False},
    "comic_no_htb": {"model.name": "single"},
    "bce": {**BASELINE, "loss.name": "bce"},
    "focal": {**BASELINE, "loss.name": "focal"},
    "asl": {**BASELINE, "loss.name": "asl"},
    "db_focal_cas": {**BASELINE, "loss.name": "db_focal", "train.sampler": "class_aware"},
    "hill": {**BASELINE, "loss.name": "hill"},
    "splc": {**BASELINE, "loss.name": "splc"},
    "asl_cas": {**BASELINE, "loss.name": "asl", "train.sampler": "class_aware"},
    "bce_full": {**BASELINE, "loss.name": "bce"},
    "asl_full": {**BASELINE, "loss.name": "asl"},
    "asl_cas_full": {**BASELINE, "loss.name": "asl", "train.sampler": "class_aware"},
}
METRICS = ("mAP", "mAP_many", "mAP_medium", "mAP_few")


def full_label_copy(data_dir: Path, out: Path) -> Path:
    """The dataset with every training and validation label observed."""
    import shutil

    from comic.data.store import read_split, write_split

    out.mkdir(parents=True, exist_ok=True)
    for split in ("train", "val", "test"):
        table = read_split(data_dir, split)
        write_split(out, table.replace(labels_observed=table.labels_full.copy()))
    shutil.copy(data_dir / "classes.json", out / "classes.json")
    return out


def run_one(job: tuple[str, int, str, int, dict]) -> dict:
    name, seed, data_dir, epochs, base = job
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    from comic import checkpoint
    from comic.config import Params, from_dict, override
    from comic.data.store import load_classes
    from comic.evaluation import score_on_test
    from comic.models import build_model
    from comic.training import LocalReporter, train

    torch.set_num_threads(1)
    params = override(from_dict(Params, base), {**CONFIGS[name], "seed": seed, "train.epochs": epochs})
    started = time.time()
    with tempfile.TemporaryDirectory() as folder:
        reporter = LocalReporter(Path(folder))
        train(params, data_dir, reporter)
        state, best = checkpoint.load(Path(folder) / "checkpoint")
    classes = load_classes(data_dir)

    def score(weights) -> dict:
        model = build_model(params.model, params.balance, num_classes=len(classes["names"]))
        model.load_state_dict(weights)
        return score_on_test(model, data_dir, image_size=params.data.image_size, metrics=params.metrics)[0]

    report, last_report = score(best), score(state[checkpoint.MODEL])
    audit = [
        {"epoch": row["epoch"], **{k.split("/")[1]: row[k] for k in row if k.startswith("correction/")}}
        for row in reporter.history
    ]
    return {
        "config": name,
        "seed": seed,
        "epochs": epochs,
        "seconds": round(time.time() - started, 1),
        "best_epoch": reporter.history[-1]["best/epoch"],
        "val_mAP": reporter.history[-1]["best/val_mAP_smoothed"],
        **{k: report[k] for k in METRICS},
        **{f"last_{k}": last_report[k] for k in METRICS},
        "correction_audit": audit,
        "val_curve": [row["val/mAP"] for row in reporter.history],
    }


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for name in CONFIGS:
        mine = [r for r in runs if r["config"] == name]
        if not mine:
            continue
        row = {"config": name, "seeds": len(mine)}
        for key in (*METRICS, *(f"last_{k}" for k in METRICS)):
            if not all(key in r for r in mine):
                continue
            values = [r[key] for r in mine if r[key] is not None and not math.isnan(r[key])]
            row[key] = (statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0)
        rows.append(row)
    return rows


def markdown(rows: list[dict], command: str) -> str:
    keys = (*METRICS, "last_mAP", "last_mAP_few")
    lines = [
        f"Command: `{command}`",
        "",
        "| config | seeds | mAP | many | medium | few | mAP, last epoch | few, last epoch |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = " | ".join(f"{row[k][0]:.2f} ± {row[k][1]:.2f}" if k in row else "-" for k in keys)
        lines.append(f"| {row['config']} | {row['seeds']} | {cells} |")
    return "\n".join(lines) + "\n"


def audit_markdown(runs: list[dict], every: int = 3) -> str:
    """Per config, over seeds: precision of the recalled labels every `every` epochs, the last epoch's
    recall of hidden labels, and the mean validation mAP of the last 5 epochs (a selection-free view)."""
    rows = []
    for name in CONFIGS:
        mine = [r for r in runs if r["config"] == name and any(a.get("recalled") for a in r["correction_audit"])]
        if not mine:
            continue
        epochs = range(0, min(len(r["correction_audit"]) for r in mine), every)

        def mean(values: list) -> str:
            values = [v for v in values if v is not None and not math.isnan(v)]
            return f"{statistics.mean(values):.2f}" if values else "-"

        precision = [mean([r["correction_audit"][e].get("precision") for r in mine]) for e in epochs]
        recall = mean([r["correction_audit"][-1].get("recall") for r in mine])
        val = mean([statistics.mean(r["val_curve"][-5:]) for r in mine])
        rows.append(f"| {name} | {len(mine)} | {' / '.join(precision)} | {recall} | {val} |")
    if not rows:
        return ""
    header = [
        "",
        f"Corrected labels (hidden labels as the reference; epochs 0, {every}, {2 * every}, ...):",
        "",
        "| config | seeds | precision per epoch | recall, last epoch | val mAP, mean of last 5 epochs |",
        "|---|---:|---|---:|---:|",
    ]
    return "\n".join(header + rows) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/plt")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="docs/results/accuracy.json")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="params overrides (YAML values)")
    args = parser.parse_args()

    import yaml

    from comic.config import load_params, override, to_dict

    updates = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    # Read once: edits to params.yaml during the run do not leak in.
    base = to_dict(override(load_params(args.params), updates))
    data = Path(args.data).resolve()
    full = full_label_copy(data, Path(tempfile.mkdtemp(prefix="comic-full-")))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    # Runs already in the output file (same epochs) are kept, not repeated: an interrupted benchmark resumes.
    runs: list[dict] = json.loads(out.read_text())["runs"] if out.is_file() else []
    done = {(r["config"], r["seed"]) for r in runs if r["epochs"] == args.epochs}
    runs = [r for r in runs if (r["config"], r["seed"]) in done]
    jobs = [
        (name, seed, str(full if name.endswith("_full") else data), args.epochs, base)
        for seed in args.seeds
        for name in args.configs
        if (name, seed) not in done
    ]
    command = "PYTHONPATH=. .venv/bin/python benchmarks/accuracy.py " + " ".join(
        f"--{k} {' '.join(map(str, v)) if isinstance(v, list) else v}" for k, v in vars(args).items()
    )
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for future in as_completed([pool.submit(run_one, job) for job in jobs]):
            result = future.result()
            runs.append(result)
            print(
                f"{result['config']:>20} seed {result['seed']}: test mAP {result['mAP']:.2f} "
                f"(few {result['mAP_few']:.2f}), {result['seconds']} s",
                flush=True,
            )
            write_results(out, command, runs)
    if not jobs and runs:  # everything was done already: render the tables again from the stored runs
        write_results(out, command, runs)


def write_results(out: Path, command: str, runs: list[dict]) -> None:
    rows = summarise(runs)
    out.write_text(json.dumps({"command": command, "summary": rows, "runs": runs}, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(rows, command) + audit_markdown(runs))


if __name__ == "__main__":
    main()
