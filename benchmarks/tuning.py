"""Does the search measure what matters, and does it pay off? Two measurements of the tune stage.

    # 1. Rank correlation between a trial's score at L epochs and the final test mAP of the same settings:
    PYTHONPATH=. .venv/bin/python benchmarks/tuning.py correlation --settings 8 --jobs 2 \
        --out docs/results/tune_correlation.json
    # 2. A search (its wall time, trials per hour), then default against tuned COMIC, paired by seed:
    PYTHONPATH=. .venv/bin/python benchmarks/tuning.py search --samples 32 --trial-epochs 15 --grace 7 \
        --seeds 0 1 2 --jobs 2 --out docs/results/tune_search.json
    # 3. The same search over a space centred on the defaults (benchmarks/space_centred.yaml):
    PYTHONPATH=. .venv/bin/python benchmarks/tuning.py search --space benchmarks/space_centred.yaml \
        --samples 32 --trial-epochs 15 --grace 7 --seeds 0 1 2 --jobs 2 --out docs/results/tune_search_centred.json
    # 4. A search in the pretrained regime (frozen EfficientNet-Lite0, features cached, as the cache_features stage):
    PYTHONPATH=. .venv/bin/python benchmarks/tuning.py search --samples 32 --trial-epochs 15 --grace 3 \
        --seeds 0 1 2 --jobs 2 --out docs/results/tune_search_lite0.json --set model.backbone=efficientnet_lite0 \
        model.pretrained=true model.freeze_backbone=true balance.shared_backbone=true model.input_size=128 \
        correction.start_epoch=2

`correlation` draws settings from `tune.space` (seeded), trains each for `train.epochs` in its own
process, and computes, for several trial lengths L, the Spearman correlation between the best smoothed
validation mAP within the first L epochs (what a trial of length L is scored by) and the test mAP of the
full run. `search` runs the stage's search (`comic.tune.run_search`: Ray, the configured searcher and
ASHA) and trains the default and the best settings for every seed (`comic.experiments.run_one`: the
epoch selected on validation, scored once on test); when the search kept its starting point
(`tune.start_from_current`), the best settings are the default and are not trained twice. `--space`
replaces `tune.space` with a YAML file's, validated as params.yaml's is; `--set` overrides params (the
defaults the search starts from and the default it is compared with). Test numbers never feed back into
a setting.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from comic.experiments import Job, cached_features, command_line, mean_std, parse_sets, run_all

LENGTHS = (3, 6, 12, 25)


def spearman(a: list[float], b: list[float]) -> float:
    """Spearman's rank correlation (average ranks for ties)."""

    def ranks(values):
        order = sorted(range(len(values)), key=lambda i: values[i])
        out = [0.0] * len(values)
        i = 0
        while i < len(order):
            j = i
            while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
                j += 1
            for k in range(i, j + 1):
                out[order[k]] = (i + j) / 2
            i = j + 1
        return out

    ra, rb = ranks(a), ranks(b)
    ma, mb = statistics.mean(ra), statistics.mean(rb)
    cov = sum((x - ma) * (y - mb) for x, y in zip(ra, rb, strict=True))
    norm = (sum((x - ma) ** 2 for x in ra) * sum((y - mb) ** 2 for y in rb)) ** 0.5
    return cov / norm if norm else float("nan")


def draw(space: dict, rng: random.Random) -> dict:
    """One sample of `tune.space` (params' SearchDim dicts), as random search would draw it."""
    import math

    sample = {}
    for key, dim in space.items():
        if dim["type"] == "choice":
            sample[key] = rng.choice(dim["values"])
        elif dim["type"] == "loguniform":
            sample[key] = math.exp(rng.uniform(math.log(dim["low"]), math.log(dim["high"])))
        else:
            sample[key] = rng.uniform(dim["low"], dim["high"])
    return sample


def _pool(jobs: list[tuple], workers: int, out: Path, result: dict) -> None:
    """Train `jobs` (comic.experiments.run_one's), appending each run to `result["runs"]` as it finishes."""
    for run in run_all(jobs, workers):
        result["runs"].append(run)
        print(f"{run['config']} seed {run['seed']}: test mAP {run['mAP']:.2f}, val {run['val_mAP_smoothed']:.2f}")
        _write(out, result)


def correlation(args, base: dict) -> None:
    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {"command": args.command, "runs": []}
    rng = random.Random(args.search_seed)
    samples = [draw(base["tune"]["space"], rng) for _ in range(args.settings)]
    done = {r["config"] for r in result["runs"]}
    jobs = [
        Job(f"setting{i}", 0, str(Path(args.data).resolve()), args.epochs, base, sample, args.features, 1)
        for i, sample in enumerate(samples)
        if f"setting{i}" not in done
    ]
    result["space"] = base["tune"]["space"]
    for i, sample in enumerate(samples):
        result.setdefault("settings", {})[f"setting{i}"] = sample
    _pool(jobs, args.jobs, out, result)
    runs = result["runs"]
    table = {}
    for length in (*[L for L in LENGTHS if L < args.epochs], args.epochs):
        scores = [max(row["val/mAP_smoothed"] for row in r["epochs_log"][:length]) for r in runs]
        table[length] = round(spearman(scores, [r["mAP"] for r in runs]), 3)
    result["spearman_vs_test_by_trial_length"] = table
    _write(out, result)
    print(f"Spearman(trial score at L epochs, final test mAP) over {len(runs)} settings: {table}")


