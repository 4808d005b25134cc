"""The multi-seed experiment harness: train a config on several seeds, pair the seeds, write the tables.

Each run (`run_one`) trains in one process (the training math is the same as under Ray DDP,
tests/test_ddp.py), selects its epoch and prediction rule on the validation split (observed labels only,
the trailing mean of `train.select_window` epochs) and is scored on the test split with the full labels
at three points: the selected epoch (`mAP`, the headline), the last epoch (`last_mAP`) and the mean over
the last `LAST` epochs (`last5_mAP`). The test split never feeds back into any setting. A result file
(`write_results`) holds the command, a summary per config (mean ± sample std over seeds) and every run;
its Markdown twin holds the tables. benchmarks/accuracy.py, tuning.py and options_loo.py call this module.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import tempfile
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path
from typing import Any, NamedTuple

METRICS = ("mAP", "mAP_many", "mAP_medium", "mAP_few")
LAST = 5  # epochs averaged by last5_*


class Job(NamedTuple):
    """One training run of `run_one`: a config (its overrides of `base`) on one seed."""

    name: str  # the config's name in the result file
    seed: int
    data_dir: str
    epochs: int
    base: dict  # the whole params as a nested dict (read once, so edits to params.yaml do not leak in)
    updates: dict  # dotted overrides of `base`
    features_dir: str | None  # cached trunk features of a frozen backbone (`cached_features`), or None
    threads: int  # torch threads (another value: other float rounding)


# ------------------------------------------------------------------------------------------ running
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
    """The trunk features of a frozen backbone for `data_dir` (computed once, like the cache_features stage, into a
    folder under `scratch` named by the data folder, trunk and input; `made` remembers them, and a folder
    that a run before left in `scratch` is reused: training refuses one of another trunk), or None."""
    import hashlib

    from comic.config import Params, from_dict, override
    from comic.features import cache_features
    from comic.models import run_input_spec

    params = override(from_dict(Params, base), updates)
    if not params.model.freeze_backbone:
        return None
    key = json.dumps([data_dir, params.model.backbone, params.model.pretrained, params.model.pretrained_path,
                      params.model.input_size, params.data.image_size])  # fmt: skip
    if key not in made:
        folder = Path(scratch) / f"features-{hashlib.sha256(key.encode()).hexdigest()[:16]}"
        if not (folder / "meta.json").is_file():
            cache_features(params.model, run_input_spec(params), data_dir, folder)
        made[key] = str(folder)
    return made[key]


def data_folder(base: dict, updates: dict, data_dir: Path, scratch: str) -> Path:
    """Where a config trains: `data_dir`, or, when it sets `data.missing_rate` to 0 (every label observed),
    a copy of `data_dir` with the hidden labels restored (made once under `scratch`)."""
    rate = updates.get("data.missing_rate", base["data"]["missing_rate"])
    if rate == base["data"]["missing_rate"]:
        return data_dir
    if rate != 0:
        raise ValueError(
            f"data.missing_rate {rate}: the data folder {data_dir} hides {base['data']['missing_rate']} of the "
            "labels; the harness can only restore them all (0). Rebuild the data with that rate instead"
        )
    import hashlib

    full = Path(scratch) / f"full-{hashlib.sha256(str(data_dir).encode()).hexdigest()[:16]}"
    return full if (full / "classes.json").is_file() else full_label_copy(data_dir, full)


def run_one(job: Job | tuple) -> dict:
    """Train one config and seed; score the selected, last and last-five epochs on test."""
    name, seed, data_dir, epochs, base, updates, features_dir, threads = job
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    from comic import checkpoint
    from comic.config import Params, from_dict, override
    from comic.data.store import load_classes
    from comic.evaluation import test_report
    from comic.models import build_model
    from comic.training import LocalReporter, train

    torch.set_num_threads(threads)
    params = override(from_dict(Params, base), {**updates, "seed": seed, "train.epochs": epochs})

    class KeepLast(LocalReporter):
        """Also keeps the model weights of the last `LAST` epochs and each epoch's `epoch_diagnosis`."""

        def __init__(self, root: Path):
            super().__init__(root)
            self.weights: dict[int, dict] = {}
            self.curve: list[dict] = []

        def report(self, metrics, checkpoint_dir):
            super().report(metrics, checkpoint_dir)
            weights = checkpoint.evaluated_weights(checkpoint.load(Path(self.root) / "checkpoint")[0])
            if metrics["epoch"] >= epochs - LAST:
                self.weights[metrics["epoch"]] = weights
            self.curve.append(epoch_diagnosis(params, weights, data_dir, features_dir))

    started = time.time()
    with tempfile.TemporaryDirectory() as folder:
        reporter = KeepLast(Path(folder))
        train(params, data_dir, reporter, verbose=False, features_dir=features_dir)
        state, best = checkpoint.load(Path(folder) / "checkpoint")
    progress = state[checkpoint.PROGRESS]
    classes = load_classes(data_dir)

    def score(weights, prediction: str, rules: bool = False) -> dict:
        model = build_model(params.model, params.balance, num_classes=len(classes["names"]), load_weights=False)
        model.load_state_dict(weights)
        if hasattr(model, "prediction"):
            model.prediction = prediction
        test = split_predictions(model, data_dir, "test", features_dir, params, rules)
        result = dict(test_report(test["labels_full"], test["scores"], classes, params.metrics))
        if rules:
            result["rules"] = {
                key.removeprefix("rule/"): test_report(test["labels_full"], test[key], classes, params.metrics)["mAP"]
                for key in test
                if key.startswith("rule/")
            }
        return result

    rule = progress["best_rule"]
    selected = score(best, rule, rules=True)
    last = {e: score(w, rule) for e, w in sorted(reporter.weights.items())}
    history = reporter.history
    return {
        "config": name,
        "seed": seed,
        "epochs": epochs,
        "seconds": round(time.time() - started, 1),
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),  # AVX2 / AVX512 kernels round differently
        "best_epoch": progress["best_epoch"],
        "prediction": rule,
        "val_mAP_smoothed": progress["best_score"],
        **{k: selected[k] for k in METRICS},
        **{f"last_{k}": last[epochs - 1][k] for k in METRICS},
        **{f"last5_{k}": statistics.mean(r[k] for r in last.values()) for k in METRICS},
        "test_rules": selected["rules"],
        "val_curve": [row["val/mAP"] for row in history],
        "epoch_diagnosis": reporter.curve,
        "epochs_log": [
            {k: v for k, v in row.items() if k.split("/")[0] in ("epoch", "correction", "diagnostics", "val")}
            for row in history
        ],
    }


