"""Ray Train: 2 CPU workers (gloo) train, a killed worker is replaced and the run resumes."""

import json

import pytest

from comic.config import Params, override

ray = pytest.importorskip("ray")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_a_worker_killed_mid_run_is_restarted_from_the_last_checkpoint_and_the_run_completes(
    tiny_data, tmp_path, monkeypatch
):
    from comic import checkpoint
    from comic.faults import VARIABLE
    from comic.ray_train import fit, init_ray

    params = override(
        Params(), {"data.image_size": 36, "train.epochs": 3, "train.batch_size": 16, "train.num_workers": 2}
    )
    marker = tmp_path / "crashed"
    monkeypatch.setenv(VARIABLE, json.dumps({"worker_exit_after_epoch": [1, str(marker)]}))  # before Ray starts
    init_ray(num_cpus=2)
    try:
        result = fit(params, tiny_data, storage_path=tmp_path / "ray", name="crash")
    finally:
        ray.shutdown()
    assert marker.exists(), "the fault was not injected"
    assert result.error is None
    assert result.metrics["epoch"] == 2
    with result.checkpoint.as_directory() as folder:
        progress = checkpoint.load(folder)[0][checkpoint.PROGRESS]
    assert [row["epoch"] for row in progress["history"]] == [0, 1, 2]
    resumed_at = progress["resumed_at"]
    assert resumed_at and resumed_at[0] >= 1, "the restarted workers must resume from a checkpoint"


@pytest.mark.timeout(120)
def test_a_worker_uses_one_thread_per_assigned_cpu_whatever_the_driver_exported(monkeypatch):
    from comic.ray_train import init_ray, use_assigned_cpus

    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # exported by the user's shell; inherited by Ray's workers
    init_ray(num_cpus=2)
    try:

        @ray.remote(num_cpus=1)
        def threads() -> tuple[str, int, str]:
            import os

            inherited = os.environ["OMP_NUM_THREADS"]
            return inherited, use_assigned_cpus(), os.environ["OMP_NUM_THREADS"]

        assert ray.get(threads.remote()) == ("2", 1, "1")
    finally:
        ray.shutdown()


def test_each_rank_restores_from_a_folder_no_other_rank_writes_and_a_downloaded_copy_is_deleted(tmp_path):
    import pyarrow.fs

    from comic.ray_train import private_directory

    (tmp_path / "ckpt").mkdir()
    (tmp_path / "ckpt" / "state.pt").write_bytes(b"weights")
    local = ray.train.Checkpoint(str(tmp_path / "ckpt"))
    with private_directory(local) as folder:
        assert folder == tmp_path / "ckpt"  # read in place: nothing is copied over it
    assert (tmp_path / "ckpt" / "state.pt").is_file()
    remote_like = ray.train.Checkpoint(
        "ckpt", filesystem=pyarrow.fs.SubTreeFileSystem(str(tmp_path), pyarrow.fs.LocalFileSystem())
    )
    with private_directory(remote_like) as first, private_directory(remote_like) as second:
        assert first != second
        assert (first / "state.pt").read_bytes() == (second / "state.pt").read_bytes() == b"weights"
    assert not first.exists() and not second.exists()  # the downloaded copies do not pile up in /tmp


def test_a_run_is_named_by_its_params_data_and_code_so_a_code_change_never_resumes_an_old_run(tmp_path, monkeypatch):
    from comic import ray_train

    (tmp_path / "sub").mkdir()
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "sub" / "b.py").write_text("y = 2\n")
    before = ray_train.code_digest(tmp_path)
    (tmp_path / "sub" / "b.py").write_text("y = 3\n")
    assert ray_train.code_digest(tmp_path) != before

    params = Params()
    name = ray_train.run_name(params, "v1")
    assert name == ray_train.run_name(params, "v1")  # a rerun after a crash finds its run and resumes
    assert name != ray_train.run_name(params, "v2")
    assert name != ray_train.run_name(override(params, {"train.lr": 0.002}), "v1")
    monkeypatch.setattr(ray_train, "code_digest", lambda: "other code")
    assert name != ray_train.run_name(params, "v1")
