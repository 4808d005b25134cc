"""One DVC run at a time in a workspace: a second `dvc exp run` (or `dvc repro`) started while one is running
stops at its first stage and puts params.yaml back as the running one has it.

DVC cannot be stopped earlier from inside the pipeline: `dvc exp run -S key=value` rewrites params.yaml
(and stashes and restores the workspace) before it runs any stage, and releases its repository lock while
stages run. So every stage claims the workspace for the DVC process that runs it (`claim`, called by
`comic.stage.run`): the first stage of a run records that process and the params it started with in
`.dvc/tmp/comic-run.json`; a stage of another DVC process finds that record alive, restores params.yaml from
it and fails with what to do (`dvc exp run --queue` / `--temp`); a later stage of the first run checks that
params.yaml still is what the run started with and else puts it back (the second run failed on DVC's own
lock before any of our code ran), keeping the changed file beside it. Linux only (it reads /proc); elsewhere,
and outside DVC, nothing is checked. What DVC itself does to the first run is in docs/registry.md.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

RECORD = Path(".dvc/tmp/comic-run.json")
ADVICE = (
    "For experiments side by side, queue them (`dvc exp run --queue -S key=value`, then `dvc queue start`) or "
    "run each in a temporary copy (`dvc exp run --temp -S key=value`)"
)


class WorkspaceBusy(RuntimeError):
    """Another DVC run owns this workspace, or params.yaml changed under this run."""


@dataclass(frozen=True)
class Owner:
    pid: int
    start: int  # the process's start time in clock ticks after boot (/proc/<pid>/stat field 22): pid reuse
    command: str


def _process(pid: int) -> tuple[int, int, str] | None:
    """(parent pid, start time, command line) of a running process, from /proc; None if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after the command name, which may hold spaces
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19]), " ".join(a.decode(errors="replace") for a in argv if a)


def dvc_owner(pid: int | None = None) -> Owner | None:
    """The nearest ancestor of `pid` (default: this process) that is a `dvc` command, or None."""
    pid = os.getpid() if pid is None else pid
    while pid > 1:
        found = _process(pid)
        if found is None:
            return None
        parent, start, command = found
        words = command.split()[:3]
        if any(Path(word).name == "dvc" for word in words) or "-m dvc" in " ".join(words):
            return Owner(pid, start, command)
        pid = parent
    return None


def _alive(owner: Owner) -> bool:
    found = _process(owner.pid)
    return found is not None and found[1] == owner.start


@contextlib.contextmanager
def _locked(path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.with_suffix(".lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def claim(params: str | Path = "params.yaml", record: Path = RECORD, owner: Owner | None = None) -> None:
    """Claim the workspace for the DVC run of this stage; WorkspaceBusy if another live one owns it (after
    putting params.yaml back as that run has it). If params.yaml changed since this run's first stage, put it
    back and keep the changed one as params.yaml.changed."""
    if not record.parent.parent.is_dir():  # not a DVC repository (no .dvc/)
        return
    owner = owner or dvc_owner()
    params = Path(params)
    if owner is None or not params.is_file():
        return
    text = params.read_text()
    with _locked(record):
        held = json.loads(record.read_text()) if record.is_file() else None
        holder = Owner(held["pid"], held["start"], held["command"]) if held else None
        if holder is not None and holder != owner and _alive(holder):
            since = time.strftime("%H:%M:%S", time.localtime(held["claimed"]))
            put_back = ""
            if text != held["params"]:
                params.write_text(held["params"])
                put_back = f" and put {params} back as that run has it"
            raise WorkspaceBusy(
                f"another DVC run is going on in this workspace (pid {holder.pid}, `{holder.command}`, since "
                f"{since}); this one stopped at its first stage{put_back}. {ADVICE}."
            )
        if holder == owner:
            if hashlib.sha256(text.encode()).hexdigest() != held["params_sha256"]:
                aside = params.with_name(f"{params.name}.changed")
                aside.write_text(text)
                params.write_text(held["params"])
                print(
                    f"{params} changed while this DVC run was going on (another `dvc exp run` in this workspace, or "
                    f"an edit): put back as this run started, so that its stages agree; the changed file is {aside}. "
                    f"{ADVICE}.",
                    file=sys.stderr,
                    flush=True,
                )
            return
        claimed = {**asdict(owner), "claimed": time.time(), "params": text}
        claimed["params_sha256"] = hashlib.sha256(text.encode()).hexdigest()
        tmp = record.with_suffix(".tmp")
        tmp.write_text(json.dumps(claimed))
        tmp.replace(record)
