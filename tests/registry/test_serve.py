"""`comic serve --model models:/<name>@champion` answers a scoring request offline, with comic's own code
and the verified model file; a version that cannot be verified is refused before any server starts."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from comic.cli import main
from comic.export import load_model_file
from comic.serving import MAX_REQUEST_PIXELS, MAX_ROWS
from tests.registry.conftest import free_port, log_trained_run, register_run, stop, wait_for_http
from tests.test_images import png_header


@pytest.mark.timeout(300)
def test_a_scoring_request_to_the_served_champion_returns_a_probability_for_every_class(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path
):
    import requests

    record = log_trained_run(sqlite_store, model_file, example_png, tmp_path / "run.json")
    register_run(record, store=sqlite_store, data=tiny_data, model_path=model_file, name=model_name)
    names = load_model_file(model_file)[1]["classes"]["names"]

    port, log = free_port(), tmp_path / "serve.log"
    env = os.environ | {"MLFLOW_TRACKING_URI": sqlite_store.uri}
    command = [str(Path(sys.executable).with_name("comic")), "serve", "--model", f"models:/{model_name}@champion"]
    command += ["--host", "127.0.0.1", "--port", str(port)]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
    try:
        wait_for_http(f"http://127.0.0.1:{port}/ping", process, timeout=180, log=log)
        images = [base64.b64encode(example_png).decode()] * 2
        request = {"dataframe_split": {"columns": ["image"], "data": [[image] for image in images]}}
        response = requests.post(f"http://127.0.0.1:{port}/invocations", json=request, timeout=60)
        assert response.status_code == 200, response.text
        predictions = response.json()["predictions"]
        assert len(predictions) == 2
        for row in predictions:
            assert set(names) <= set(row) and all(0.0 <= row[n] <= 1.0 for n in names)
            assert set(row["labels"]) <= set(names)
        huge = base64.b64encode(png_header(20000, 20000)).decode()
        big = base64.b64encode(png_header(6000, 6000)).decode()  # 36 MP: each under the limit, six over the budget
        for rows, message in [
            ([images[0], "%%% not base64"], "row 1: `image` is text but not base64"),
            ([images[0], 10**15], "row 1: `image` must be base64 text"),
            ([huge], "row 0: image of 400.0 MP exceeds the limit"),
            ([images[0]] * (MAX_ROWS + 1), f"at most {MAX_ROWS} rows"),
            ([big] * 6, f"more than the {MAX_REQUEST_PIXELS / 1e6:.0f} MP a request may hold"),
        ]:
            bad = {"dataframe_split": {"columns": ["image"], "data": [[row] for row in rows]}}
            response = requests.post(f"http://127.0.0.1:{port}/invocations", json=bad, timeout=60)
            assert response.status_code == 400 and message in response.json()["message"], response.text
            assert "stack_trace" not in response.json() and "Traceback" not in response.text
        assert "refused a scoring request" in log.read_text()  # the details stay in the server's log
    finally:
        stop(process)


def test_serve_refuses_a_champion_that_comic_did_not_verify_before_starting_a_server(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path, capsys
):
    from mlflow.tracking import MlflowClient

    record = log_trained_run(sqlite_store, model_file, example_png, tmp_path / "run.json")
    register_run(record, store=sqlite_store, data=tiny_data, model_path=model_file, name=model_name)
    client = MlflowClient(sqlite_store.uri)
    client.delete_model_version_tag(model_name, "1", "artifact_sha256")
    args = ["serve", "--model", f"models:/{model_name}@champion", "--tracking-uri", sqlite_store.uri]
    with pytest.raises(SystemExit) as info:
        main([*args, "--port", "1"])  # refused before anything listens
    assert info.value.code == 2 and "has no artifact_sha256 tag" in capsys.readouterr().err
