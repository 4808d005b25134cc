"""A Ray Train run as on a cluster with S3: two workers read the dataset from s3:// and Ray Train keeps its
checkpoints on s3://, against moto's S3 server on 127.0.0.1; a second run of the same name resumes there."""

import pytest

from comic.config import Params, override
from tests.s3 import BUCKET, s3_endpoint, s3_env, upload_dataset  # noqa: F401

ray = pytest.importorskip("ray")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_two_workers_train_from_s3_keep_checkpoints_on_s3_and_resume_from_them(tiny_data, s3_env):  # noqa: F811
    import pyarrow.fs as pafs

    from comic import checkpoint
    from comic.data.location import filesystem
    from comic.ray_train import fit, init_ray, private_directory

    data = upload_dataset(tiny_data, "tiny")
    settings = {"data.image_size": 36, "train.batch_size": 16, "train.num_workers": 2}
    init_ray(num_cpus=2)  # after s3_env: the workers inherit the endpoint and credentials
    try:
        first = fit(override(Params(), {**settings, "train.epochs": 1}), data, storage_path=f"s3://{BUCKET}/ray",
                    name="s3-run")  # fmt: skip
        assert first.error is None, first.error
        second = fit(override(Params(), {**settings, "train.epochs": 2}), data, storage_path=f"s3://{BUCKET}/ray",
                     name="s3-run")  # fmt: skip
        assert second.error is None, second.error
        with private_directory(second.checkpoint) as folder:
            progress = checkpoint.load(folder)[0][checkpoint.PROGRESS]
    finally:
        ray.shutdown()
    assert [row["epoch"] for row in progress["history"]] == [0, 1]
    assert progress["resumed_at"] == [1], "the second run continued from the first's checkpoint on S3"
    s3, _ = filesystem(f"s3://{BUCKET}")
    stored = s3.get_file_info(pafs.FileSelector(f"{BUCKET}/ray/s3-run", recursive=True))
    assert any(info.base_name == checkpoint.STATE_FILE for info in stored)
