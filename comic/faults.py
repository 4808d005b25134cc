"""Fault injection for tests and drills, read from the environment variable COMIC_FAULTS in this one place.

COMIC_FAULTS holds JSON: `{"worker_exit_after_epoch": [1, "/tmp/marker"]}` makes the last Ray Train
worker exit once (the marker file remembers) after reporting that epoch;
`{"tune_trial_errors": [[1], "/tmp/claims"]}` makes the trial that starts second raise (0-based order of
start, counted by claiming files in that folder, since searchers name trials at random). Ray workers and
trials inherit the variable from the driver. Unset, every call here is a no-op.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

VARIABLE = "COMIC_FAULTS"


def _faults() -> dict:
    raw = os.environ.get(VARIABLE)
    return json.loads(raw) if raw else {}


def after_worker_report(epoch: int, rank: int, world_size: int) -> None:
    """Called by a Ray Train worker after it reported `epoch`."""
    spec = _faults().get("worker_exit_after_epoch")
    if not spec or epoch != spec[0] or rank != world_size - 1:
        return
    marker = Path(spec[1])
    if marker.exists():
        return
    marker.write_text("exited once\n")
    # Die a little later, as a killed worker would: Ray Train's controller collects reports by polling
    # every 2 s, and a report still queued when its worker dies is lost.
    time.sleep(6)
    os._exit(1)


def before_trial(sample: dict) -> None:
    """Called by a Ray Tune trial before it trains."""
    spec = _faults().get("tune_trial_errors")
    if not spec:
        return
    failing, claims = spec[0], Path(spec[1])
    claims.mkdir(parents=True, exist_ok=True)
    index = 0
    while True:  # the first free number is this trial's place in the order of start
        try:
            os.close(os.open(claims / str(index), os.O_CREAT | os.O_EXCL))
            break
        except FileExistsError:
            index += 1
    if index in failing:
        raise RuntimeError(f"injected failure of trial {index} ({sample})")
