"""Cached trunk features: with a frozen pretrained trunk (`model.freeze_backbone`), the trunk's output of
every image is computed once (the `cache_features` stage) and training runs the necks and classifiers on it.

The cache holds the features of the eval-mode transform, so training on it sees no augmentation: a
trunk that learns nothing has no use for it beyond regularising the heads, and a frozen EfficientNet-Lite0
costs about 190 images/s on 2 cores against thousands for the heads alone. To fine-tune with
augmentation, set `model.freeze_backbone: false`. `meta.json` names the backbone, the weights' sha256 and
the input size; a cache that does not match the params is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from comic.config import ModelConfig
from comic.data.dataset import MultiLabelDataset
from comic.data.store import SPLITS, read_split
from comic.data.transforms import InputSpec, build_transform
from comic.device import loader_processes
from comic.files import atomic_dir
from comic.models.backbones import build_backbone

META = "meta.json"


def _trunk(model: ModelConfig, spec: InputSpec):
    """(the trunk with its weights, the cache's meta: the trunk, its weights and its input)."""
    trunk, dim, weights = build_backbone(
        model.backbone, pretrained=model.pretrained, pretrained_path=model.pretrained_path, norm=model.norm
    )
    meta = {"backbone": model.backbone, "weights": weights.source, "weights_sha256": weights.sha256, "dim": dim}
    return trunk, {**meta, **spec.to_dict()}


@torch.no_grad()
def cache_features(model: ModelConfig, spec: InputSpec, data_dir, out_dir, batch_size: int = 64) -> dict:
    """Write `<split>.npy` (N, D) float32 trunk features of every split and `meta.json`; returns the meta."""
    trunk, meta = _trunk(model, spec)
    trunk.eval()
    with atomic_dir(out_dir) as tmp:
        for split in SPLITS:
            dataset = MultiLabelDataset(data_dir, split, build_transform(False, spec))
            processes = loader_processes(None, torch.device("cpu"), training_rank=False)
            loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=processes)
            parts = [trunk(batch["image"]).float().numpy() for batch in loader]
            np.save(tmp / f"{split}.npy", np.concatenate(parts))
        (tmp / META).write_text(json.dumps(meta, indent=2) + "\n")
    return meta


def write_unused(out_dir, reason: str) -> None:
    """The stage's output when no trunk is frozen: a meta.json that says so (DVC needs an output)."""
    with atomic_dir(out_dir) as tmp:
        (tmp / META).write_text(json.dumps({"frozen": False, "reason": reason}, indent=2) + "\n")


def check_cache(features_dir, model: ModelConfig, spec: InputSpec) -> None:
    """Raise ValueError unless `features_dir` holds the features of this trunk, weights and input."""
    path = Path(features_dir) / META
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no cached features; the cache_features stage writes them (`dvc repro cache_features`)"
        )
    meta = json.loads(path.read_text())
    expected = _trunk(model, spec)[1]
    stale = [k for k, v in expected.items() if meta.get(k) != v]
    if stale:
        raise ValueError(
            f"{path}: the cached features are of another {'/'.join(stale)} ({[meta.get(k) for k in stale]} != "
            f"{[expected[k] for k in stale]}); rerun the cache_features stage (`dvc repro cache_features`)"
        )


class FeatureDataset(Dataset):
    """Item i: {"image": (D,) cached trunk features, "labels_observed", "labels_full", "index"}, the items
    of `MultiLabelDataset` with the trunk's output in place of the image (models pass 2-D inputs through
    their frozen trunk)."""

    def __init__(self, features_dir, data_dir, split: str):
        path = Path(features_dir) / f"{split}.npy"
        try:
            self.features = np.load(path, allow_pickle=False)
        except ValueError as err:  # pickled data or an object array: loading it could run code
            message = f"{path}: refused: not a plain array of features ({err}); rerun `dvc repro cache_features`"
            raise ValueError(message) from None
        table = read_split(data_dir, split)
        if len(table) != len(self.features):
            raise ValueError(
                f"{features_dir}: {len(self.features)} cached {split} features for {len(table)} images; "
                "rerun the cache_features stage (`dvc repro cache_features`)"
            )
        self.labels_observed = table.labels_observed.astype(np.float32)
        self.labels_full = table.labels_full.astype(np.float32)

    def __len__(self) -> int:
        return len(self.features)

    def __getitem__(self, i: int) -> dict:
        return {
            "image": torch.from_numpy(self.features[i]),
            "labels_observed": torch.from_numpy(self.labels_observed[i].copy()),
            "labels_full": torch.from_numpy(self.labels_full[i].copy()),
            "index": i,
        }
