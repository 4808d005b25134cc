from types import SimpleNamespace

import numpy as np
import pytest
import torch

from comic.data.dataset import MultiLabelDataset
from comic.data.store import load_classes, read_split
from comic.data.transforms import MEAN, STD, InputSpec, build_transform, seed_worker


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_items_are_normalised_rgb_tensors_with_both_label_vectors(plt_dir, split):
    transform = build_transform(split == "train", InputSpec(32), seed=0)
    dataset = MultiLabelDataset(plt_dir, split, transform)
    item = dataset[3]
    assert item["image"].shape == (3, 32, 32) and item["image"].dtype == torch.float32
    pixels = torch.stack([item["image"][c] * STD[c] + MEAN[c] for c in range(3)])
    assert torch.allclose(pixels[0], pixels[1], atol=1e-5) and torch.allclose(pixels[0], pixels[2], atol=1e-5)
    assert item["labels_observed"].dtype == torch.float32 and item["labels_full"].shape == (20,)
    assert item["index"] == 3
    assert dataset.labels_observed.shape == (len(dataset), 20)


def test_the_test_split_hides_nothing_and_train_and_val_hide_labels(plt_dir):
    test, train, val = (read_split(plt_dir, s) for s in ("test", "train", "val"))
    np.testing.assert_array_equal(test.labels_observed, test.labels_full)
    assert train.labels_observed.sum() < train.labels_full.sum()
    assert val.labels_observed.sum() < val.labels_full.sum()


def test_classes_json_has_observed_training_counts_and_shot_groups(plt_dir):
    classes = load_classes(plt_dir)
    train = read_split(plt_dir, "train")
    assert classes["train_counts"] == train.labels_observed.sum(axis=0).tolist()
    assert len(classes["names"]) == len(classes["groups"]) == 20
    assert set(classes["groups"]) <= {"many", "medium", "few"}


def test_eval_transform_is_deterministic_and_train_transform_is_seeded(plt_dir):
    image = MultiLabelDataset(plt_dir, "test", build_transform(False, InputSpec(36))).decode(0)
    assert image.shape == (36, 36, 3) and image.dtype == np.uint8
    assert torch.equal(build_transform(False, InputSpec(36))(image), build_transform(False, InputSpec(36))(image))
    a, b = build_transform(True, InputSpec(36), seed=1), build_transform(True, InputSpec(36), seed=1)
    assert torch.equal(a(image), b(image))
    assert not torch.equal(a(image), build_transform(True, InputSpec(36), seed=2)(image))


def test_a_dataloader_batches_items(plt_dir):
    dataset = MultiLabelDataset(plt_dir, "train", build_transform(True, InputSpec(36), seed=0))
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch["image"].shape == (4, 3, 36, 36) and batch["labels_observed"].shape == (4, 20)


def test_seed_worker_gives_each_dataloader_worker_its_own_augmentation_stream(plt_dir, monkeypatch):
    dataset = MultiLabelDataset(plt_dir, "train", build_transform(True, InputSpec(36), seed=0))
    image = dataset.decode(0)
    outputs = []
    for worker_seed in (11, 12):
        info = SimpleNamespace(dataset=dataset, seed=worker_seed)
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda info=info: info)
        seed_worker(0)
        outputs.append(dataset.transform(image))
    assert not torch.equal(outputs[0], outputs[1])
