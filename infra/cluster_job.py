"""Entry point of a cluster job: fetch the commit's data version, then run pipeline stages on the cluster.

    python infra/cluster_job.py train register          # what infra/k8s/rayjob.yaml and submit-job.sh run
    python infra/cluster_job.py tune train register

It runs in the job's working dir (the submitted commit, without .git) on the Ray head node, with RAY_ADDRESS
set by Ray. Each stage runs its `cmd` from dvc.yaml, so the cluster runs exactly what `dvc repro` runs,
with its paths swapped for shared ones (every node must see them):
  --storage  -> $COMIC_STORAGE_PATH (required): Ray Train/Tune checkpoints, s3://... or a shared volume
  --data     -> $COMIC_DATA_ROOT/<data version>/plt when COMIC_DATA_ROOT is set (a volume that every node
                mounts; beside it images/, the image store the label tables point into; the version is the
                md5s of data/plt and data/images in dvc.lock); unset, workers read the job's own copy
  features   -> $COMIC_DATA_ROOT/features/<job>: the frozen trunk's features (stage cache_features), for this job
Before tune and train it runs the cheap stages they read: cache_features (features of a frozen trunk; otherwise a
note that there are none) and, before train, apply_tuned (the searched values, when train.use_tuned).
Other settings come from the environment: MLFLOW_TRACKING_URI (the shared server), DVC_REMOTE_URL and
DVC_REMOTE_ENDPOINT (infra/dvc-remote.sh), COMIC_GIT_COMMIT (the commit, tagged on MLflow runs).
"""

from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

DATA = "data/plt"  # the dataset every training stage reads (the output of stage drop_labels)
FEATURES = "data/features"  # the frozen trunk's features (the output of stage cache_features)
STAGES = ("tune", "train", "register")
# What each stage reads that the job must make first.
BEFORE = {"tune": ("cache_features",), "train": ("cache_features", "apply_tuned")}


def plan(stages: list[str]) -> list[str]:
    """The requested stages in order, each preceded by the stages it reads that have not run yet."""
    done: list[str] = []
    for stage in stages:
        done += [s for s in (*BEFORE.get(stage, ()), stage) if s not in done]
    return done


def stage_command(dvc_yaml: dict, stage: str, *, storage: str, data: str, features: str = FEATURES) -> list[str]:
    """The stage's dvc.yaml `cmd` as argv, with --storage, --data and the features folder (where it has
    them) set to shared paths."""
    if stage not in dvc_yaml.get("stages", {}):
        raise SystemExit(f"dvc.yaml has no stage {stage!r}; stages: {sorted(dvc_yaml.get('stages', {}))}")
    argv = shlex.split(dvc_yaml["stages"][stage]["cmd"])
    swaps = {"--storage": storage, "--data": data}
    for i, arg in enumerate(argv[:-1]):
        if arg in swaps:
            if arg == "--data" and argv[i + 1] != DATA:
                raise SystemExit(f"stage {stage} reads {argv[i + 1]}, not {DATA}: extend cluster_job.DATA")
            argv[i + 1] = swaps[arg]
        elif argv[i + 1] == FEATURES and arg in ("--features", "--out"):
            argv[i + 1] = features
    if argv[0] == "python":
        argv[0] = sys.executable
    return argv


def data_md5(lock_path: Path = Path("dvc.lock")) -> str:
    """The data version this commit trains on: the md5s dvc.lock pins for data/plt and its image store."""
    from comic.tracking import data_version

    version = data_version(lock_path)
    if version == "unversioned":
        raise SystemExit(f"dvc.lock pins no {DATA}: run `dvc repro drop_labels` and `infra/dvc-remote.sh push`")
    return version


def share_data(local: Path, root: str, version: str) -> Path:
    """Copy the pulled dataset folder and its image store to <root>/<version>/{plt,images} once (atomic
    rename; later jobs of the same version reuse it); returns the dataset folder."""
    target = Path(root) / version.replace(".dir", "")
    if not target.is_dir():
        staging = Path(root) / f".{target.name}.{os.getpid()}.tmp"
        shutil.copytree(local, staging / "plt")
        shutil.copytree(local.parent / "images", staging / "images")
        try:
            os.rename(staging, target)
        except OSError:  # another job shared the same version first
            shutil.rmtree(staging, ignore_errors=True)
    return target / "plt"


def run(argv: list[str]) -> None:
    print(f"[cluster_job] {time.strftime('%H:%M:%S')} $ {shlex.join(argv)}", flush=True)
    done = subprocess.run(argv)
    if done.returncode:
        raise SystemExit(f"[cluster_job] failed ({done.returncode}): {shlex.join(argv)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stages", nargs="+", choices=STAGES, help="stages to run, in order")
    args = parser.parse_args()
    storage = os.environ.get("COMIC_STORAGE_PATH")
    if not storage:
        raise SystemExit("COMIC_STORAGE_PATH is not set: multi-node Ray needs s3://... or a shared volume path")

    run(["bash", str(Path(__file__).with_name("dvc-remote.sh")), "pull"])
    md5 = data_md5()
    data, features = Path(DATA).resolve(), Path(FEATURES).resolve()
    root = os.environ.get("COMIC_DATA_ROOT")
    if root:
        data = share_data(data, root, md5)
        job = os.environ.get("RAY_JOB_ID") or f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        features = Path(root) / "features" / job
    print(f"[cluster_job] data version {md5} at {data}", flush=True)

    dvc_yaml = yaml.safe_load(Path("dvc.yaml").read_text())
    for stage in plan(args.stages):
        run(stage_command(dvc_yaml, stage, storage=storage, data=str(data), features=str(features)))


if __name__ == "__main__":
    main()
