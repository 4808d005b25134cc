"""Ray Train adapter: runs `comic.training.train` on N DDP workers (gloo on CPU, NCCL on GPUs).

A run is named by a hash of its resolved params, data version and the package's source: running the same
stage again after a crash finds the run's checkpoints under `storage_path` and resumes (Ray Train V2
restores the latest checkpoint of a run with the same name); changed params or changed code start a new run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path

import ray
import ray.train
from ray.train import CheckpointConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchTrainer

from comic import faults
from comic.config import Params, from_dict, to_dict
from comic.data.location import absolute, ray_storage
from comic.tracking import MlflowSink
from comic.training import train


class RayReporter:
    """`comic.training.Reporter` on top of `ray.train.report` / `ray.train.get_checkpoint`."""

    def restored(self) -> AbstractContextManager[Path | None]:
        checkpoint = ray.train.get_checkpoint()
        return private_directory(checkpoint) if checkpoint is not None else nullcontext()

    def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
        checkpoint = ray.train.Checkpoint.from_directory(str(checkpoint_dir)) if checkpoint_dir else None
        ray.train.report(metrics, checkpoint=checkpoint)
        context = ray.train.get_context()
        faults.after_worker_report(metrics["epoch"], context.get_world_rank(), context.get_world_size())


@contextmanager
def private_directory(checkpoint: ray.train.Checkpoint) -> Iterator[Path]:
    """A directory holding `checkpoint` that no other rank writes to. `to_directory()` without a path gives
    every rank on a node the same folder, and a rank that takes Ray's lock after another released it
    downloads again over the files the first is reading (a torn `state.pt` on restore, seen under DDP on
    one machine). A checkpoint on a local filesystem is read where it is (it is never written again); one
    on remote storage is downloaded into a folder of this process's own, deleted when the `with` ends."""
    import pyarrow.fs

    if isinstance(checkpoint.filesystem, pyarrow.fs.LocalFileSystem):
        yield Path(checkpoint.path)
        return
    with tempfile.TemporaryDirectory(prefix="comic-restore-") as folder:
        yield Path(checkpoint.to_directory(folder))


def use_assigned_cpus() -> int:
    """Give torch one thread per CPU that Ray assigned to this worker (at least one) and return it.

    A worker inherits the driver's environment: an `OMP_NUM_THREADS=2` exported by the user's shell made
    each of two 1-CPU workers run two threads on a 2-core machine, 4x slower (docs/studies/ray-workers.md)."""
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1.0)
    threads = max(1, int(cpus))
    os.environ["OMP_NUM_THREADS"] = str(threads)
    return threads


def train_loop_per_worker(config: dict) -> None:
    """What each Ray worker runs: rebuild the params, then call the library."""
    use_assigned_cpus()
    quiet_ray_logs()
    params = from_dict(Params, config["params"])
    sink = None
    if config.get("mlflow_run_id") and ray.train.get_context().get_world_rank() == 0:
        sink = MlflowSink(config["mlflow_uri"], config["mlflow_run_id"])
    train(params, config["data_dir"], RayReporter(), sink, features_dir=config.get("features_dir"))


# The params sections a training run depends on; tracking, tuning and registration settings do not change
# what is trained, so changing them must not stop a crashed run from resuming.
TRAINING_SECTIONS = ("seed", "data", "model", "loss", "correction", "balance", "train", "metrics")


PACKAGE = Path(__file__).resolve().parent


