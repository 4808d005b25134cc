"""Environment defaults of every comic process, in one place: each stops a network call or log noise.

`comic/__init__.py` applies them (a value the user exported wins), so stages, Ray workers, the CLI and
tests start alike. DVC's own analytics are off in `.dvc/config` (`core.analytics = false`).
"""

from __future__ import annotations

import logging
import os
import sys

QUIET = {
    "RAY_USAGE_STATS_ENABLED": "0",  # Ray's usage report
    # Ray Train sends a worker's print() through its logger and, when MLflow has wrapped stdout, to
    # stdout as well: every progress line twice.
    "RAY_TRAIN_ENABLE_PRINT_PATCH": "0",
    # Tune's newer console output prints its experiment box and paths even at verbose=0; the classic
    # one is silent there, and comic's TrialLines callback prints one line per trial.
    "RAY_AIR_NEW_OUTPUT": "0",
    # Keeping one checkpoint per trial (comic.tune) makes Tune save its experiment state after each trial's
    # checkpoint, so that a resumed search never points at a deleted one; with short epochs it warns in
    # 3 lines that this happens often. The state is about 0.15 MB: the warning is noise.
    "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    # MLflow's INFO lines (database creation, signature inference) say nothing a stage does not say.
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "NO_ALBUMENTATIONS_UPDATE": "1",  # albumentations asks PyPI for a newer version on every import
    "DVC_NO_ANALYTICS": "1",  # for the dvc commands that tests and tools start
}


def apply_defaults() -> None:
    for key, value in QUIET.items():
        os.environ.setdefault(key, value)
    # MLflow reads its level once, when first imported: a script that imports it before comic gets it here.
    if "mlflow" in sys.modules:
        logging.getLogger("mlflow").setLevel(os.environ["MLFLOW_LOGGING_LEVEL"].upper())
