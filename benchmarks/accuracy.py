"""Accuracy benchmark: COMIC, its ablations and the baselines on the same data, several seeds, paired.

    PYTHONPATH=. .venv/bin/python benchmarks/accuracy.py --data data/plt --epochs 25 --seeds 0 1 2 3 4 \
        --configs comic comic_no_rlc hill asl --jobs 2 --out docs/results/accuracy.json

Each run trains in one process (the training math is the same as under Ray DDP, tests/test_ddp.py),
selects its epoch and prediction rule on the validation split (observed labels only, the trailing mean
of `train.select_window` epochs) and is scored on the test split with the full labels at three points:
the selected epoch (`mAP`, the headline), the last epoch (`last_mAP`) and the mean over the last five
epochs (`last5_mAP`). Rows marked `_full` train on a copy of the data with every label observed. The test
split never feeds back into any setting. `--set` overrides params for every run (e.g. to measure an
option on validation); `--label` appends a name to the configs so that such runs sit apart in the table.
Finished runs are kept in `--out` and not repeated: an interrupted benchmark resumes.

Float rounding differs between machines (their vector units pick other kernels); to see what that does
to a table on one machine, run it again with the kernels of an AVX2-only CPU and compare seed by seed:

    ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 PYTHONPATH=. \
        .venv/bin/python benchmarks/accuracy.py ... --out docs/results/accuracy_avx2.json
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
# The paper's reading of COMIC, whatever the project defaults become.
PAPER = {
    "correction.tau": 0.7,
    "correction.start_epoch": 0,
    "correction.class_threshold": "ema",
    "correction.mask_recalled": False,
    "balance.distill": "literal",
    "balance.teachers": "all",
    "balance.branch_logits": "learning_effect",
    "balance.prediction": "balanced",
    "balance.weight": 1.0,
    "loss.mfm.cooccurrence_scale": 1.0,
    "loss.mfm.w_neg": 1.0,
    "loss.mfm.class_weight": True,
    "loss.mfm.negative": "focal",
    "loss.mfm.reject_fraction": 0.0,
    "train.classifier_lr_scale": 1.0,
    "train.schedule": "cosine",
}
CONFIGS: dict[str, dict] = {
    "comic": {},  # the project defaults (params.yaml)
    "comic_paper": PAPER,
    "comic_shared_trunk": {"balance.shared_backbone": True},
    "comic_no_mask": {"correction.mask_recalled": False},  # the defaults before benchmark v2's measurements
    "comic_no_rlc": {"correction.weight": 0.0},
    # MFM's head-tail factor in and out, pinned whatever the defaults (out by default: docs/training.md, 14).
    "comic_ht_factor": {"loss.mfm.w_neg": 1.0, "loss.mfm.class_weight": True},
    "comic_no_ht_factor": {"loss.mfm.w_neg": 0.0, "loss.mfm.class_weight": False},
    "comic_no_htb": {"model.name": "single", "model.classifier": "cosine"},
    "bce": {**BASELINE, "loss.name": "bce"},
    "focal": {**BASELINE, "loss.name": "focal"},
    "asl": {**BASELINE, "loss.name": "asl"},
    "db_focal_cas": {**BASELINE, "loss.name": "db_focal", "train.sampler": "class_aware"},
    "hill": {**BASELINE, "loss.name": "hill"},
    "splc": {**BASELINE, "loss.name": "splc"},
    "asl_cas": {**BASELINE, "loss.name": "asl", "train.sampler": "class_aware"},
    "comic_full": {},  # the project defaults with every label observed: what the method reaches without hiding
    "bce_full": {**BASELINE, "loss.name": "bce"},
    "asl_full": {**BASELINE, "loss.name": "asl"},
    "hill_full": {**BASELINE, "loss.name": "hill"},
}
METRICS = ("mAP", "mAP_many", "mAP_medium", "mAP_few")
LAST = 5  # epochs averaged by last5_*


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


def cached_features(base: dict, updates: dict, data_dir: str, made: dict[str, str], scratch: str) -> str | None:
    """The trunk features of a frozen backbone for `data_dir` (computed once, like the embed stage, into a
    folder under `scratch`), or None."""
    from comic.config import Params, from_dict, override
    from comic.features import embed
    from comic.models import input_spec

    params = override(from_dict(Params, base), updates)
    if not params.model.freeze_backbone:
        return None
    key = json.dumps([data_dir, params.model.backbone, params.model.pretrained, params.model.pretrained_path,
                      params.model.input_size, params.data.image_size])  # fmt: skip
    if key not in made:
        folder = Path(scratch) / f"features{len(made)}"
        embed(params.model, input_spec(params.model, params.data.image_size), data_dir, folder)
        made[key] = str(folder)
    return made[key]


def run_one(job: tuple) -> dict:
    """Train one config and seed (job: name, seed, data folder, epochs, base params, overrides, the cached
    trunk features of a frozen backbone or None, torch threads); score the selected, last and last-five
    epochs."""
    name, seed, data_dir, epochs, base, updates, features_dir, threads = job
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    from comic import checkpoint
    from comic.config import Params, from_dict, override
    from comic.evaluation import predict_split, test_report
    from comic.models import build_model, input_spec
    from comic.training import LocalReporter, train

    torch.set_num_threads(threads)
    params = override(from_dict(Params, base), {**updates, "seed": seed, "train.epochs": epochs})

    class KeepLast(LocalReporter):
        """Also keeps the model weights of the last `LAST` epochs."""

        weights: dict = {}

        def report(self, metrics, checkpoint_dir):
            super().report(metrics, checkpoint_dir)
            if metrics["epoch"] >= epochs - LAST:
                self.weights[metrics["epoch"]] = checkpoint.load(Path(self.root) / "checkpoint")[0][checkpoint.MODEL]

    started = time.time()
    with tempfile.TemporaryDirectory() as folder:
        reporter = KeepLast(Path(folder))
        train(params, data_dir, reporter, verbose=False, features_dir=features_dir)
        state, best = checkpoint.load(Path(folder) / "checkpoint")
    progress = state[checkpoint.PROGRESS]
    from comic.data.store import load_classes

    classes = load_classes(data_dir)

    def score(weights, prediction: str, views: bool = False) -> dict:
        model = build_model(params.model, params.balance, num_classes=len(classes["names"]), load_weights=False)
        model.load_state_dict(weights)
        if hasattr(model, "prediction"):
            model.prediction = prediction
        test = predict_split(
            model, data_dir, "test", spec=input_spec(params.model, params.data.image_size), views=views
        )
        result = {k: v for k, v in test_report(test["labels_full"], test["scores"], classes, params.metrics).items()}
        if views:
            result["views"] = {
                key.removeprefix("view/"): test_report(test["labels_full"], test[key], classes, params.metrics)["mAP"]
                for key in test
                if key.startswith("view/")
            }
        return result

    view = progress["best_view"]
    selected = score(best, view, views=True)
    last = {e: score(w, view) for e, w in sorted(reporter.weights.items())}
    history = reporter.history
    return {
        "config": name,
        "seed": seed,
        "epochs": epochs,
        "seconds": round(time.time() - started, 1),
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),  # AVX2 / AVX512 kernels round differently
        "best_epoch": progress["best_epoch"],
        "prediction": view,
        "val_mAP_smoothed": progress["best_score"],
        **{k: selected[k] for k in METRICS},
        **{f"last_{k}": last[epochs - 1][k] for k in METRICS},
        **{f"last5_{k}": statistics.mean(r[k] for r in last.values()) for k in METRICS},
        "test_views": selected["views"],
        "val_curve": [row["val/mAP"] for row in history],
        "epochs_log": [
            {k: v for k, v in row.items() if k.split("/")[0] in ("epoch", "correction", "diagnostics", "val")}
            for row in history
        ],
    }


def parse_sets(items: list[str]) -> dict:
    """`--set KEY=VALUE ...` as params overrides, each value read as YAML (true, 0.1, null, a string)."""
    import yaml

    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in items)}


def mean_std(values: list[float]) -> tuple[float, float]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return (math.nan, math.nan)
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: list[dict]) -> list[dict]:
    rows = []
    for name in dict.fromkeys(r["config"] for r in runs):
        mine = sorted((r for r in runs if r["config"] == name), key=lambda r: r["seed"])
        row = {"config": name, "seeds": [r["seed"] for r in mine]}
        for key in ("val_mAP_smoothed", *METRICS, *(f"{p}_{k}" for p in ("last", "last5") for k in METRICS)):
            row[key] = mean_std([r[key] for r in mine])
        rows.append(row)
    return rows


def paired(runs: list[dict], reference: str, key: str = "mAP") -> dict[str, list[float]]:
    """Per config, `key` of `reference` minus the config's, seed by seed (seeds both ran)."""
    ref = {r["seed"]: r[key] for r in runs if r["config"] == reference}
    out: dict[str, list[float]] = {}
    for name in dict.fromkeys(r["config"] for r in runs):
        if name == reference:
            continue
        mine = {r["seed"]: r[key] for r in runs if r["config"] == name}
        out[name] = [round(ref[s] - mine[s], 2) for s in sorted(set(ref) & set(mine))]
    return out


