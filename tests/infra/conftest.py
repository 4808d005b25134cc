"""Fixtures of the cluster tests, all on loopback: a committed tiny repo with its data in a local DVC remote,
a two-node Ray cluster on this machine, and an MLflow server on a real PostgreSQL.

Everything that starts a process stops it in a finaliser; each test that uses one has a timeout.
"""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from infra.local_cluster import free_ports, start_cluster
from infra.scratch_repo import make_repo
from tests.data.conftest import write_params

BIN = Path(sys.executable).parent
TOOLS_ENV = {"PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
# The tiny training of the cluster jobs: 2 workers (one per node) on ~80 training images of 36 px.
TINY_TRAIN = {"epochs": 2, "batch_size": 16, "num_workers": 2}


def sh(*args: str, cwd: Path, env: dict | None = None, timeout: float = 120) -> str:
    done = subprocess.run(
        args, cwd=cwd, env={**os.environ, **TOOLS_ENV, **(env or {})}, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"{' '.join(args)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
    return done.stdout


def make_tiny_repo(root: Path, remote: Path, **train) -> Path:
    """A committed scratch repo (infra/scratch_repo.py) with the tiny data and training, its data version
    pushed to the local DVC remote `remote`."""
    params = yaml.safe_load(write_params(root).read_text())
    params["train"].update(TINY_TRAIN, **train)
    params["metrics"].update(many_threshold=40, few_threshold=10)
    return make_repo(root / "repo", remote, params)


@pytest.fixture(scope="session")
def dvc_remote(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("dvc-remote")


@pytest.fixture(scope="session")
def tiny_repo(tmp_path_factory, dvc_remote) -> Path:
    return make_tiny_repo(tmp_path_factory.mktemp("tiny-repo"), dvc_remote)


# ------------------------------------------------------------------------------------------- Ray cluster
@pytest.fixture(scope="module")
def two_node_cluster():
    """Head (1 CPU, resource `head`) + one worker node (1 CPU), each on its own loopback address."""
    cluster = start_cluster(head_cpus=1, worker_cpus=[1])
    yield cluster
    cluster.down()


# -------------------------------------------------------------------------------------- PostgreSQL, MLflow
def postgres_bin() -> Path:
    """The PostgreSQL server binaries; installs Debian's `postgresql` when they are missing."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not found:
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.skip("PostgreSQL is not installed and apt-get (as root) is unavailable to install it")
        for args in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "postgresql"]):
            subprocess.run(
                args,
                check=True,
                capture_output=True,
                timeout=600,
                env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            )
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return found[-1].parent


def as_postgres(*args: str, timeout: float = 60) -> None:
    """Run a PostgreSQL tool as the `postgres` user (the server refuses to run as root)."""
    command = list(args) if os.geteuid() != 0 else ["runuser", "-u", "postgres", "--", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)} failed:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL on a free loopback port; yields its SQLAlchemy URI (database `mlflow`)."""
    bin_dir = postgres_bin()
    # Not under pytest's tmp dir: that is private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="comic-pg-"))
    data, sockets = root / "data", root / "run"
    sockets.mkdir()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(sockets, "postgres")
    (port,) = free_ports(1)
    pg_ctl = str(bin_dir / "pg_ctl")
    as_postgres(str(bin_dir / "initdb"), "-D", str(data), "-U", "mlflow", "--auth=trust", "-E", "UTF8", "--no-sync")
    options = f"-p {port} -k {sockets} -c listen_addresses=127.0.0.1 -c fsync=off"
    as_postgres(pg_ctl, "-D", str(data), "-o", options, "-l", str(root / "server.log"), "-w", "-t", "60", "start")
    try:
        as_postgres(str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "mlflow", "mlflow")
        yield f"postgresql://mlflow@127.0.0.1:{port}/mlflow"
    finally:
        subprocess.run(
            ["runuser", "-u", "postgres", "--", pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]
            if os.geteuid() == 0
            else [pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def mlflow_server(postgres, tmp_path_factory):
    """`mlflow server` with the PostgreSQL backend store and a local artifact store, served over HTTP."""
    pytest.importorskip("psycopg", reason="MLflow's PostgreSQL driver; `pip install -e .` installs it")
    artifacts = tmp_path_factory.mktemp("mlflow-artifacts")
    (port,) = free_ports(1)
    log = open(artifacts.parent / "mlflow-server.log", "wb")  # noqa: SIM115 - closed in the finaliser
    # Its own process group: the server's workers die with it.
    server = [str(BIN / "mlflow"), "server", "--backend-store-uri", postgres, "--artifacts-destination"]
    server += [str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true"}
    process = subprocess.Popen(server, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (artifacts.parent / "mlflow-server.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"mlflow server did not come up:\n{tail}")
            time.sleep(0.5)
        yield url
    finally:
        stop_group(process)
        log.close()


def stop_group(process: subprocess.Popen, grace: float = 5) -> None:
    """SIGTERM the process group led by `process`, SIGKILL what is left after `grace` seconds."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=grace)
            return
        except subprocess.TimeoutExpired:
            continue


# ------------------------------------------------------------------------------------------------- jobs
TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


def submit_job(cluster, repo: Path, submission_id: str, stages: list[str], **env: str) -> float:
    """`infra/submit-job.sh --no-wait` from the repo (its working dir is the commit); returns the time
    just before submission."""
    started = time.time()
    submit = ["bash", "infra/submit-job.sh", "--no-wait", "--submission-id", submission_id, "--", *stages]
    sh(*submit, cwd=repo, env={**cluster.client_env(), **env})
    return started


def wait_for_job(cluster, submission_id: str, timeout: float) -> dict:
    """The job's final info (status, times, driver node); fails with the log tail if it does not succeed."""
    deadline = time.monotonic() + timeout
    while True:
        info = cluster.api(f"/api/jobs/{submission_id}")
        if info["status"] in TERMINAL or time.monotonic() > deadline:
            break
        time.sleep(2)
    if info["status"] != "SUCCEEDED":
        logs = cluster.api(f"/api/jobs/{submission_id}/logs")["logs"]
        pytest.fail(
            f"job {submission_id} is {info['status']} after {timeout:.0f} s: {info.get('message')}\n{logs[-6000:]}"
        )
    return info


def train_worker_nodes(cluster) -> list[str]:
    """The node of every Ray Train worker actor the cluster has run (alive or dead)."""
    query = "filter_keys=class_name&filter_predicates=%3D&filter_values=RayTrainWorker&limit=1000&detail=1"
    return [actor["node_id"] for actor in cluster.api(f"/api/v0/actors?{query}")["data"]["result"]["result"]]


def latest_checkpoint_state(storage: Path) -> dict:
    """`state.pt` of the newest checkpoint under the Ray storage path (one training run in it)."""
    from comic import checkpoint

    checkpoints = sorted(storage.glob(f"*/checkpoint_*/{checkpoint.STATE_FILE}"), key=lambda p: p.parent.name)
    assert checkpoints, f"no checkpoint under {storage}"
    return checkpoint.load(checkpoints[-1].parent)[0]