def split_predictions(model, data_dir: str, split: str, features_dir: str | None, params, rules: bool) -> dict:
    """`predict_scores` on a split: on the cached trunk features when the trunk is frozen (what the run
    validated on, without a pass of the trunk per scoring), else on the images."""
    import torch
    from torch.utils.data import DataLoader

    from comic.evaluation import predict_scores, predict_split
    from comic.features import FeatureDataset
    from comic.models import run_input_spec

    if features_dir is None:
        return predict_split(model, data_dir, split, spec=run_input_spec(params), rules=rules)
    loader = DataLoader(FeatureDataset(features_dir, data_dir, split), batch_size=256)
    return predict_scores(model, loader, device=torch.device("cpu"), amp=False, rules=rules)


def epoch_diagnosis(params, weights: dict, data_dir: str, features_dir: str | None) -> dict:
    """One epoch's diagnosis: test mAP (full labels) and the hidden positives' mAP on the training split
    (`comic.metrics.hidden_positive_map`), for every prediction rule. Test is scored to see where a run
    peaks and what another selection would have scored, never to choose anything."""
    from comic.data.store import load_classes
    from comic.metrics import hidden_positive_map, per_class_average_precision, percent_mean
    from comic.models import build_model

    model = build_model(params.model, params.balance, num_classes=len(load_classes(data_dir)["names"]),
                        load_weights=False)  # fmt: skip
    model.load_state_dict(weights)
    point: dict[str, dict[str, float]] = {"test": {}, "hidden": {}}
    for split in ("test", "train"):
        out = split_predictions(model, data_dir, split, features_dir, params, rules=True)
        for key in (k for k in out if k.startswith("rule/")):
            rule = key.removeprefix("rule/")
            if split == "test":
                point["test"][rule] = percent_mean(per_class_average_precision(out["labels_full"], out[key]))
            else:
                point["hidden"][rule] = hidden_positive_map(out["labels_observed"], out["labels_full"], out[key])
    return point


def run_all(jobs: Iterable[Job], workers: int) -> Iterator[dict]:
    """`run_one` over `jobs` in `workers` processes; yields each run as it finishes."""
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for future in as_completed([pool.submit(run_one, job) for job in jobs]):
            yield future.result()


def parse_sets(items: list[str]) -> dict[str, Any]:
    """`--set KEY=VALUE ...` as params overrides, each value read as YAML (true, 0.1, null, a string)."""
    import yaml

    for item in items:
        if "=" not in item:
            raise ValueError(f"--set {item}: expected KEY=VALUE")
    return {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in items)}


