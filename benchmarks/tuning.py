"""Default against tuned COMIC: one Ray Tune search on the validation split, then both trained on 3 seeds.

    PYTHONPATH=. .venv/bin/python benchmarks/tuning.py --data data/plt --samples 16 --tune-epochs 6 \
        --epochs 25 --seeds 0 1 2 --out docs/results/tune.json

The search is the tune stage's (`comic.tune.run_search`: ASHA on validation mAP over `tune.space`) with
the sample count and trial length given here; its wall time and trials per hour are recorded. Then COMIC
with the default params and with the search's best params trains for `--epochs` on each seed
(`benchmarks/accuracy.py`'s run: epoch chosen on validation, scored once on test). The test split
never feeds back into a choice. An interrupted run resumes from the output file.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from accuracy import run_one

METRICS = ("mAP", "mAP_few", "last_mAP", "last_mAP_few")


def search(params, data: Path, samples: int, epochs: int, grace: int) -> dict:
    import ray

    from comic.config import override
    from comic.tune import init_for_search, run_search

    params = override(params, {"tune.num_samples": samples, "tune.epochs": epochs, "tune.grace_period": grace})
    init_for_search(params)
    started = time.time()
    try:
        with tempfile.TemporaryDirectory() as storage:
            result = run_search(params, data, storage_path=storage, name="bench-tune")
    finally:
        ray.shutdown()
    seconds = time.time() - started
    return {
        "samples": samples,
        "trial_epochs": epochs,
        "grace_period": grace,
        "wall_s": round(seconds, 1),
        "trials_per_hour": round(len(result.trials) * 3600 / seconds, 1),
        "trial_epochs_run": sum(t["epochs"] for t in result.trials),
        "failed": sum(t["status"] != "ok" for t in result.trials),
        "best_val_mAP": result.best_val_map,
        "best": {k: float(v) for k, v in result.best_sample.items()},
    }


def summarise(runs: list[dict]) -> dict:
    table = {}
    for variant in ("default", "tuned"):
        mine = [r for r in runs if r["variant"] == variant]
        if mine:
            table[variant] = {
                k: (statistics.mean(r[k] for r in mine), statistics.stdev(r[k] for r in mine) if len(mine) > 1 else 0.0)
                for k in METRICS
            } | {"seeds": len(mine)}
    return table


def markdown(result: dict) -> str:
    found = result["search"]
    lines = [
        f"Command: `{result['command']}`",
        "",
        f"Search: {found['samples']} trials × ≤ {found['trial_epochs']} epochs (ASHA, grace {found['grace_period']}), "
        f"{found['trial_epochs_run']} trial-epochs, {found['wall_s']} s wall, {found['trials_per_hour']} trials/hour, "
        f"{found['failed']} failed; best val mAP {found['best_val_mAP']:.2f}.",
        "",
        "| COMIC | seeds | test mAP | few | mAP, last epoch | few, last epoch |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for variant, row in result["summary"].items():
        cells = " | ".join(f"{row[k][0]:.2f} ± {row[k][1]:.2f}" for k in METRICS)
        lines.append(f"| {variant} | {row['seeds']} | {cells} |")
    lines += ["", "Best params: " + ", ".join(f"`{k}` = {v:.4g}" for k, v in found["best"].items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/plt")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--tune-epochs", type=int, default=6)
    parser.add_argument("--grace", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="docs/results/tune.json")
    args = parser.parse_args()

    from comic.config import load_params, override, to_dict

    params = load_params(args.params)
    data = Path(args.data).resolve()
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    command = (
        f"PYTHONPATH=. .venv/bin/python benchmarks/tuning.py --data {args.data} --samples {args.samples} "
        f"--tune-epochs {args.tune_epochs} --grace {args.grace} --epochs {args.epochs} "
        f"--seeds {' '.join(map(str, args.seeds))} --out {args.out}"
    )
    result = json.loads(out.read_text()) if out.is_file() else {"command": command, "runs": []}
    if "search" not in result:
        result["search"] = search(params, data, args.samples, args.tune_epochs, args.grace)
        print(f"search: {result['search']}", flush=True)
        _write(out, result)
    bases = {"default": to_dict(params), "tuned": to_dict(override(params, result["search"]["best"]))}
    done = {(r["variant"], r["seed"]) for r in result["runs"]}
    jobs = {
        (variant, seed): ("comic", seed, str(data), args.epochs, base, {})
        for seed in args.seeds
        for variant, base in bases.items()
        if (variant, seed) not in done
    }
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        futures = {pool.submit(run_one, job): key for key, job in jobs.items()}
        for future in as_completed(futures):
            variant, seed = futures[future]
            run = {"variant": variant, **future.result()}
            run.pop("correction_audit")
            result["runs"].append(run)
            print(f"{variant} seed {seed}: test mAP {run['mAP']:.2f} (few {run['mAP_few']:.2f})", flush=True)
            _write(out, result)


def _write(out: Path, result: dict) -> None:
    result["summary"] = summarise(result["runs"])
    staging = out.with_name(f".{out.name}.tmp")
    staging.write_text(json.dumps(result, indent=1) + "\n")
    staging.replace(out)
    if result["runs"]:
        out.with_suffix(".md").write_text(markdown(result))


if __name__ == "__main__":
    main()
