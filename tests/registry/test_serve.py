"""`mlflow models serve -m models:/<name>@champion --env-manager local` answers a scoring request offline."""

import base64
import os
import subprocess
import sys
from pathlib import Path

import pytest

from comic.export import load_model_file
from comic.serving import MAX_ROWS
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
    bin_dir = str(Path(sys.executable).parent)  # the scoring server runs `uvicorn` from PATH
    env = os.environ | {"MLFLOW_TRACKING_URI": sqlite_store.uri, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    command = [f"{bin_dir}/mlflow", "models", "serve", "-m", f"models:/{model_name}@champion"]
    command += ["--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
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
        for rows, message in [
            ([images[0], "%%% not base64"], "row 1: `image` is text but not base64"),
            ([images[0], 10**15], "row 1: `image` must be base64 text"),
            ([huge], "row 0: image of 400.0 MP exceeds the limit"),
            ([images[0]] * (MAX_ROWS + 1), f"at most {MAX_ROWS} rows"),
        ]:
            bad = {"dataframe_split": {"columns": ["image"], "data": [[row] for row in rows]}}
            response = requests.post(f"http://127.0.0.1:{port}/invocations", json=bad, timeout=60)
            assert response.status_code == 400 and message in response.json()["message"], response.text
            assert "stack_trace" not in response.json() and "Traceback" not in response.text
        assert "refused a scoring request" in log.read_text()  # the details stay in the server's log
    finally:
        stop(process)
