"""Which of a search's choices carry its gain: the best trial, with one choice set back to the default at a time.

    PYTHONPATH=. .venv/bin/python benchmarks/options_loo.py --search docs/results/tune_search_lite0_options.json \
        --out docs/results/tune_options_loo_lite0.json

Reads the search's result (`benchmarks/tuning.py search`): its best trial and the `--set` recipe it ran
under. Each `choice` dimension whose best value is not the default is one group, and every numeric dimension
that moved is one more group (`numbers`). Then `benchmarks/accuracy.py` trains the best trial
(`comic_tuned`) and, per group, the best trial with that group back at its defaults
(`comic_tuned_<group>`), on the same seeds; each run selects its epoch on validation and is scored once on
test, and the table's paired differences are `comic_tuned` minus each row. Finished runs are kept in
`--out` and not repeated.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import subprocess
import sys
from pathlib import Path

from comic.config import flatten, load_params, override
from comic.experiments import parse_sets, write_results


def recipe(command: str) -> list[str]:
    """The `--set KEY=VALUE ...` overrides a recorded benchmark command ran under."""
    words = shlex.split(command)
    if "--set" not in words:
        return []
    after = words[words.index("--set") + 1 :]
    return list(itertools.takewhile(lambda word: not word.startswith("--"), after))


def assignment(key: str, value) -> str:
    """`KEY=VALUE` as accuracy.py's --set reads it back (YAML): null, true, 0.1, or the string."""
    return f"{key}={value if isinstance(value, str) else json.dumps(value)}"


def groups(search: dict, defaults: dict) -> dict[str, dict]:
    """Group name -> the default values that undo it."""
    moved = {key: value for key, value in search["best"].items() if value != defaults[key]}
    found = {key.rsplit(".", 1)[1]: {key: defaults[key]} for key in moved if search["space"][key]["type"] == "choice"}
    numbers = {key: defaults[key] for key in moved if search["space"][key]["type"] != "choice"}
    return {**found, **({"numbers": numbers} if numbers else {})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--search", required=True, help="result JSON of benchmarks/tuning.py search")
    parser.add_argument("--data", default="data/plt")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    result = json.loads(Path(args.search).read_text())
    search = result["search"]
    sets = recipe(result["command"])
    defaults = flatten(override(load_params(args.params), parse_sets(sets)))  # what the search started from
    best = [assignment(key, value) for key, value in search["best"].items()]
    for label, undo in {"": {}, **groups(search, defaults)}.items():
        reverted = [assignment(key, value) for key, value in undo.items()]
        command = [
            sys.executable, "benchmarks/accuracy.py", "--data", args.data, "--params", args.params,
            "--epochs", str(args.epochs), "--seeds", *map(str, args.seeds), "--configs", "comic",
            "--jobs", str(args.jobs), "--out", args.out, "--reference", "comic_tuned",
            "--label", f"_tuned{'_' + label if label else ''}", "--set", *sets, *best, *reverted,
        ]  # fmt: skip
        print(f"options_loo: {label or 'the best trial'}: {' '.join(reverted) or 'as tuned'}", flush=True)
        subprocess.run(command, check=True)
    # Each accuracy.py call recorded its own command, which reruns one group: the file names this script's.
    out = Path(args.out)
    write_results(out, this_command(args), json.loads(out.read_text())["runs"], "comic_tuned")


def this_command(args: argparse.Namespace) -> str:
    return "PYTHONPATH=. .venv/bin/python benchmarks/options_loo.py " + " ".join(
        f"--{key} {' '.join(map(str, value)) if isinstance(value, list) else value}"
        for key, value in vars(args).items()
    )


if __name__ == "__main__":
    main()