def _agree(diffs: list[float]) -> str:
    return "yes" if diffs and (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)) else "no"


def _cell(value: tuple[float, float]) -> str:
    return "-" if math.isnan(value[0]) else f"{value[0]:.2f} ± {value[1]:.2f}"


def diagnostics_rows(runs: list[dict]) -> list[str]:
    """COMIC-family runs: gradient shares on z_b at the last epoch, the net gradient on recalled entries,
    the correction audit, validation mAP of each prediction rule at the last epoch; means over seeds."""
    lines = []
    for name in dict.fromkeys(r["config"] for r in runs):
        mine = [r for r in runs if r["config"] == name and r["epochs_log"]]
        if not mine or not any("diagnostics/grad_share/logits/main" in r["epochs_log"][-1] for r in mine):
            continue
        last = [r["epochs_log"][-1] for r in mine]

        def mean(key: str, rows=last) -> str:
            values = [row[key] for row in rows if key in row and not math.isnan(row[key])]
            return f"{statistics.mean(values):.2f}" if values else "-"

        correcting = [e for r in mine for e in r["epochs_log"] if e.get("correction/recalled")]
        precision = [e["correction/precision"] for e in correcting]
        right = statistics.mean(sum(e.get("correction/correct", 0) for e in r["epochs_log"]) for r in mine)
        wrong = statistics.mean(sum(e.get("correction/wrong", 0) for e in r["epochs_log"]) for r in mine)
        shares = " / ".join(mean(f"diagnostics/grad_share/logits/{t}") for t in ("main", "rlc", "htb"))
        views = " / ".join(mean(f"val/view/{v}/mAP") for v in ("head", "balanced", "tail", "unfused", "mean"))
        lines.append(
            f"| {name} | {shares} | {mean('diagnostics/recalled/net_grad')} | "
            f"{min(precision):.2f} | {right:.0f} / {wrong:.0f} | {views} |"
            if precision
            else f"| {name} | {shares} | - | - | - | {views} |"
        )
    if not lines:
        return []
    return [
        "",
        "Diagnostics, means over seeds: share of the gradient norm on z_b at the last epoch (main MFM / RLC /",
        "HTB), net dL/dz on recalled entries (batch scale; < 0 holds them up), the lowest audit precision of a",
        "correcting epoch, right / wrong recalled labels over the run, and the last epoch's validation mAP",
        "of each prediction rule (head / balanced / tail / unfused / mean of three):",
        "",
        "| config | grad share main/rlc/htb | net grad, recalled | min precision | right / wrong | val mAP by rule |",
        "|---|---|---:|---:|---:|---|",
        *lines,
    ]


