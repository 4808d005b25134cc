"""What the registry can and cannot make comic do: no logged code runs in `comic predict`, the gate
promotes exactly the file it scored, and a dead registration never blocks the next one."""

import random
import socket
import subprocess
import threading
import time

import pytest
import torch

from comic.cli import main
from comic.files import file_sha256
from comic.registry import ABANDONED, CHAMPION, REJECTED, RegistryError, download_verified_model_file
from comic.tracking import RunRecord
from tests.registry.conftest import METRICS, aliases_of, log_trained_run, register_run

EVIL = """
import pathlib
import mlflow.models
import mlflow.pyfunc

pathlib.Path({marker!r}).write_text("logged code ran")


class Evil(mlflow.pyfunc.PythonModel):
    def predict(self, context, model_input, params=None):
        return model_input


mlflow.models.set_model(Evil())
"""


def client_for(store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(store.uri)


def log_evil_model(store, tmp_path, marker):
    """A models-from-code pyfunc whose code writes `marker` when it is loaded (anyone with write access to
    the registry could log one)."""
    import mlflow

    from comic.tracking import mlflow_uri

    source = tmp_path / "evil.py"
    source.write_text(EVIL.format(marker=str(marker)))
    with mlflow_uri(store.uri), mlflow.start_run(experiment_id=store.experiment_id) as run:
        info = mlflow.pyfunc.log_model(name="model", python_model=str(source), pip_requirements=[])
    marker.unlink(missing_ok=True)  # logging ran it once; what matters is what loading does
    return run.info.run_id, info


@pytest.mark.timeout(240)
def test_predict_from_the_registry_never_runs_code_logged_there(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path, capsys
):
    record = log_trained_run(sqlite_store, model_file, example_png, tmp_path / "run.json")
    register_run(record, store=sqlite_store, data=tiny_data, model_path=model_file, name=model_name)
    marker = tmp_path / "ran"
    run_id, info = log_evil_model(sqlite_store, tmp_path, marker)
    client = client_for(sqlite_store)
    evil = client.create_model_version(model_name, info.artifact_path, run_id, model_id=info.model_id)
    client.set_registered_model_alias(model_name, CHAMPION, evil.version)  # one call moves the alias
    output = tmp_path / "preds.jsonl"
    args = ["predict", "--model", f"models:/{model_name}@champion", "--input", str(tiny_data / "test.parquet")]
    with pytest.raises(SystemExit) as info_exit:
        main([*args, "--output", str(output), "--tracking-uri", sqlite_store.uri])
    assert info_exit.value.code == 2 and "no model_sha256 tag" in capsys.readouterr().err
    assert not marker.exists() and not output.exists()

    # A version whose tag is right but whose artifact was swapped afterwards is refused too.
    client.set_model_version_tag(model_name, evil.version, "model_sha256", file_sha256(model_file))
    with pytest.raises(SystemExit):
        main([*args, "--output", str(output), "--tracking-uri", sqlite_store.uri])
    assert "not a comic pyfunc" in capsys.readouterr().err and not marker.exists()


def negated(model_file, path):
    """The same model with its classifier negated: it ranks the test split the other way round."""
    bundle = torch.load(model_file, weights_only=True)
    bundle["weights"] = {k: -v if k.startswith("classifier") else v for k, v in bundle["weights"].items()}
    torch.save(bundle, path)
    return path


@pytest.mark.timeout(600)
def test_no_sequence_of_registrations_with_mismatched_files_moves_the_champion_to_a_worse_model(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path
):
    from comic.evaluation import score_model_file

    other = negated(model_file, tmp_path / "other.pt")
    scores = {path: score_model_file(path, tiny_data, METRICS)[0]["mAP"] for path in (model_file, other)}
    good, bad = sorted(scores, key=scores.get, reverse=True)
    assert scores[good] > scores[bad]
    logged = {
        path: log_trained_run(sqlite_store, path, example_png, tmp_path / f"{path.stem}.json") for path in (good, bad)
    }
    client = client_for(sqlite_store)
    champion_scores = []
    actions = ["honest_bad", "swap", "honest_good", "swap", "honest_bad", "swap"]
    random.Random(0).shuffle(actions)
    for i, action in enumerate(actions):
        if action == "swap":  # the run record names the worse logged model, the scored file is the good one
            record = RunRecord(sqlite_store.uri, logged[bad].run_id, logged[bad].model_uri, file_sha256(good))
            path = good
        else:
            path = good if action == "honest_good" else bad
            record = logged[path]
        try:
            register_run(record, store=sqlite_store, data=tiny_data, model_path=path, name=model_name)
        except RegistryError as err:
            assert action == "swap" and "rejected" in str(err)
        if CHAMPION in aliases_of(client, model_name):
            version = aliases_of(client, model_name)[CHAMPION]
            registered = download_verified_model_file(
                client, sqlite_store.uri, model_name, version, str(tmp_path / f"c{i}")
            )
            champion_scores.append(score_model_file(registered, tiny_data, METRICS)[0]["mAP"])
    assert champion_scores == sorted(champion_scores), f"the champion got worse: {champion_scores} ({actions})"
    rejected = [v for v in client.search_model_versions(f"name='{model_name}'") if v.tags["gate"] == REJECTED]
    assert any("another logged model" in v.tags.get("gate_reason", "") for v in rejected)


@pytest.mark.timeout(240)
def test_a_pending_version_of_a_dead_registration_is_abandoned_and_a_live_one_is_waited_for_out_loud(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path, monkeypatch, capsys
):
    runs = [log_trained_run(sqlite_store, model_file, example_png, tmp_path / f"r{i}.json") for i in range(4)]
    client = client_for(sqlite_store)
    client.create_registered_model(model_name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store.uri)  # MLflow resolves `models:/m-...` sources globally
    common = {"store": sqlite_store, "data": tiny_data, "model_path": model_file, "name": model_name}
    host = socket.gethostname()

    def pending(record, pid):
        tags = {"gate": "pending", "gate_owner": f"{host}:{pid}"}
        return client.create_model_version(model_name, record.model_uri, record.run_id, tags=tags).version

    dead = subprocess.Popen(["true"])
    dead.wait()
    pending(runs[0], dead.pid)
    started = time.monotonic()
    assert register_run(runs[1], **common)["version"] == 2
    assert time.monotonic() - started < 60
    first = client.get_model_version(model_name, "1")
    assert first.tags["gate"] == ABANDONED and "is gone" in first.tags["gate_reason"]

    alive = subprocess.Popen(["sleep", "60"])
    assert int(pending(runs[2], alive.pid)) == 3
    threading.Timer(3.0, alive.kill).start()  # the registration gating version 3 dies while version 4 waits
    report = register_run(runs[3], **common)
    alive.wait()
    assert report["version"] == 4 and report["alias"] == CHAMPION
    assert "version 4 waits for the gate of version 3" in capsys.readouterr().out
    assert client.get_model_version(model_name, "3").tags["gate"] == ABANDONED
