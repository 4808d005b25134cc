"""Registration and promotion against a SQLite tracking store: first champion, gate, tags, reruns, races.

The same model file logged in several runs gives equal test mAP: promoted with min_gain 0, challenger
with min_gain 1 (deterministic "better" and "worse" models are tested on the pure gate, test_gate.py).
"""

import json
import threading

import mlflow
import pytest
import yaml

from comic.registry import CHALLENGER, CHAMPION, VERSION_TAGS, RegistryError
from tests.data.conftest import run_stage, write_params
from tests.registry.conftest import aliases_of, log_trained_run, register_run


def client_for(store):
    from mlflow.tracking import MlflowClient

    return MlflowClient(store.uri)


def assert_consistent(client, name, versions):
    """Exactly one champion, on a real version; every version has all of its tags."""
    registered = client.get_registered_model(name)
    found = {v.version: v for v in client.search_model_versions(f"name='{name}'")}
    assert len(found) == versions
    assert str(registered.aliases[CHAMPION]) in {str(v) for v in found}
    for version in found.values():
        missing = [t for t in (*VERSION_TAGS, "test/mAP") if t not in version.tags]
        assert not missing, f"version {version.version} lacks tags {missing}"


@pytest.mark.timeout(240)
def test_the_stage_makes_the_first_model_champion_and_tags_the_version(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path, monkeypatch
):
    record = log_trained_run(sqlite_store, model_file, example_png, tmp_path / "run.json")
    params_path = write_params(tmp_path)
    params = yaml.safe_load(params_path.read_text())
    params["tracking"]["uri"] = sqlite_store.uri
    params["register"]["model_name"] = model_name
    params["metrics"].update(many_threshold=40, few_threshold=10)
    params_path.write_text(yaml.safe_dump(params, sort_keys=False))
    # As in a fresh stage process: no process-wide tracking URI (MLflow's default would be ./mlflow.db).
    mlflow.set_tracking_uri(None)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.chdir(tmp_path)
    report_path = tmp_path / "reports" / "registry.json"

    args = ["--data", str(tiny_data), "--model", str(model_file), "--run", str(tmp_path / "run.json")]
    run_stage("register", *args, "--report", str(report_path), "--params", str(params_path), monkeypatch=monkeypatch)

    report = json.loads(report_path.read_text())
    assert report["promoted"] and report["alias"] == CHAMPION and report["version"] == 1
    assert report["previous_champion"] is None and "first" in report["reasons"][0]
    assert report["run_id"] == record.run_id and 0 <= report["challenger_metrics"]["mAP"] <= 100
    client = client_for(sqlite_store)
    assert_consistent(client, model_name, versions=1)
    version = client.get_model_version_by_alias(model_name, CHAMPION)
    model_id = record.model_uri.removeprefix("models:/")
    assert version.run_id == record.run_id and version.source.endswith(f"/models/{model_id}/artifacts")
    assert version.tags["git_commit"] == "0" * 40 and version.tags["dvc_data_version"] == "tiny.dir"
    assert float(version.tags["test/mAP"]) == pytest.approx(report["challenger_metrics"]["mAP"], abs=1e-4)
    assert not (tmp_path / "mlflow.db").exists()


@pytest.mark.timeout(240)
def test_an_equal_model_is_promoted_with_min_gain_0_and_stays_challenger_with_min_gain_1(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path
):
    runs = [log_trained_run(sqlite_store, model_file, example_png, tmp_path / f"run{i}.json") for i in range(3)]
    common = {"store": sqlite_store, "data": tiny_data, "model_path": model_file, "name": model_name}
    client = client_for(sqlite_store)

    assert register_run(runs[0], **common)["alias"] == CHAMPION
    second = register_run(runs[1], **common, min_gain=1.0)
    assert not second["promoted"] and second["alias"] == CHALLENGER
    assert second["previous_champion"]["version"] == 1
    assert second["previous_champion"]["metrics"] == second["challenger_metrics"]  # same model, same split
    assert "< min_gain 1.00" in second["reasons"][0]
    third = register_run(runs[2], **common, min_gain=0.0)
    assert third["promoted"] and third["version"] == 3
    assert aliases_of(client, model_name) == {CHAMPION: 3, CHALLENGER: 2}

    # Running the stage again reuses the run's version; promoted, it loses the challenger alias.
    again = register_run(runs[1], **common, min_gain=0.0)
    assert not again["new_version"] and again["version"] == 2 and again["promoted"]
    assert aliases_of(client, model_name) == {CHAMPION: 2}
    assert register_run(runs[1], **common)["already_champion"]
    assert_consistent(client, model_name, versions=3)


@pytest.mark.timeout(240)
def test_a_registration_that_fails_before_the_gate_leaves_no_version(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path
):
    record = log_trained_run(sqlite_store, model_file, example_png, tmp_path / "run.json")
    changed = tmp_path / "changed.pt"
    changed.write_bytes(model_file.read_bytes() + b"\0")
    with pytest.raises(RegistryError, match="sha256 mismatch"):
        register_run(record, store=sqlite_store, data=tiny_data, model_path=changed, name=model_name)
    with pytest.raises(FileNotFoundError, match="build the data first"):
        register_run(record, store=sqlite_store, data=tmp_path, model_path=model_file, name=model_name)
    assert client_for(sqlite_store).search_registered_models(f"name='{model_name}'") == []


@pytest.mark.timeout(300)
def test_two_registrations_racing_leave_one_champion_and_fully_tagged_versions(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path
):
    runs = [log_trained_run(sqlite_store, model_file, example_png, tmp_path / f"run{i}.json") for i in range(2)]
    common = {"store": sqlite_store, "data": tiny_data, "model_path": model_file, "name": model_name}
    reports, errors = {}, []
    start = threading.Barrier(2)

    def race(i):
        try:
            start.wait()
            reports[i] = register_run(runs[i], **common)
        except Exception as err:  # reported below with the other thread's outcome
            errors.append(err)

    threads = [threading.Thread(target=race, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=240)
    assert not errors, errors
    client = client_for(sqlite_store)
    assert_consistent(client, model_name, versions=2)
    # Gates run in version order: version 2 was compared with version 1, and (a tie) replaced it.
    first, second = sorted(reports.values(), key=lambda r: r["version"])
    assert first["version"] == 1 and first["previous_champion"] is None
    assert second["version"] == 2 and second["previous_champion"]["version"] == 1 and second["promoted"]
    assert aliases_of(client, model_name) == {CHAMPION: 2}
    assert {v.tags["gate"] for v in client.search_model_versions(f"name='{model_name}'")} == {"promoted"}


@pytest.mark.timeout(240)
def test_a_registration_waits_for_an_earlier_pending_gate_until_it_is_stale(
    tiny_data, model_file, sqlite_store, model_name, example_png, tmp_path, monkeypatch
):
    import time

    import comic.registry

    killed, waiting = (log_trained_run(sqlite_store, model_file, example_png, tmp_path / f"r{i}.json") for i in (0, 1))
    client = client_for(sqlite_store)
    client.create_registered_model(model_name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", sqlite_store.uri)  # MLflow resolves `models:/m-...` sources globally
    client.create_model_version(model_name, killed.model_uri, killed.run_id, tags={"gate": "pending"})
    monkeypatch.setattr(comic.registry, "STALE_PENDING_S", 3)
    started = time.monotonic()
    common = {"store": sqlite_store, "data": tiny_data, "model_path": model_file, "name": model_name}
    report = register_run(waiting, **common)
    assert time.monotonic() - started >= 2  # waited for version 1, then treated it as killed
    assert report["version"] == 2 and report["alias"] == CHAMPION