def markdown(runs: list[dict], command: str, reference: str) -> str:
    rows = summarise(runs)
    lines = [
        f"Command: `{command}`",
        "",
        "Validation mAP (%, observed labels, the smoothed value that selected the epoch: what settings are",
        "chosen on), then test mAP (%, full labels), mean ± std over seeds: the selected epoch (headline),",
        "the last epoch, and the mean of the last five epochs.",
        "",
        "| config | seeds | val | mAP | many | medium | few | last epoch | last-5 mean | few, last-5 |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        cells = [_cell(row[k]) for k in ("val_mAP_smoothed", *METRICS, "last_mAP", "last5_mAP", "last5_mAP_few")]
        lines.append(f"| {row['config']} | {len(row['seeds'])} | " + " | ".join(cells) + " |")
    if any(r["config"] == reference for r in runs):
        lines += [
            "",
            f"Paired differences, {reference} minus the config, seed by seed (validation; test mAP of the",
            "selected epoch; few; last-5), and whether every seed agrees in sign:",
            "",
            "| config | val | agree | test mAP | agree | few | last-5 mAP |",
            "|---|---|---|---|---|---|---|",
        ]
        keys = ("val_mAP_smoothed", "mAP", "mAP_few", "last5_mAP")
        by_val, by_map, by_few, by_last5 = (paired(runs, reference, k) for k in keys)
        for name, diffs in by_map.items():
            lines.append(
                f"| {name} | {by_val[name]} | {_agree(by_val[name])} | {diffs} | {_agree(diffs)} | "
                f"{by_few[name]} | {by_last5[name]} |"
            )
    lines += diagnostics_rows(runs)
    return "\n".join(lines) + "\n"


def write_results(out: Path, command: str, runs: list[dict], reference: str) -> None:
    from comic.files import write_json, write_text

    write_json(out, {"command": command, "summary": summarise(runs), "runs": runs})
    write_text(out.with_suffix(".md"), markdown(runs, command, reference))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/plt")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=list(CONFIGS))
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="docs/results/accuracy.json")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="params overrides (YAML values)")
    parser.add_argument("--label", default="", help="appended to the config names of these runs")
    parser.add_argument("--reference", default="comic", help="config the paired differences are taken against")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per run (another value: other float rounding)"
    )
    args = parser.parse_args()

    from comic.config import load_params, to_dict

    updates = parse_sets(args.set)
    base = to_dict(load_params(args.params))  # read once: edits to params.yaml during the run do not leak in
    data = Path(args.data).resolve()
    out = Path(args.out)
    runs: list[dict] = json.loads(out.read_text())["runs"] if out.is_file() else []
    done = {(r["config"], r["seed"]) for r in runs if r["epochs"] == args.epochs}
    command = "PYTHONPATH=. .venv/bin/python benchmarks/accuracy.py " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in vars(args).items()
        if v not in ("", [])
    )
    with tempfile.TemporaryDirectory(prefix="comic-bench-") as scratch:  # cached features, full-label copy
        full = None
        features: dict[str, str] = {}  # one cache per data folder and trunk, as the embed stage makes it
        jobs = []
        for seed in args.seeds:
            for name in args.configs:
                label = name + args.label
                if (label, seed) in done:
                    continue
                if name.endswith("_full") and full is None:
                    full = full_label_copy(data, Path(scratch) / "full")
                folder = str(full if name.endswith("_full") else data)
                config = {**CONFIGS[name], **updates}
                features_dir = cached_features(base, config, folder, features, scratch)
                jobs.append((label, seed, folder, args.epochs, base, config, features_dir, args.threads))
        with ProcessPoolExecutor(max_workers=args.jobs) as pool:
            for future in as_completed([pool.submit(run_one, job) for job in jobs]):
                runs.append(result := future.result())
                print(
                    f"{result['config']:>24} seed {result['seed']}: test mAP {result['mAP']:.2f} (few "
                    f"{result['mAP_few']:.2f}; last-5 {result['last5_mAP']:.2f}), val {result['val_mAP_smoothed']:.2f}"
                    f" at epoch {result['best_epoch']} ({result['prediction']}), {result['seconds']} s",
                    flush=True,
                )
                write_results(out, command, runs, args.reference)
    if runs:
        write_results(out, command, runs, args.reference)


if __name__ == "__main__":
    main()
