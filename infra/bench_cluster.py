"""Measures the cluster path on this machine (results in docs/cluster.md): job submission to the first training
step on the local two-node cluster, and training throughput with the 2 DDP workers on two nodes (1 CPU each)
against one node (2 CPUs), the same cores either way.

    python -m infra.bench_cluster --out docs/results/cluster_bench.json [--epochs 4 --repeats 2]

Each run is the documented path: a committed scratch repo (infra/scratch_repo.py, params.yaml with
train.epochs overridden) -> infra/submit-job.sh -> infra/cluster_job.py (dvc pull) -> pipelines/train.py
-> Ray Train. The only addition is a Ray `worker_process_setup_hook` (`record_steps`) that times every
`train_step` call in the training workers and appends it to $COMIC_BENCH_DIR/steps-<pid>.jsonl.
"""

from __future__ import annotations

import argparse
import importlib.abc
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HOOK = "infra.bench_cluster.record_steps"
LAYOUTS = {"two nodes (1 + 1 CPU)": (1, [1]), "one node (2 CPUs)": (2, [])}


# ---------------------------------------------------------------------------------- in the Ray workers
class _TimeTrainSteps(importlib.abc.MetaPathFinder):
    """Wraps `comic.training.train_step` when (and only where) that module is imported: the hook runs in every
    worker process of the job, and importing torch in the others (the Train controller) would skew the timing."""

    def find_spec(self, name, path, target=None):
        if name != "comic.training":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        exec_module = spec.loader.exec_module

        def exec_and_wrap(module):
            exec_module(module)
            module.train_step = _timed(module.train_step)

        spec.loader.exec_module = exec_and_wrap
        return spec


def _timed(train_step):
    out = Path(os.environ["COMIC_BENCH_DIR"]) / f"steps-{os.getpid()}.jsonl"

    def timed(model, objective, optimizer, batches, **kwargs):
        start = time.time()
        parts = train_step(model, objective, optimizer, batches, **kwargs)
        images = sum(len(batch["image"]) for batch in batches.values())
        record = {"start": start, "end": time.time(), "epoch": kwargs["epoch"], "images": images}
        with out.open("a") as handle:
            handle.write(json.dumps(record) + "\n")
        return parts

    return timed


def record_steps() -> None:
    """Ray worker_process_setup_hook (COMIC_WORKER_SETUP_HOOK)."""
    if os.environ.get("COMIC_BENCH_DIR"):
        sys.meta_path.insert(0, _TimeTrainSteps())


# ------------------------------------------------------------------------------------------ the driver
def summarise(steps_dir: Path, submitted: float) -> dict:
    """First-step latency and throughput from the step records of all ranks (one file per worker process)."""
    ranks = [[json.loads(line) for line in path.read_text().splitlines()] for path in sorted(steps_dir.glob("steps-*"))]
    assert ranks, f"no step records in {steps_dir}: did the setup hook run?"
    first = min(rank[0]["start"] for rank in ranks)
    steady = [[s for s in rank if s["epoch"] >= 1] for rank in ranks]  # epoch 0 warms up (allocations, caches)
    images = sum(s["images"] for rank in steady for s in rank)
    in_steps = max(sum(s["end"] - s["start"] for s in rank) for rank in steady)
    # The training loop: from the first to the last step of each epoch (data loading included, validation not).
    epochs = sorted({s["epoch"] for rank in steady for s in rank})
    in_loop = sum(
        max(s["end"] for rank in steady for s in rank if s["epoch"] == e)
        - min(s["start"] for rank in steady for s in rank if s["epoch"] == e)
        for e in epochs
    )
    return {
        "ranks": len(ranks),
        "submit_to_first_step_start_s": round(first - submitted, 2),
        "submit_to_first_step_end_s": round(min(rank[0]["end"] for rank in ranks) - submitted, 2),
        "steady_epochs": len(epochs),
        "images_per_s_in_train_step": round(images / in_steps, 1),
        "images_per_s_in_training_loop": round(images / in_loop, 1),
    }


