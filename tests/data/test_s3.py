"""Datasets on S3, against a real S3 API: moto's server on 127.0.0.1, started here. A rank reads the label
tables and then each image with one range request, in the main process and in loader processes."""

import time

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from comic.data.dataset import MultiLabelDataset
from comic.data.store import load_classes, read_split
from comic.data.transforms import InputSpec, build_transform
from tests.s3 import BUCKET, free_port, s3_endpoint, s3_env, upload_dataset  # noqa: F401

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def s3_data(s3_env, plt_dir):  # noqa: F811
    return upload_dataset(plt_dir, "data")


def test_a_split_on_s3_reads_the_same_labels_and_images_as_on_local_disk(s3_data, plt_dir):
    local, remote = read_split(plt_dir, "test"), read_split(s3_data, "test")
    assert remote.ids == local.ids and remote.image_store == f"s3://{BUCKET}/data/images"
    np.testing.assert_array_equal(remote.labels_full, local.labels_full)
    assert load_classes(s3_data) == load_classes(plt_dir)
    transform = build_transform(False, InputSpec(36))
    on_disk, on_s3 = MultiLabelDataset(plt_dir, "test", transform), MultiLabelDataset(s3_data, "test", transform)
    for i in (0, len(on_s3) // 2, len(on_s3) - 1):
        assert on_s3.image_bytes(i) == on_disk.image_bytes(i)
        assert torch.equal(on_s3[i]["image"], on_disk[i]["image"])


def test_loader_processes_read_from_s3_each_with_its_own_connection(s3_data, plt_dir):
    transform = build_transform(False, InputSpec(36))
    batches = [
        next(iter(DataLoader(MultiLabelDataset(d, "val", transform), batch_size=16, num_workers=workers)))
        for d, workers in ((plt_dir, 0), (s3_data, 2))
    ]
    assert torch.equal(batches[0]["image"], batches[1]["image"])


def test_an_unreachable_endpoint_fails_in_seconds_naming_the_uri_and_the_endpoint(monkeypatch):
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")  # nothing listens there
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    started = time.monotonic()
    with pytest.raises(OSError, match=r"s3://nowhere/data/plt/train\.parquet \(endpoint 127\.0\.0\.1:\d+\): cannot"):
        read_split("s3://nowhere/data/plt", "train")
    assert time.monotonic() - started < 30


def test_a_missing_split_on_s3_says_to_build_the_data(s3_data):
    with pytest.raises(FileNotFoundError, match=r"s3://comic-test/data/plt/nope\.parquet: split file not found"):
        read_split(s3_data, "nope")
