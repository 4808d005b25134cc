"""A worker node dies mid-job (every process of it SIGKILLed, as when its machine goes away): Ray Train
restarts the worker group once a replacement node joins, resumes from the checkpoint on shared storage, and
the job finishes."""

import time
import uuid

import pytest

from tests.infra.conftest import (
    latest_checkpoint_state,
    make_tiny_repo,
    submit_job,
    train_worker_nodes,
    wait_for_job,
)

EPOCHS = 12  # ~1 s each here: long enough to kill the node after the first checkpoint, before the last
REPORT_POLL_S = 3


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_worker_node_killed_mid_job_is_replaced_and_training_resumes_from_the_shared_checkpoint(
    two_node_cluster, dvc_remote, mlflow_server, tmp_path
):
    cluster = two_node_cluster
    repo = make_tiny_repo(tmp_path, dvc_remote, epochs=EPOCHS)
    storage = tmp_path / "shared" / "ray"
    submission_id = f"kill-{uuid.uuid4().hex[:8]}"
    submit_job(
        cluster,
        repo,
        submission_id,
        ["train"],
        COMIC_STORAGE_PATH=str(storage),
        COMIC_DATA_ROOT=str(tmp_path / "shared" / "data"),
        DVC_REMOTE_URL=str(dvc_remote),
        MLFLOW_TRACKING_URI=mlflow_server,
    )

    deadline = time.monotonic() + 240
    while not list(storage.glob("*/checkpoint_*")):
        status = cluster.api(f"/api/jobs/{submission_id}")["status"]
        assert status in ("PENDING", "RUNNING"), f"job {status} before its first checkpoint"
        assert time.monotonic() < deadline, "no checkpoint within 240 s"
        time.sleep(0.5)
    # Ray Train's controller collects reports by polling the workers (about every 2 s): give it the time to
    # register this checkpoint, so that the kill lands after a checkpoint the run knows (`resumed_at` >= 1).
    time.sleep(REPORT_POLL_S)
    worker = next(node for node in cluster.nodes if node.name != "head")
    nodes_before = {node["node_ip"]: node["node_id"] for node in cluster.alive_nodes()}
    cluster.kill(worker)
    replacement = cluster.add_worker(1, name="replacement")
    assert cluster.api(f"/api/jobs/{submission_id}")["status"] == "RUNNING", "the kill must land mid-job"

    wait_for_job(cluster, submission_id, timeout=300)
    state = latest_checkpoint_state(storage)
    assert [row["epoch"] for row in state["progress"]["history"]] == list(range(EPOCHS))
    resumed_at = state["progress"]["resumed_at"]
    assert resumed_at and 1 <= resumed_at[0] < EPOCHS, f"must resume mid-run from a checkpoint, got {resumed_at}"

    nodes_after = {node["node_ip"]: node["node_id"] for node in cluster.alive_nodes()}
    assert worker.ip not in nodes_after, "the killed node is dead"
    placements = set(train_worker_nodes(cluster))
    assert nodes_before[worker.ip] in placements, "the first worker group used the killed node"
    assert nodes_after[replacement.ip] in placements, "the restarted group runs on the replacement node"
