"""What the registry can and cannot make comic do: no logged code runs in `comic predict`, the gate
promotes exactly the files the train stage logged (weights and code), a champion that cannot be verified
stops the stage with the command that replaces it, and a dead registration never blocks the next one."""

import os
import random
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from comic.cli import main
from comic.files import file_sha256
from comic.registry import (
    ABANDONED,
    CHALLENGER,
    CHAMPION,
    REJECTED,
    RegistryError,
    UnverifiableChampion,
    download_verified_model_file,
)
from comic.serving import ARTIFACT_TAG, CODE_DIR, ENTRY_POINT, artifact_sha256
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


def log_evil_model(store, tmp_path, marker, **kwargs):
    """A models-from-code pyfunc whose code writes `marker` when it is loaded (anyone with write access to
    the registry could log one); `kwargs` go to `log_model` (e.g. comic's model file as its artifact)."""
    import mlflow

    from comic.tracking import mlflow_uri

    source = tmp_path / "evil.py"
    source.write_text(EVIL.format(marker=str(marker)))
    kwargs = {"python_model": str(source), "pip_requirements": [], **kwargs}
    with mlflow_uri(store.uri), mlflow.start_run(experiment_id=store.experiment_id) as run:
        info = mlflow.pyfunc.log_model(name="model", **kwargs)
    marker.unlink(missing_ok=True)  # logging ran it once; what matters is what loading does
    return run.info.run_id, info


def tag_like_the_train_stage(store, info, tmp_path) -> None:
    """Tag a logged model with the sha256 of its files, as the train stage does (anyone can set tags)."""
    import mlflow

    location = client_for(store).get_logged_model(info.model_id).artifact_location
    local = mlflow.artifacts.download_artifacts(
        artifact_uri=location, dst_path=str(tmp_path / info.model_id), tracking_uri=store.uri
    )
    client_for(store).set_logged_model_tags(info.model_id, {ARTIFACT_TAG: artifact_sha256(local)})


def local_artifacts(client, name, version) -> Path:
    """The folder of a registered version in the session's file:// artifact store."""
    return Path(client.get_model_version_download_uri(name, str(version)).removeprefix("file://"))


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
    assert info_exit.value.code == 2 and "no model_sha256 and no artifact_sha256 tag" in capsys.readouterr().err
    assert not marker.exists() and not output.exists()

    # Tags are writable by anyone: with both hash tags set to match, it still is no comic model file.
    client.set_model_version_tag(model_name, evil.version, "model_sha256", file_sha256(model_file))
    local = local_artifacts(client, model_name, evil.version)
    client.set_model_version_tag(model_name, evil.version, "artifact_sha256", artifact_sha256(local))
    with pytest.raises(SystemExit):
        main([*args, "--output", str(output), "--tracking-uri", sqlite_store.uri])
    assert "not a comic pyfunc" in capsys.readouterr().err and not marker.exists()


@pytest.mark.timeout(300)
def test_a_run_record_naming_a_pyfunc_with_the_good_model_file_and_foreign_code_is_rejected(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path
):
    honest = log_trained_run(sqlite_store, model_file, example_png, tmp_path / "run.json")
    assert register_run(honest, store=sqlite_store, data=tiny_data, model_path=model_file, name=model_name)["promoted"]
    client = client_for(sqlite_store)
    marker = tmp_path / "ran"
    # 1. someone else's python_model beside comic's model file; 2. comic's entry point with a changed
    # comic/serving.py in its code. Each is tagged with the hash of its own files, as the train stage does.
    changed = tmp_path / "changed" / "comic"
    shutil.copytree(CODE_DIR, changed, ignore=shutil.ignore_patterns("__pycache__"))
    with (changed / "serving.py").open("a") as handle:
        handle.write(f"\nimport pathlib\npathlib.Path({str(marker)!r}).write_text('logged code ran')\n")
    plants = {
        "is not comic's entry point": {},
        "code/comic/serving.py differs from this checkout's comic/serving.py": {
            "python_model": str(ENTRY_POINT),
            "code_paths": [str(changed)],
        },
    }
    for expected, kwargs in plants.items():
        run_id, info = log_evil_model(sqlite_store, tmp_path, marker, artifacts={"model": str(model_file)}, **kwargs)
        tag_like_the_train_stage(sqlite_store, info, tmp_path)
        record = RunRecord(sqlite_store.uri, run_id, info.model_uri, file_sha256(model_file))
        with pytest.raises(RegistryError, match="rejected") as err:
            register_run(record, store=sqlite_store, data=tiny_data, model_path=model_file, name=model_name)
        assert expected in str(err.value) and "rerun the train stage" in str(err.value)
        assert aliases_of(client, model_name)[CHAMPION] == 1 and not marker.exists()
    versions = client.search_model_versions(f"name='{model_name}'")
    assert sorted(v.tags["gate"] for v in versions) == ["promoted", "rejected", "rejected"]