def command_line(script: str, args: dict[str, Any], skip: Iterable[str] = ()) -> str:
    """The command that reruns a benchmark, as its result file records it (empty options left out)."""
    return f"PYTHONPATH=. .venv/bin/python {script} " + " ".join(
        f"--{k.replace('_', '-')} {' '.join(map(str, v)) if isinstance(v, list) else v}"
        for k, v in args.items()
        if k not in skip and v not in ("", [], None)
    )


# ------------------------------------------------------------------------------------------ statistics
def mean_std(values: list[float | None]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1; 0 for one value) of the values that are not None or NaN."""
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return (math.nan, math.nan)
    return statistics.mean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarise(runs: list[dict]) -> list[dict]:
    """Per config, in order of first appearance: its seeds and mean ± std of every score."""
    rows = []
    for name in dict.fromkeys(r["config"] for r in runs):
        mine = sorted((r for r in runs if r["config"] == name), key=lambda r: r["seed"])
        row = {"config": name, "seeds": [r["seed"] for r in mine]}
        for key in ("val_mAP_smoothed", *METRICS, *(f"{p}_{k}" for p in ("last", "last5") for k in METRICS)):
            row[key] = mean_std([r[key] for r in mine])
        rows.append(row)
    return rows


def paired(runs: list[dict], reference: str, key: str = "mAP") -> dict[str, list[float]]:
    """Per config, `key` of `reference` minus the config's, seed by seed (seeds both ran), rounded to 0.01."""
    ref = {r["seed"]: r[key] for r in runs if r["config"] == reference}
    out: dict[str, list[float]] = {}
    for name in dict.fromkeys(r["config"] for r in runs):
        if name == reference:
            continue
        mine = {r["seed"]: r[key] for r in runs if r["config"] == name}
        out[name] = [round(ref[s] - mine[s], 2) for s in sorted(set(ref) & set(mine))]
    return out


def agree(diffs: list[float]) -> str:
    """ "yes" when every paired difference has the same sign (none zero), else "no"."""
    return "yes" if diffs and (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)) else "no"


def cell(value: tuple[float, float]) -> str:
    """`mean ± std` with two decimals, or "-" when nothing was measured."""
    return "-" if math.isnan(value[0]) else f"{value[0]:.2f} ± {value[1]:.2f}"


def reselect(run: dict, rules: list[str], window: int) -> dict:
    """What selection among `rules` would have chosen in a finished run: the epoch and rule, replaying the
    training loop's selection on the run's validation mAP by rule, and that choice's test mAP from the
    run's `epoch_diagnosis`. The prediction rule does not change training, so one run answers for every
    rule set."""
    from comic.training import smoothed_best

    log = run["epochs_log"]
    best_score, best_epoch, best_rule = -1.0, -1, rules[0]
    for epoch in range(len(log)):
        score, rule = smoothed_best(log[: epoch + 1], rules, window)
        if score > best_score:
            best_score, best_epoch, best_rule = score, epoch, rule
    test = run["epoch_diagnosis"][best_epoch]["test"][best_rule]
    return {"epoch": best_epoch, "rule": best_rule, "val": best_score, "test": test}


# ------------------------------------------------------------------------------------------ tables
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
        rules = " / ".join(mean(f"val/rule/{r}/mAP") for r in ("head", "balanced", "tail", "unfused", "mean"))
        lines.append(
            f"| {name} | {shares} | {mean('diagnostics/recalled/net_grad')} | "
            f"{min(precision):.2f} | {right:.0f} / {wrong:.0f} | {rules} |"
            if precision
            else f"| {name} | {shares} | - | - | - | {rules} |"
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
    """The result file's tables: scores per config, paired differences against `reference`, diagnostics."""
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
        cells = [cell(row[k]) for k in ("val_mAP_smoothed", *METRICS, "last_mAP", "last5_mAP", "last5_mAP_few")]
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
                f"| {name} | {by_val[name]} | {agree(by_val[name])} | {diffs} | {agree(diffs)} | "
                f"{by_few[name]} | {by_last5[name]} |"
            )
    lines += diagnostics_rows(runs)
    return "\n".join(lines) + "\n"


def read_runs(out: Path) -> list[dict]:
    """The runs a result file holds (none when it does not exist yet): an interrupted benchmark resumes."""
    return json.loads(out.read_text())["runs"] if out.is_file() else []


def write_results(out: Path, command: str, runs: list[dict], reference: str) -> None:
    """`out` (JSON: command, summary, runs) and its Markdown tables beside it (`.md`)."""
    from comic.files import write_json, write_text

    write_json(out, {"command": command, "summary": summarise(runs), "runs": runs})
    write_text(out.with_suffix(".md"), markdown(runs, command, reference))
