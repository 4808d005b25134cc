"""Fixtures of the registry tests: the tiny dataset, a tiny model file, one SQLite tracking store per
session (migrating a fresh database costs ~4 s), and helpers that log a trained run and register it."""

import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from comic.config import MetricsConfig, Params, RegisterConfig, override
from comic.data.dataset import MultiLabelDataset
from comic.data.store import load_classes
from comic.export import save_model_file
from comic.files import file_sha256
from comic.models import build_model, input_spec
from comic.registry import register
from comic.tracking import RunRecord
from tests.training.conftest import tiny_data  # noqa: F401  (session fixture: the tiny dataset)

# The tiny dataset's largest class has ~80 labels: these thresholds give it all three shot groups.
METRICS = MetricsConfig(many_threshold=40, few_threshold=10)


@pytest.fixture(scope="session")
def model_file(tiny_data, tmp_path_factory):  # noqa: F811
    """A small single-head model with fixed random weights for the tiny dataset's classes."""
    classes = load_classes(tiny_data)
    params = override(Params(), {"data.image_size": 32, "model.name": "single"})
    torch.manual_seed(0)
    model = build_model(params.model, params.balance, num_classes=len(classes["names"]))
    path = tmp_path_factory.mktemp("model") / "model.pt"
    save_model_file(
        path,
        model.state_dict(),
        params,
        classes,
        [0.5] * len(classes["names"]),
        prediction="single",
        spec=input_spec(params.model, 32),
    )
    return path


@pytest.fixture(scope="session")
def example_png(tiny_data):  # noqa: F811
    return MultiLabelDataset(tiny_data, "test", transform=None).image_bytes(0)


@dataclass(frozen=True)
class Store:
    uri: str
    experiment_id: str


@pytest.fixture(scope="session")
def sqlite_store(tmp_path_factory):
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("mlflow")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    experiment_id = MlflowClient(uri).create_experiment("registry", artifact_location=(root / "artifacts").as_uri())
    return Store(uri, experiment_id)


@pytest.fixture
def model_name():
    """A registered-model name of its own for each test (the store is shared by the session)."""
    return f"comic-{uuid.uuid4().hex[:8]}"


def log_trained_run(store: Store, model_path: Path, example: bytes, record_path: Path) -> RunRecord:
    """What the train stage leaves behind: an MLflow run with the pyfunc logged, and models/run.json."""
    from mlflow.tracking import MlflowClient

    from comic.serving import log_pyfunc

    tags = {"git_commit": "0" * 40, "dvc_data_version": "tiny.dir"}
    run_id = MlflowClient(store.uri).create_run(store.experiment_id, tags=tags).info.run_id
    model_uri = log_pyfunc(store.uri, run_id, str(model_path), [example])
    record = RunRecord(store.uri, run_id, model_uri, file_sha256(model_path))
    record.write(record_path)
    return record


def register_run(record: RunRecord, *, store: Store, data: Path, model_path: Path, name: str, **gate) -> dict:
    return register(
        record,
        model_path=model_path,
        data_dir=data,
        uri=store.uri,
        config=RegisterConfig(model_name=name, **gate),
        metrics=METRICS,
        eval_data_version="tiny.dir",
        git_commit="1" * 40,
    )


def aliases_of(client, name: str) -> dict[str, int]:
    """{alias: version}; version numbers come back as int from SQLite and as text over HTTP."""
    return {alias: int(version) for alias, version in client.get_registered_model(name).aliases.items()}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_http(url: str, process: subprocess.Popen, timeout: float, log: Path) -> None:
    """Poll `url` until it answers 200, the process dies, or `timeout` seconds pass."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[:3]} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    """Stop a server started with start_new_session=True, and its workers (its own process group)."""
    import contextlib
    import os
    import signal

    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)  # uvicorn's graceful shutdown waits for idle keep-alive connections
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever outlived the leader
    process.wait(timeout=10)