@pytest.mark.timeout(300)
def test_files_changed_in_the_store_are_refused_by_the_gate_and_by_predict(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path, capsys
):
    client = client_for(sqlite_store)
    common = {"store": sqlite_store, "data": tiny_data, "model_path": model_file, "name": model_name}
    # Logged by the train stage, then its requirements changed in the store before registration.
    record = log_trained_run(sqlite_store, model_file, example_png, tmp_path / "r0.json")
    logged = Path(client.get_logged_model(record.model_uri.removeprefix("models:/")).artifact_location[7:])
    with (logged / "requirements.txt").open("a") as handle:
        handle.write("evil-package==1.0\n")
    with pytest.raises(RegistryError, match="changed in the store since"):
        register_run(record, **common)

    # Registered and verified, then a code file of the champion changed: predict refuses it.
    record = log_trained_run(sqlite_store, model_file, example_png, tmp_path / "r1.json")
    version = register_run(record, **common)["version"]
    with (local_artifacts(client, model_name, version) / "code" / "comic" / "serving.py").open("a") as handle:
        handle.write("\n# changed\n")
    output = tmp_path / "preds.jsonl"
    args = ["predict", "--model", f"models:/{model_name}@champion", "--input", str(tiny_data / "test.parquet")]
    with pytest.raises(SystemExit) as info:
        main([*args, "--output", str(output), "--tracking-uri", sqlite_store.uri])
    assert info.value.code == 2 and "someone changed the registry's artifacts" in capsys.readouterr().err
    assert not output.exists()


@pytest.mark.timeout(300)
def test_a_champion_that_cannot_be_verified_stops_the_stage_with_the_command_that_replaces_it(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path, monkeypatch
):
    import yaml

    from tests.data.conftest import run_stage, write_params

    client = client_for(sqlite_store)
    client.create_registered_model(model_name)
    run_id, info = log_evil_model(sqlite_store, tmp_path, tmp_path / "ran")
    planted = client.create_model_version(model_name, info.artifact_path, run_id, model_id=info.model_id)
    client.set_registered_model_alias(model_name, CHAMPION, planted.version)  # without comic's tags

    record = log_trained_run(sqlite_store, model_file, example_png, tmp_path / "run.json")
    params_path = write_params(tmp_path)
    params = yaml.safe_load(params_path.read_text())
    params["tracking"]["uri"] = sqlite_store.uri
    params["register"]["model_name"] = model_name
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    args = ["--data", str(tiny_data), "--model", str(model_file), "--run", str(tmp_path / "run.json")]
    report = tmp_path / "registry.json"
    with pytest.raises(SystemExit) as stopped:  # the stage exits non-zero: CI and `dvc repro` go red
        run_stage("register", *args, "--report", str(report), "--params", str(params_path), monkeypatch=monkeypatch)
    message = str(stopped.value.code)
    assert f"champion version {planted.version} cannot be verified" in message and "no model_sha256" in message
    assert aliases_of(client, model_name) == {CHAMPION: 1, CHALLENGER: 2}
    assert client.get_model_version(model_name, "2").tags["gate"] == REJECTED and not report.exists()

    command = message.split("run\n  ", 1)[1].split("\n", 1)[0]
    env = os.environ | {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    subprocess.run(command, shell=True, check=True, env=env, timeout=120)
    assert aliases_of(client, model_name)[CHAMPION] == 2
    assert register_run(record, store=sqlite_store, data=tiny_data, model_path=model_file, name=model_name)[
        "already_champion"
    ]
    with pytest.raises(UnverifiableChampion):  # the in-process form of the same refusal
        client.set_registered_model_alias(model_name, CHAMPION, planted.version)
        register_run(record, store=sqlite_store, data=tiny_data, model_path=model_file, name=model_name)


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
