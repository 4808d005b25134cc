"""MLflow runs end with their real status (FINISHED, FAILED, KILLED on Ctrl-C), Tune's child runs too:
none stays RUNNING in the UI after its process is gone."""

import pytest
from mlflow.tracking import MlflowClient

from comic.tracking import run_status
from comic.tune import _end_child_runs


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    uri = f"sqlite:///{tmp_path_factory.mktemp('mlflow') / 'mlflow.db'}"
    client = MlflowClient(uri)
    return uri, client, client.create_experiment("status")


@pytest.mark.parametrize(
    "raised, status", [(None, "FINISHED"), (ValueError("bad value"), "FAILED"), (KeyboardInterrupt(), "KILLED")]
)
def test_a_run_ends_with_the_status_of_the_block_it_wraps(store, raised, status):
    uri, client, experiment = store
    run_id = client.create_run(experiment).info.run_id
    if raised is None:
        with run_status(uri, run_id):
            pass
    else:
        with pytest.raises(type(raised)), run_status(uri, run_id):
            raise raised
    assert client.get_run(run_id).info.status == status


def test_each_tune_child_run_ends_with_its_trial_s_status(store):
    uri, client, experiment = store
    parent = client.create_run(experiment).info.run_id
    child = {
        trial: client.create_run(experiment, tags={"mlflow.parentRunId": parent, "trial_id": trial}).info.run_id
        for trial in ("a", "b", "c")
    }
    trials = [{"trial": t, "status": s} for t, s in (("a", "ok"), ("b", "error"), ("c", "interrupted"))]
    _end_child_runs((uri, parent, experiment), trials)
    status = {trial: client.get_run(run_id).info.status for trial, run_id in child.items()}
    assert status == {"a": "FINISHED", "b": "FAILED", "c": "KILLED"}
    assert client.get_run(parent).info.status == "RUNNING"  # the parent is run_status's to end
