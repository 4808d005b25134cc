"""Metric sinks (`log(metrics, step)`, `close()`) and the MLflow run lifecycle.

Files come first (the DVC stage writes its history and metrics itself); MLflow mirrors them. The driver
opens one MLflow run per training run name and passes its id to rank 0, which logs each epoch.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import subprocess
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from comic.files import write_json

DEFAULT_TRACKING_URI = "sqlite:///mlflow/mlflow.db"
DEFAULT_ARTIFACT_ROOT = "mlflow/artifacts"


class MetricSink(Protocol):
    def log(self, metrics: dict, step: int) -> None: ...

    def close(self) -> None: ...


def tracking_uri(configured: str | None) -> str:
    """`MLFLOW_TRACKING_URI` wins, then params `tracking.uri`, then a SQLite store in the ignored `mlflow/`.
    A relative SQLite path is made absolute: Ray workers run in another working directory."""
    uri = os.environ.get("MLFLOW_TRACKING_URI") or configured or DEFAULT_TRACKING_URI
    if uri.startswith("sqlite:///"):
        path = Path(uri.removeprefix("sqlite:///")).resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        uri = f"sqlite:///{path}"
    return uri


def local_artifact_uri(uri: str, tracking_uri: str) -> str:
    """`uri` itself, or for a checkout that was moved or copied, where its artifact now is.

    A SQLite store names its artifacts by the absolute path they had when they were logged
    (file:///old/place/mlflow/artifacts/...). When that path is gone, the same file is looked up under
    the store's own folder (`<folder of mlflow.db>/artifacts/...`)."""
    if not (uri.startswith("file://") and tracking_uri.startswith("sqlite:///")):
        return uri
    path = Path(urllib.parse.urlparse(uri).path)
    if path.exists():
        return uri
    artifacts = Path(tracking_uri.removeprefix("sqlite:///")).parent / "artifacts"
    marker = f"/{artifacts.parent.name}/artifacts/"
    if marker in str(path):
        moved = artifacts / str(path).split(marker, 1)[1]
        if moved.exists():
            return moved.as_uri()
    return uri


# Columns of MLflow's SQL store that hold artifact locations.
_LOCATIONS = (
    ("experiments", "artifact_location"),
    ("runs", "artifact_uri"),
    ("logged_models", "artifact_location"),
    ("model_versions", "source"),
    ("model_versions", "storage_location"),
)


def follow_checkout(uri: str) -> list[str]:
    """Make a copied or moved checkout's SQLite store write to its own `mlflow/artifacts`; returns the old
    roots it replaced.

    MLflow keeps absolute file:// artifact roots in the store: in a copy of a checkout, `<copy>/mlflow/mlflow.db`
    still names `<original>/mlflow/artifacts`, and new runs would write into the original's folder. Every
    experiment root that is a folder `<somewhere>/mlflow/artifacts` other than this store's own is replaced,
    in experiments, runs, logged models and model versions, by this store's folder (which holds the copied
    files). Roots elsewhere (an S3 bucket, a shared disk chosen on purpose) are kept."""
    if not uri.startswith("sqlite:///"):
        return []
    import sqlite3

    db = Path(uri.removeprefix("sqlite:///"))
    if not db.is_file():
        return []
    ours = (db.parent / "artifacts").resolve().as_uri()
    with contextlib.closing(sqlite3.connect(db, timeout=60)) as connection, connection:
        found = connection.execute("SELECT artifact_location FROM experiments WHERE artifact_location LIKE 'file://%'")
        roots = set()
        for (location,) in found:
            path = Path(urllib.parse.urlparse(location).path)
            if path.name == "artifacts" and path.parent.name == db.parent.name and location.rstrip("/") != ours:
                roots.add(location.rstrip("/"))
        for old in sorted(roots):
            for table, column in _LOCATIONS:
                connection.execute(
                    f"UPDATE {table} SET {column} = ? || substr({column}, ?) "
                    f"WHERE {column} = ? OR substr({column}, 1, ?) = ?",
                    (ours, len(old) + 1, old, len(old) + 1, old + "/"),
                )
    return sorted(roots)


@contextlib.contextmanager
def mlflow_uri(uri: str) -> Iterator[None]:
    """Point MLflow's process-wide tracking and registry URIs at `uri` for a block, then put the previous
    ones back. The fluent API (`start_run`, `pyfunc.load_model("models:/...")`) only reads the global URI,
    and setting it also exports MLFLOW_TRACKING_URI to every later subprocess."""
    import mlflow

    previous_env = os.environ.get("MLFLOW_TRACKING_URI")
    previous_registry = os.environ.get("MLFLOW_REGISTRY_URI")
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(previous_env)  # None unsets both the global and the variable
        mlflow.set_registry_uri(previous_registry)
        if previous_registry is None:
            os.environ.pop("MLFLOW_REGISTRY_URI", None)


def _numeric(metrics: dict) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        if isinstance(value, bool | int | float) and not (isinstance(value, float) and math.isnan(value)):
            out[key.replace("@", "_at_")] = float(value)
    return out


class MlflowSink:
    """Logs metrics to an existing MLflow run (by id), from any process."""

    def __init__(self, uri: str, run_id: str):
        from mlflow.tracking import MlflowClient

        self.uri, self.run_id = uri, run_id
        self.client = MlflowClient(tracking_uri=uri)

    def log(self, metrics: dict, step: int) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, step) for k, v in _numeric(metrics).items()]
        self.client.log_batch(self.run_id, metrics=batch)

    def close(self) -> None:
        pass


