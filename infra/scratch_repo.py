"""A committed scratch checkout of this repository whose data version is pushed to a DVC remote: what a
cluster job starts from, made on this machine (the loopback tests, infra/bench_cluster.py).

    python -m infra.scratch_repo --out /tmp/job-repo --remote /tmp/dvc-remote --set train.epochs=3
    cd /tmp/job-repo && RAY_ADDRESS=... COMIC_STORAGE_PATH=... DVC_REMOTE_URL=/tmp/dvc-remote bash infra/submit-job.sh

It copies the code and dvc.yaml, writes the params, runs `dvc repro drop_labels` (the data stages, which
write dvc.lock), pushes the data with infra/dvc-remote.sh and commits: the same steps as on a workstation
before submitting to a real cluster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from comic.config import set_dotted

REPO = Path(__file__).resolve().parents[1]
COPIED = ("comic", "pipelines", "infra", "dvc.yaml", ".gitignore", ".dvcignore")
GIT = ["git", "-c", "user.name=comic", "-c", "user.email=comic@localhost", "-c", "commit.gpgsign=false"]


def _run(*args: str, cwd: Path, env: dict | None = None) -> None:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    full_env = {**os.environ, "PATH": path, "DVC_NO_ANALYTICS": "1", **(env or {})}
    done = subprocess.run(args, cwd=cwd, env=full_env, capture_output=True, text=True, timeout=600)
    if done.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")


def copy_repo(out: Path, params: dict) -> Path:
    """A git + DVC repo at `out` with the project's code, dvc.yaml and `params` as params.yaml (uncommitted)."""
    out.mkdir(parents=True)
    for name in COPIED:
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, out / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, out / name)
    (out / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    _run("git", "init", "-q", cwd=out)
    _run(sys.executable, "-m", "dvc", "init", "-q", cwd=out)
    return out


def commit(repo: Path, message: str) -> None:
    _run(*GIT, "add", "-A", cwd=repo)
    _run(*GIT, "commit", "-qm", message, cwd=repo)


def make_repo(out: Path, remote: Path, params: dict) -> Path:
    """A git + DVC repo at `out` with `params` as params.yaml, its data built, pushed to `remote`, committed."""
    copy_repo(out, params)
    _run(sys.executable, "-m", "dvc", "repro", "-q", "drop_labels", cwd=out)
    _run("bash", "infra/dvc-remote.sh", "push", cwd=out, env={"DVC_REMOTE_URL": str(remote)})
    commit(out, "scratch checkout for a cluster job")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="new folder for the repo")
    parser.add_argument("--remote", type=Path, required=True, help="DVC remote folder (created if missing)")
    parser.add_argument("--set", action="append", default=[], help="params override KEY=VALUE (YAML value)")
    args = parser.parse_args()
    overrides = {key: yaml.safe_load(value) for key, value in (item.split("=", 1) for item in args.set)}
    params = set_dotted(yaml.safe_load((REPO / "params.yaml").read_text()), overrides)
    print(make_repo(args.out, args.remote, params))


if __name__ == "__main__":
    main()
