"""A job on a two-node Ray cluster (loopback), tracked on an MLflow server backed by PostgreSQL: the path
of docs/cluster.md from a submitted commit to a registered champion, on this machine."""

import time
import uuid
from pathlib import Path

import pytest

from tests.infra.conftest import (
    latest_checkpoint_state,
    sh,
    submit_job,
    train_worker_nodes,
    wait_for_job,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]


@pytest.fixture(scope="module")
def job(two_node_cluster, tiny_repo, dvc_remote, mlflow_server, tmp_path_factory):
    """`train register` of the tiny repo's commit, submitted with its working dir; storage and data on a
    folder both nodes see (the shared volume of a real cluster)."""
    shared = tmp_path_factory.mktemp("shared")
    submission_id = f"train-{uuid.uuid4().hex[:8]}"
    submitted = submit_job(
        two_node_cluster,
        tiny_repo,
        submission_id,
        ["train", "register"],
        COMIC_STORAGE_PATH=str(shared / "ray"),
        COMIC_DATA_ROOT=str(shared / "data"),
        DVC_REMOTE_URL=str(dvc_remote),
        MLFLOW_TRACKING_URI=mlflow_server,
    )
    info = wait_for_job(two_node_cluster, submission_id, timeout=300)
    return {
        "info": info,
        "shared": shared,
        "seconds": time.time() - submitted,
        "commit": sh("git", "rev-parse", "HEAD", cwd=tiny_repo).strip(),
        "repo": tiny_repo,
    }


def test_a_submitted_job_trains_with_workers_on_both_nodes_and_leaves_a_readable_shared_checkpoint(
    two_node_cluster, job
):
    nodes = {node["node_id"] for node in two_node_cluster.alive_nodes()}
    assert len(nodes) == 2
    assert set(train_worker_nodes(two_node_cluster)) == nodes, "the two DDP workers must run on different nodes"
    head = next(node["node_id"] for node in two_node_cluster.alive_nodes() if node["is_head_node"])
    assert job["info"]["driver_node_id"] == head, "the job's driver runs on the head"

    state = latest_checkpoint_state(job["shared"] / "ray")
    assert [row["epoch"] for row in state["progress"]["history"]] == [0, 1]
    assert {"model", "optimizer", "scheduler", "objective", "rng"} <= set(state)
    assert len(state["rng"]) == 2, "one RNG state per rank"
    # The data the workers read: the commit's version, copied once to the shared data root; beside it,
    # the job's features folder (the trunk learns here, so it only says that there are none).
    data_dir, features = data_version_dir(job), job["shared"] / "data" / "features"
    lock = (job["repo"] / "dvc.lock").read_text()
    assert data_dir.name == "plt" and all(md5 in lock for md5 in data_dir.parent.name.split("+"))
    assert (data_dir.parent / "images").is_dir(), "the image store the label tables point into"
    (job_features,) = features.iterdir()
    assert "freeze_backbone is false" in (job_features / "meta.json").read_text()


def data_version_dir(job) -> Path:
    (version,) = [p for p in (job["shared"] / "data").iterdir() if p.name != "features"]
    return version / "plt"


def test_train_and_register_track_to_the_postgresql_server_and_the_champion_alias_resolves(
    job, mlflow_server, postgres
):
    import mlflow
    import pandas as pd
    import psycopg
    from mlflow.tracking import MlflowClient

    from comic.tracking import mlflow_uri

    client = MlflowClient(tracking_uri=mlflow_server)
    champion = client.get_model_version_by_alias("comic", "champion")
    run = client.get_run(champion.run_id)
    assert run.data.tags["git_commit"] == job["commit"], "the run names the commit the job ran"
    lock = (job["repo"] / "dvc.lock").read_text()
    assert all(md5 in lock for md5 in run.data.tags["dvc_data_version"].split("+"))
    assert run.data.metrics["best/val_mAP_smoothed"] >= 0
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [m.step for m in history] == [0, 1], "rank 0 mirrored each epoch to the server"

    # The artifact store serves the model over HTTP: it loads and predicts on an encoded image.
    with mlflow_uri(mlflow_server):
        model = mlflow.pyfunc.load_model("models:/comic@champion")
    from comic.data.dataset import MultiLabelDataset

    image = MultiLabelDataset(data_version_dir(job), "test", transform=None).image_bytes(0)
    import base64

    out = model.predict(pd.DataFrame({"image": [base64.b64encode(image).decode()]}))
    assert "labels" in out and len(out) == 1

    # What the server stored went to PostgreSQL, not to a fallback store.
    with psycopg.connect(postgres) as connection, connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM runs WHERE run_uuid = %s", (run.info.run_id,))
        assert cursor.fetchone()[0] == 1