def git_commit() -> str:
    """`COMIC_GIT_COMMIT` wins (a cluster job runs a commit's tree without .git), then HEAD, else 'unknown'."""
    if os.environ.get("COMIC_GIT_COMMIT"):
        return os.environ["COMIC_GIT_COMMIT"]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def data_version(lock_path: str | Path = "dvc.lock", stage_outs=("data/plt", "data/images")) -> str:
    """The DVC hashes of the dataset folder and its image store from dvc.lock, joined by "+" (the label
    tables point into the store, so an image changed in place changes only the second), or 'unversioned'
    outside a DVC checkout."""
    import yaml

    path = Path(lock_path)
    if not path.is_file():
        return "unversioned"
    lock = yaml.safe_load(path.read_text()) or {}
    found = {
        out.get("path"): str(out.get("md5"))
        for stage in lock.get("stages", {}).values()
        for out in stage.get("outs", [])
        if out.get("path") in stage_outs and out.get("md5")
    }
    return "+".join(found[out] for out in stage_outs if out in found) or "unversioned"


def start_run(uri: str, experiment: str, run_name: str, params: dict, tags: dict) -> str:
    """The id of the MLflow run named `run_name` (reused when a crashed run is resumed), else a new one."""
    import mlflow
    from mlflow.tracking import MlflowClient

    for old in follow_checkout(uri):
        print(f"tracking: this checkout's store named {old}; its artifacts now go to its own mlflow/artifacts")
    client = MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(experiment)
    if found is None:
        artifacts = Path(DEFAULT_ARTIFACT_ROOT).resolve().as_uri() if uri.startswith("sqlite") else None
        experiment_id = client.create_experiment(experiment, artifact_location=artifacts)
    else:
        experiment_id = found.experiment_id
    runs = client.search_runs([experiment_id], filter_string=f"tags.`mlflow.runName` = '{run_name}'", max_results=1)
    if runs:
        run_id = runs[0].info.run_id
    else:
        run_id = client.create_run(experiment_id, run_name=run_name).info.run_id
        flat = {k: str(v)[:500] for k, v in params.items()}
        items = list(flat.items())
        for start in range(0, len(items), 100):
            client.log_batch(run_id, params=[mlflow.entities.Param(k, v) for k, v in items[start : start + 100]])
    for key, value in tags.items():
        client.set_tag(run_id, key, value)
    return run_id


@contextlib.contextmanager
def run_status(uri: str, run_id: str) -> Iterator[None]:
    """End the MLflow run with its real status: FINISHED, FAILED, or KILLED on Ctrl-C."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    try:
        yield
    except KeyboardInterrupt:
        client.set_terminated(run_id, "KILLED")
        raise
    except BaseException:
        client.set_terminated(run_id, "FAILED")
        raise
    client.set_terminated(run_id, "FINISHED")


@dataclass(frozen=True)
class RunRecord:
    """`models/run.json`, written by the train stage: the MLflow run and logged pyfunc of the model file
    (the register stage reads it, and checks the file's hash)."""

    tracking_uri: str
    run_id: str
    model_uri: str  # models:/m-<id>, the logged pyfunc
    model_sha256: str  # of the model file logged with it

    def write(self, path: str | Path) -> None:
        write_json(path, dataclasses.asdict(self))

    @classmethod
    def read(cls, path: str | Path) -> RunRecord:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"{path}: run record not found; the train stage writes it (`dvc repro train`)")
        raw = json.loads(path.read_text())
        names = [f.name for f in dataclasses.fields(cls)]
        missing = [name for name in names if name not in raw]
        if missing:
            raise ValueError(f"{path}: missing keys {missing}; rerun the train stage")
        return cls(**{name: raw[name] for name in names})