def search(args, base: dict) -> None:
    import ray

    from comic.config import Params, flatten, from_dict, override
    from comic.tune import init_for_search, run_search

    out = Path(args.out)
    result = json.loads(out.read_text()) if out.is_file() else {"command": args.command, "runs": []}
    if "search" not in result:
        params = override(
            from_dict(Params, base),
            {
                "tune.num_samples": args.samples,
                "tune.searcher": args.searcher,
                "tune.seed": args.search_seed,
                **({"tune.epochs": args.trial_epochs} if args.trial_epochs is not None else {}),
                **({"tune.grace_period": args.grace} if args.grace is not None else {}),
            },
        )
        init_for_search(params)
        started = time.time()
        storage = tempfile.mkdtemp(prefix="comic-tune-")
        try:
            found = run_search(params, args.data, storage_path=storage, name="bench", features_dir=args.features)
        finally:
            ray.shutdown()
            shutil.rmtree(storage, ignore_errors=True)
        seconds = time.time() - started
        result["search"] = {
            "space": base["tune"]["space"],
            "seconds": round(seconds, 1),
            "trials": len(found.trials),
            "trials_per_hour": round(3600 * len(found.trials) / seconds, 1),
            "trial_epochs_run": sum(t["epochs"] for t in found.trials),
            "best": found.best_sample,
            "best_val_mAP_smoothed": found.best_score,
            "trials_table": found.trials,
        }
        _write(out, result)
        print(f"search: {seconds:.0f} s for {len(found.trials)} trials; best {found.best_sample}")
    best = result["search"]["best"]
    current = flatten(base)
    # the search kept the starting point (tune.start_from_current): "tuned" is the default, run once
    configs = (
        (("default", {}),) if all(current[k] == v for k, v in best.items()) else (("default", {}), ("tuned", best))
    )
    done = {(r["config"], r["seed"]) for r in result["runs"]}
    data = str(Path(args.data).resolve())
    jobs = [
        Job(name, seed, data, args.epochs, base, updates, args.features, 1)
        for seed in args.seeds
        for name, updates in configs
        if (name, seed) not in done
    ]
    _pool(jobs, args.jobs, out, result)


def _write(out: Path, result: dict) -> None:
    from comic.files import write_json

    runs = result.get("runs", [])
    for name in dict.fromkeys(r["config"] for r in runs):
        mine = [r for r in runs if r["config"] == name]
        result.setdefault("summary", {})[name] = {
            key: mean_std([r[key] for r in mine])  # the sample std, as accuracy.py's tables
            for key in ("mAP", "mAP_few", "last5_mAP")
        }
    by_seed = {(r["config"], r["seed"]): r for r in runs}
    result["paired_tuned_minus_default"] = {
        seed: round(by_seed[("tuned", seed)]["mAP"] - by_seed[("default", seed)]["mAP"], 2)
        for (name, seed) in by_seed
        if name == "tuned" and ("default", seed) in by_seed
    }
    write_json(out, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["correlation", "search"])
    parser.add_argument("--data", default="data/plt")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--space", default=None, help="YAML file of a tune.space that replaces the params' one")
    parser.add_argument("--epochs", type=int, default=None, help="final training length (default: train.epochs)")
    parser.add_argument("--settings", type=int, default=8, help="correlation: settings drawn from tune.space")
    parser.add_argument("--samples", type=int, default=32, help="search: trials")
    parser.add_argument("--trial-epochs", type=int, help="search: epochs per trial (ASHA max_t; default: tune.epochs)")
    parser.add_argument(
        "--grace", type=int, help="search: ASHA grace period (> correction.start_epoch; default: tune.grace_period)"
    )
    parser.add_argument("--searcher", default="tpe", choices=["tpe", "random"])
    parser.add_argument("--search-seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", required=True)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="params overrides (YAML values)")
    args = parser.parse_args()
    import yaml

    from comic.config import check_search_space, load_params, override, to_dict

    params = load_params(args.params)
    if args.set:
        params = override(params, parse_sets(args.set))
    if args.space:  # validated as params.yaml's own space would be
        params = override(params, {"tune.space": yaml.safe_load(Path(args.space).read_text())})
        check_search_space(params)
    base = to_dict(params)
    args.epochs = args.epochs or base["train"]["epochs"]
    args.command = command_line(f"benchmarks/tuning.py {args.mode}", vars(args), skip=("mode", "command", "features"))
    with tempfile.TemporaryDirectory(prefix="comic-bench-") as scratch:  # the cached features of a frozen trunk
        args.features = cached_features(base, {}, str(Path(args.data).resolve()), {}, scratch)
        (correlation if args.mode == "correlation" else search)(args, base)


if __name__ == "__main__":
    main()