def code_digest(root: Path = PACKAGE) -> str:
    """sha256 of the package's Python sources (relative path and bytes, in path order). Without it in the run
    name, `dvc repro` after a code change "resumed" the finished run of the old code and re-exported its
    model as the new code's."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def run_name(params: Params, data_version: str, prefix: str = "comic", extra: tuple[str, ...] = ()) -> str:
    """Same inputs, same name: the training sections (plus `extra`, e.g. `tune` for a search), the data and
    the code."""
    inputs = {k: v for k, v in to_dict(params).items() if k in TRAINING_SECTIONS + extra}
    digest = hashlib.sha256(json.dumps([inputs, data_version, code_digest()], sort_keys=True).encode()).hexdigest()
    return f"{prefix}-{digest[:12]}"


# Loggers whose INFO lines repeat what comic's own progress line says (each report, each checkpoint).
QUIET_LOGGERS = ("ray.train", "ray.tune", "ray._private.authentication.authentication_token_setup")
# The controller runs in its own actor, where the levels set below do not reach: Ray Train's own
# logging config silences its worker-group lines there (failures and restarts are warnings, still shown).
TRAIN_LOGGING = LoggingConfig(log_level="WARNING")


def quiet_ray_logs() -> None:
    """In the driver, each worker and each trial: comic's progress line says what these would."""
    from ray.train.v2._internal.execution import context  # its logger is named by its file path

    for name in (*QUIET_LOGGERS, context.__file__):
        logging.getLogger(name).setLevel(logging.WARNING)
    # Ray's token warning says that local token authentication is on, which is what we want.
    logging.getLogger(QUIET_LOGGERS[-1]).setLevel(logging.ERROR)


def init_ray(num_cpus: int | None = None, num_gpus: int | None = None) -> None:
    """Start a local Ray with explicit resources unless already connected (RAY_ADDRESS joins a cluster)."""
    if ray.is_initialized():
        return
    quiet_ray_logs()
    if os.environ.get("RAY_ADDRESS"):
        ray.init(address=os.environ["RAY_ADDRESS"], log_to_driver=True, logging_level=logging.WARNING)
        return
    # One machine is never drained: Train V2's preemption watcher only adds an error line at start-up.
    os.environ.setdefault("RAY_TRAIN_ENABLE_PREEMPTION_WATCHER", "0")
    # The dashboard (ray[default]) hosts the state API that Train V2's controller polls; without it
    # the driver logs "Failed to query Ray Train Controller actor state" every few seconds.
    # logging_level: Ray's "Started a local Ray instance" line; comic's own lines say what runs where.
    ray.init(num_cpus=num_cpus or os.cpu_count(), num_gpus=num_gpus, log_to_driver=True, logging_level=logging.WARNING)


def build_trainer(
    params: Params,
    data_dir: str | Path,
    *,
    run_config: RunConfig,
    mlflow: tuple[str, str] | None,
    features_dir: str | Path | None = None,
    cpus_per_worker: float = 1.0,
) -> TorchTrainer:
    """A `TorchTrainer` of `params.train.num_workers` workers running `train_loop_per_worker`; `mlflow` is
    (tracking URI, run id) for rank 0's per-epoch metrics, `features_dir` a frozen trunk's cached features."""
    gpu = {"GPU": 1} if params.train.use_gpu else {}
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "params": to_dict(params),
            "data_dir": absolute(data_dir),
            "features_dir": absolute(features_dir) if features_dir else None,
            "mlflow_uri": mlflow[0] if mlflow else None,
            "mlflow_run_id": mlflow[1] if mlflow else None,
        },
        scaling_config=ScalingConfig(
            num_workers=params.train.num_workers,
            use_gpu=params.train.use_gpu,
            resources_per_worker={"CPU": cpus_per_worker, **gpu},
        ),
        run_config=run_config,
    )


def fit(
    params: Params,
    data_dir: str | Path,
    *,
    storage_path: str | Path,
    name: str,
    mlflow: tuple[str, str] | None = None,
    features_dir: str | Path | None = None,
    max_failures: int = 2,
):
    """Train with Ray Train; returns the `ray.train.Result` (its checkpoint is the last epoch's)."""
    run_config = RunConfig(
        name=name,
        **ray_storage(storage_path),
        failure_config=FailureConfig(max_failures=max_failures),
        checkpoint_config=CheckpointConfig(num_to_keep=2),
        logging_config=TRAIN_LOGGING,
    )
    return build_trainer(params, data_dir, run_config=run_config, mlflow=mlflow, features_dir=features_dir).fit()