def run_once(repo: Path, remote: Path, work: Path, layout: str, mlflow_uri: str) -> dict:
    from infra.local_cluster import start_cluster

    head_cpus, worker_cpus = LAYOUTS[layout]
    steps_dir = work / "steps"
    steps_dir.mkdir(parents=True)
    load_before = os.getloadavg()
    cluster = start_cluster(head_cpus, worker_cpus)
    try:
        env = {
            **os.environ,
            **cluster.client_env(),
            "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
            "COMIC_STORAGE_PATH": str(work / "ray"),
            "DVC_REMOTE_URL": str(remote),
            "MLFLOW_TRACKING_URI": mlflow_uri,
            "COMIC_BENCH_DIR": str(steps_dir),
            "COMIC_WORKER_SETUP_HOOK": HOOK,
        }
        submission_id = f"bench-{work.name}"
        submitted = time.time()
        subprocess.run(
            ["bash", "infra/submit-job.sh", "--no-wait", "--submission-id", submission_id, "--", "train"],
            cwd=repo,
            env=env,
            check=True,
            capture_output=True,
        )
        while (info := cluster.api(f"/api/jobs/{submission_id}"))["status"] not in ("SUCCEEDED", "FAILED", "STOPPED"):
            time.sleep(1)
        finished = time.time()
        if info["status"] != "SUCCEEDED":
            raise RuntimeError(f"{layout}: job {info['status']}\n{cluster.api(f'/api/jobs/{submission_id}/logs')}")
        query = "filter_keys=class_name&filter_predicates=%3D&filter_values=RayTrainWorker&limit=100"
        nodes = {a["node_id"] for a in cluster.api(f"/api/v0/actors?{query}")["data"]["result"]["result"]}
    finally:
        cluster.down()
    return {
        "layout": layout,
        "worker_nodes_used": len(nodes),
        "job_wall_s": round(finished - submitted, 1),
        **summarise(steps_dir, submitted),
        "loadavg_1min_before": round(load_before[0], 2),
        "loadavg_1min_after": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    import yaml

    from comic.config import set_dotted
    from infra.scratch_repo import REPO, make_repo

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="results JSON")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2, help="runs per layout, interleaved")
    args = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="comic-bench-"))
    params = set_dotted(yaml.safe_load((REPO / "params.yaml").read_text()), {"train.epochs": args.epochs})
    print(f"building the scratch repo and its data in {root} ...", flush=True)
    repo = make_repo(root / "repo", root / "remote", params)
    mlflow_uri = f"sqlite:///{root / 'mlflow.db'}"
    from mlflow.tracking import MlflowClient

    MlflowClient(mlflow_uri).search_experiments()  # migrate the store now, not inside a timed job

    runs = []
    for repeat in range(args.repeats):
        for index, layout in enumerate(LAYOUTS):
            result = run_once(repo, root / "remote", root / f"run{repeat}{index}", layout, mlflow_uri)
            print(json.dumps(result), flush=True)
            runs.append(result)
    import pyarrow.parquet

    train_images = pyarrow.parquet.read_metadata(repo / "data" / "plt" / "train.parquet").num_rows
    report = {
        "command": f"python -m infra.bench_cluster --out {args.out} --epochs {args.epochs} --repeats {args.repeats}",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "workload": {
            "params": "params.yaml with train.epochs overridden",
            "epochs": args.epochs,
            "num_workers": params["train"]["num_workers"],
            "batch_size": params["train"]["batch_size"],
            "image_size": params["data"]["image_size"],
            "model": params["model"]["name"],
            "train_images": train_images,
            "images_counted": "per train_step, all batches it consumes (COMIC: instance + class-aware batch)",
        },
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    shutil.rmtree(root, ignore_errors=True)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
