"""The cluster's MLflow server runs the basic-auth app (infra/k8s/mlflow.yaml): on loopback, anonymous
requests are refused, the reader reads but cannot move `champion`, and the trainer registers."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from infra.mlflow.users import create_users
from tests.registry.conftest import free_port, stop, wait_for_http

PASSWORDS = {"comic-trainer": "trainer-pass-1", "comic-reader": "reader-pass-1"}


@pytest.fixture
def auth_server(tmp_path):
    config = tmp_path / "basic_auth.ini"
    config.write_text(
        "[mlflow]\ndefault_permission = READ\n"
        f"database_uri = sqlite:///{tmp_path / 'auth.db'}\nadmin_username = admin\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
    )
    port, log = free_port(), tmp_path / "server.log"
    env = os.environ | {
        "MLFLOW_AUTH_CONFIG_PATH": str(config),
        "MLFLOW_AUTH_ADMIN_PASSWORD": "admin-pass-1",
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "test-secret",
    }
    command = [str(Path(sys.executable).with_name("mlflow")), "server", "--app-name", "basic-auth"]
    command += ["--backend-store-uri", f"sqlite:///{tmp_path / 'mlflow.db'}", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--artifacts-destination", (tmp_path / "artifacts").as_uri(), "--workers", "1"]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(f"{uri}/health", process, timeout=120, log=log)
        yield uri
    finally:
        stop(process)


@pytest.mark.timeout(240)
def test_anonymous_requests_are_refused_readers_cannot_move_aliases_and_trainers_register(auth_server):
    import requests

    assert sorted(create_users(auth_server, ("admin", "admin-pass-1"), PASSWORDS)) == sorted(PASSWORDS)
    assert create_users(auth_server, ("admin", "admin-pass-1"), PASSWORDS) == []  # idempotent
    api = f"{auth_server}/api/2.0/mlflow"
    trainer, reader = ("comic-trainer", PASSWORDS["comic-trainer"]), ("comic-reader", PASSWORDS["comic-reader"])

    assert requests.get(f"{api}/experiments/search?max_results=1", timeout=10).status_code == 401
    assert requests.post(f"{api}/registered-models/create", json={"name": "comic"}, auth=trainer, timeout=10).ok
    experiment = requests.post(f"{api}/experiments/create", json={"name": "comic"}, auth=trainer, timeout=10)
    run = requests.post(f"{api}/runs/create", json=experiment.json(), auth=trainer, timeout=10).json()["run"]
    version = {"name": "comic", "source": f"{run['info']['artifact_uri']}/model", "run_id": run["info"]["run_id"]}
    created = requests.post(f"{api}/model-versions/create", json=version, auth=trainer, timeout=10)
    assert created.ok, created.text
    alias = {"name": "comic", "alias": "champion", "version": "1"}
    assert requests.get(f"{api}/registered-models/get?name=comic", auth=reader, timeout=10).ok
    refused = requests.post(f"{api}/registered-models/alias", json=alias, auth=reader, timeout=10)
    assert refused.status_code == 403
    assert requests.post(f"{api}/registered-models/alias", json=alias, auth=trainer, timeout=10).ok
