"""Registration and promotion against a real `mlflow server` (SQLite backend, proxied local artifacts) on a
loopback port, over HTTP; and a dead server: a clear error within seconds, nothing registered."""

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from comic.registry import CHALLENGER, CHAMPION, RegistryError
from comic.tracking import RunRecord
from tests.data.conftest import run_stage, write_params
from tests.registry.conftest import Store, aliases_of, free_port, log_trained_run, register_run, stop, wait_for_http


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One `mlflow server` for the module (start-up ~10-20 s on 2 busy cores, with a fresh database)."""
    from mlflow.tracking import MlflowClient

    root = tmp_path_factory.mktemp("server")
    port = free_port()
    log = root / "server.log"
    mlflow = Path(sys.executable).with_name("mlflow")
    command = [str(mlflow), "server", "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    command += ["--artifacts-destination", str(root / "artifacts"), "--host", "127.0.0.1", "--port", str(port)]
    command += ["--workers", "1"]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        uri = f"http://127.0.0.1:{port}"
        wait_for_http(f"{uri}/health", process, timeout=120, log=log)
        yield Store(uri, MlflowClient(uri).create_experiment("registry"))
    finally:
        stop(process)


@pytest.mark.timeout(300)
def test_registration_and_promotion_work_over_http(server, tiny_data, model_file, model_name, example_png, tmp_path):
    from mlflow.tracking import MlflowClient

    runs = [log_trained_run(server, model_file, example_png, tmp_path / f"run{i}.json") for i in range(2)]
    common = {"store": server, "data": tiny_data, "model_path": model_file, "name": model_name}

    assert register_run(runs[0], **common)["alias"] == CHAMPION
    # Comparing downloads the champion's model file through the server's artifact proxy.
    second = register_run(runs[1], **common, min_gain=1.0)
    assert second["alias"] == CHALLENGER and second["previous_champion"]["metrics"] == second["challenger_metrics"]
    assert register_run(runs[1], **common)["promoted"]

    client = MlflowClient(server.uri)
    assert aliases_of(client, model_name) == {CHAMPION: 2}
    assert [v.tags["gate"] for v in client.search_model_versions(f"name='{model_name}'")] == ["promoted"] * 2
    assert second["tracking_uri"] == server.uri


@pytest.mark.timeout(120)
def test_an_unreachable_server_is_a_clear_error_within_seconds_and_registers_nothing(
    tiny_data, model_file, model_name, tmp_path, monkeypatch
):
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    record = RunRecord(dead, "0" * 32, "models:/m-0", "0" * 64)
    started = time.monotonic()
    with pytest.raises(RegistryError, match=f"cannot reach the MLflow tracking server at {dead}") as info:
        register_run(record, store=Store(dead, "0"), data=tiny_data, model_path=model_file, name=model_name)
    assert time.monotonic() - started < 10 and "Nothing was registered" in str(info.value)

    # The stage exits with that message and writes no report.
    record.write(tmp_path / "run.json")
    params_path = write_params(tmp_path)
    params = yaml.safe_load(params_path.read_text())
    params["tracking"]["uri"] = dead
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    report = tmp_path / "registry.json"
    args = ["--data", str(tiny_data), "--model", str(model_file), "--run", str(tmp_path / "run.json")]
    with pytest.raises(SystemExit, match="register: cannot reach"):
        run_stage("register", *args, "--report", str(report), "--params", str(params_path), monkeypatch=monkeypatch)
    assert not report.exists()


@pytest.mark.timeout(300)
def test_two_registrations_racing_over_http_are_gated_in_version_order(
    server, tiny_data, model_file, model_name, example_png, tmp_path
):
    import threading

    from mlflow.tracking import MlflowClient

    runs = [log_trained_run(server, model_file, example_png, tmp_path / f"run{i}.json") for i in range(2)]
    common = {"store": server, "data": tiny_data, "model_path": model_file, "name": model_name}
    reports, errors, start = [], [], threading.Barrier(2)

    def race(record):
        try:
            start.wait()
            reports.append(register_run(record, **common))
        except Exception as err:
            errors.append(err)

    threads = [threading.Thread(target=race, args=(record,)) for record in runs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors, errors
    second = max(reports, key=lambda r: r["version"])
    assert second["version"] == 2 and second["previous_champion"]["version"] == 1
    assert aliases_of(MlflowClient(server.uri), model_name) == {CHAMPION: 2}


@pytest.fixture
def health_only_server():
    """A server that answers GET /health and leaves every other request hanging (a wedged tracking server
    behind a health check)."""
    import http.server
    import threading

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            if self.path.rstrip("/") == "/health":
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")
            else:
                time.sleep(120)

        do_POST = do_GET

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()


@pytest.mark.timeout(120)
@pytest.mark.parametrize("stage", ["train", "tune"])
def test_the_train_and_tune_stages_fail_in_seconds_against_a_server_that_answers_only_health(
    health_only_server, tmp_path, monkeypatch, stage
):
    params_path = write_params(tmp_path)
    params = yaml.safe_load(params_path.read_text())
    params["tracking"]["uri"] = health_only_server
    params["register"]["http_timeout"] = 1
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    (tmp_path / "applied.yaml").write_text("{}\n")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    for variable in ("MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"):
        monkeypatch.delenv(variable, raising=False)
    paths = ["--data", "d", "--features", "f", "--storage", str(tmp_path / "ray")]
    if stage == "train":
        paths += ["--model", str(tmp_path / "model.pt"), "--run", str(tmp_path / "r"), "--history", "h"]
        paths += ["--tuned", str(tmp_path / "applied.yaml")]
    else:
        paths += ["--best", str(tmp_path / "best.yaml"), "--trials", str(tmp_path / "trials.csv")]
    started = time.monotonic()
    with pytest.raises(SystemExit, match="answers /health, not its API") as info:
        run_stage(stage, *paths, "--params", str(params_path), monkeypatch=monkeypatch)
    assert time.monotonic() - started < 30, "MLflow's own 120 s x 7 retries were used"
    untouched = "`dvc checkout train` brings the last model back" if stage == "train" else "Nothing was searched"
    assert untouched in str(info.value)
