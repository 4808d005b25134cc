"""Accuracy benchmark: COMIC, its ablations and the baselines on the same data, several seeds, paired.

    PYTHONPATH=. .venv/bin/python benchmarks/accuracy.py --data data/plt --epochs 25 --seeds 0 1 2 3 4 \
        --configs comic comic_no_rlc hill asl --jobs 2 --out docs/results/accuracy.json

A config is a recipe, `recipes/<name>.yaml` (docs/recipes.md), applied over `--params`; `--recipe` applies
one more under every config (e.g. `--recipe pretrained`: each row in the pretrained regime). Each run
trains in one process and is scored as `comic.experiments.run_one` says: the epoch selected on validation,
the last epoch and the mean of the last five, on test. Recipes that set `data.missing_rate: 0` (the `_full`
rows) train on a copy of the data with every label observed. The test split never feeds back into any
setting. `--set` overrides params for every run (e.g. to measure an option on validation); `--label`
appends a name to the configs so that such runs sit apart in the table; each `--variant LABEL KEY=VALUE...`
adds one more row per config with those overrides, named with LABEL appended (one process pool and one
feature cache for all of them). Finished runs are kept in `--out`
and not repeated: an interrupted benchmark resumes.

Float rounding differs between machines (their vector units pick other kernels); to see what that does
to a table on one machine, run it again with the kernels of an AVX2-only CPU and compare seed by seed:

    ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2 ONEDNN_MAX_CPU_ISA=AVX2 PYTHONPATH=. \
        .venv/bin/python benchmarks/accuracy.py ... --out docs/results/accuracy_avx2.json
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from comic import recipes
from comic.experiments import (
    Job,
    cached_features,
    command_line,
    data_folder,
    parse_sets,
    read_runs,
    run_all,
    write_results,
)

# The rows of docs/results/accuracy.json, run when --configs is not given.
TABLE = (
    "comic", "comic_paper", "comic_shared_trunk", "comic_no_mask", "comic_no_rlc", "comic_ht_factor",
    "comic_no_ht_factor", "comic_no_htb", "bce", "focal", "asl", "db_focal_cas", "hill", "splc", "asl_cas",
    "comic_full", "bce_full", "asl_full", "hill_full",
)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/plt")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--epochs", type=int, default=25)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--configs", nargs="+", default=list(TABLE), choices=recipes.names(), metavar="RECIPE",
                        help=f"recipes to run, each a row (default: {' '.join(TABLE)})")  # fmt: skip
    parser.add_argument("--recipe", default="", help="a recipe applied under every config (e.g. pretrained)")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", default="docs/results/accuracy.json")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="params overrides (YAML values)")
    parser.add_argument("--label", default="", help="appended to the config names of these runs")
    parser.add_argument("--cache", default=None, help="keeps cached trunk features and full-label copies between "
                        "runs of this script; delete it when the data changes (default: temporary)")  # fmt: skip
    parser.add_argument("--variant", nargs="+", action="append", default=[], metavar="LABEL KEY=VALUE",
                        help="one more row per config: its label, then its overrides (repeatable)")  # fmt: skip
    parser.add_argument("--reference", default="comic", help="config the paired differences are taken against")
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads per run (another value: other float rounding)"
    )
    args = parser.parse_args()

    from comic.config import load_params, override, to_dict

    params = load_params(args.params)
    updates = parse_sets(args.set)
    under = recipes.load(args.recipe) if args.recipe else {}
    configs = {name + args.label: {**under, **recipes.load(name), **updates} for name in args.configs}
    for label, *sets in args.variant:
        configs |= {f"{name}{args.label}{label}": {**under, **recipes.load(name), **updates, **parse_sets(sets)}
                    for name in args.configs}  # fmt: skip
    for name in args.configs:  # a bad recipe, --set or --variant fails now, not in a worker an hour in
        recipes.apply(params, *filter(None, (args.recipe, name)))
    for config in configs.values():
        override(params, config)
    base = to_dict(params)  # read once: edits to params.yaml during the run do not leak in
    data = Path(args.data).resolve()
    out = Path(args.out)
    runs = read_runs(out)
    done = {(r["config"], r["seed"]) for r in runs if r["epochs"] == args.epochs}
    command = command_line("benchmarks/accuracy.py", vars(args), skip=("variant", "cache"))
    command += "".join(f" --variant {' '.join(variant)}" for variant in args.variant)
    with tempfile.TemporaryDirectory(prefix="comic-bench-") as temporary:  # cached features, full-label copy
        scratch = args.cache or temporary
        features: dict[str, str] = {}  # one cache per data folder and trunk, as the cache_features stage makes it
        jobs = []
        for seed in args.seeds:
            for name, config in configs.items():
                if (name, seed) in done:
                    continue
                folder = str(data_folder(base, config, data, scratch))
                features_dir = cached_features(base, config, folder, features, scratch)
                jobs.append(Job(name, seed, folder, args.epochs, base, config, features_dir, args.threads))
        for result in run_all(jobs, args.jobs):
            runs.append(result)
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
