"""Does choosing the prediction rule on validation (`balance.prediction: auto`) beat the paper's fixed
balanced rule? Replayed on finished runs of a result file (the rule does not change training), so each
seed is compared on the same weights:

    PYTHONPATH=. .venv/bin/python benchmarks/rule_choice.py docs/results/rule_from_scratch.json --config comic \
        --out docs/results/rule_choice_from_scratch.json

For each seed: the epoch, rule, smoothed validation mAP and test mAP that selection with `balanced` alone
and with auto's candidates would choose (`comic.experiments.reselect`), and auto minus balanced.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from comic.experiments import agree, command_line, mean_std, read_runs, reselect
from comic.files import write_json
from comic.training import selection_candidates


def compare(runs: list[dict], config: str, window: int, candidates: list[str] | None = None) -> dict:
    """Per seed, selection among `candidates` (default: auto's) against selection with `balanced` alone."""
    from comic.config import Params, override

    auto = candidates or selection_candidates(override(Params(), {"balance.prediction": "auto"}))
    seeds = []
    for run in sorted((r for r in runs if r["config"] == config), key=lambda r: r["seed"]):
        if not run.get("epoch_diagnosis"):
            raise ValueError(f"{config} seed {run['seed']}: the run has no epoch_diagnosis; rerun it")
        fixed, chosen = reselect(run, ["balanced"], window), reselect(run, auto, window)
        seeds.append({"seed": run["seed"], "balanced": fixed, "auto": chosen,
                      "val_difference": round(chosen["val"] - fixed["val"], 2),
                      "test_difference": round(chosen["test"] - fixed["test"], 2)})  # fmt: skip
    tests = [s["test_difference"] for s in seeds]
    return {
        "config": config,
        "candidates": auto,
        "window": window,
        "seeds": seeds,
        "test_difference_mean_std": mean_std(tests),
        "test_agree": agree(tests),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", type=Path)
    parser.add_argument("--config", default="comic")
    parser.add_argument("--window", type=int, default=3, help="train.select_window of the runs")
    parser.add_argument("--candidates", nargs="+", default=None, help="rules to choose among (default: auto's)")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    result = {"command": command_line("benchmarks/rule_choice.py", vars(args), skip=("results",)),
              **compare(read_runs(args.results), args.config, args.window, args.candidates)}  # fmt: skip
    write_json(args.out, result)
    for row in result["seeds"]:
        b, a = row["balanced"], row["auto"]
        print(
            f"seed {row['seed']}: balanced epoch {b['epoch']} val {b['val']:.2f} test {b['test']:.2f} | chosen "
            f"{a['rule']} epoch {a['epoch']} val {a['val']:.2f} test {a['test']:.2f} | {row['test_difference']:+.2f}"
        )
    mean, std = result["test_difference_mean_std"]
    chosen = " / ".join(result["candidates"])
    print(f"{chosen} minus balanced, test: {mean:+.2f} ± {std:.2f}, every seed the same sign: {result['test_agree']}")


if __name__ == "__main__":
    main()
