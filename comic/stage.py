"""What every DVC stage script (`pipelines/*.py`) shares: its command line and the way it fails.

A stage's command carries every path as a required `--option`; `--params` names the params file. A fault
the user can fix (a bad value, a missing file, a server that is down) ends the stage with one line that
names it, not with a traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

# OSError: a missing or unreadable file, a full disk, an S3 endpoint that does not answer.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, OSError, FloatingPointError)

# Every path option a stage takes, with its meaning (dvc.yaml's `cmd` lines pass them).
PATHS = {
    "in_": "input dataset folder (the previous data stage's output)",
    "out": "the stage's output (a dataset folder: {train,val,test}.parquet and classes.json)",
    "tile_bank": "tile bank (.npz) of the embedded benchmark",
    "images": "the image store: every image once, in tar shards (build_data's second output)",
    "data": "dataset folder: classes.json and the split files",
    "features": "cached trunk features of a frozen backbone (the cache_features stage's folder)",
    "model": "the model file (models/model.pt)",
    "run": "the train stage's run record: MLflow run and logged model (JSON)",
    "history": "per-epoch training history (CSV, a DVC plot)",
    "storage": "Ray Train / Tune storage path (a local folder or s3://...)",
    "tuned": "the overrides from the search that apply_tuned resolved (reports/tune/applied.yaml)",
    "best": "the best trial's values (YAML, dotted keys)",
    "trials": "every trial with its values and validation score (CSV)",
    "metrics": "the test metrics (metrics.json)",
    "plots": "folder of the plot data and images",
    "report": "the registry decision and its reasons (JSON)",
}


def arguments(doc: str | None, *names: str) -> argparse.Namespace:
    """Parse the stage's required path options `names` (keys of `PATHS`; `in_` is `--in`) and `--params`."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name in names:
        parser.add_argument(f"--{name.rstrip('_').replace('_', '-')}", dest=name, required=True, help=PATHS[name])
    parser.add_argument("--params", default="params.yaml", help="params file (default: params.yaml)")
    return parser.parse_args()


def run(main: Callable[[], None], *errors: type[BaseException]) -> None:
    """Call `main`; a user-fixable error (`USER_ERRORS` and `errors`) exits 1 with its message alone. Under
    DVC, first claim the workspace for this run (`comic.workspace`: one DVC run at a time)."""
    from comic.workspace import WorkspaceBusy, claim

    name = sys.argv[0].rsplit("/", 1)[-1].removesuffix(".py")
    try:
        claim()
        main()
    except (*USER_ERRORS, WorkspaceBusy, *errors) as err:
        raise SystemExit(f"{name}: {err}") from None
