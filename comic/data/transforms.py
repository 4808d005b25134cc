"""albumentations pipelines: HxWx3 uint8 image -> (3, S, S) float32 tensor, normalised with the trunk's
mean and std (`InputSpec`; ImageNet's for every built-in backbone).

Train: RandomResizedCrop to S (scale 0.8-1, aspect 0.9-1.1; a light crop and shift that keeps most of
every mosaic cell) and RandomBrightnessContrast(0.2, 0.2). Eval: Resize to S. No flips: digits are not
mirror-symmetric.
"""

from __future__ import annotations

from dataclasses import dataclass

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class InputSpec:
    """What the trunk takes: `size` x `size` images normalised by `mean` and `std` (per channel)."""

    size: int
    mean: tuple[float, ...] = MEAN
    std: tuple[float, ...] = STD

    def to_dict(self) -> dict:
        return {"size": self.size, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, raw: dict) -> InputSpec:
        return cls(int(raw["size"]), tuple(raw["mean"]), tuple(raw["std"]))


class ImageTransform:
    """Callable wrapper of an `A.Compose`: `transform(image_hw3) -> tensor (3, S, S)`."""

    def __init__(self, pipeline: A.Compose):
        self.pipeline = pipeline

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        return self.pipeline(image=image)["image"]

    def set_random_seed(self, seed: int | None) -> None:
        self.pipeline.set_random_seed(seed)


def build_transform(train: bool, spec: InputSpec, *, seed: int | None = None) -> ImageTransform:
    """Train or eval pipeline for the trunk's inputs; `seed` fixes the augmentation stream.

    DataLoader workers copy the transform with its state; pass `seed_worker` as `worker_init_fn` so each
    worker draws its own stream (seeded from torch's per-worker seed).
    """
    size = spec.size
    if train:
        steps = [
            A.RandomResizedCrop(size=(size, size), scale=(0.8, 1.0), ratio=(0.9, 1.1)),
            A.RandomBrightnessContrast(brightness_limit=0.2, contrast_limit=0.2, p=0.8),
        ]
    else:
        steps = [A.Resize(size, size)]
    return ImageTransform(A.Compose([*steps, A.Normalize(mean=spec.mean, std=spec.std), ToTensorV2()], seed=seed))


def seed_worker(worker_id: int) -> None:
    """`worker_init_fn` for DataLoader: reseed the dataset's transform from the worker's torch seed."""
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None)
    if isinstance(transform, ImageTransform):
        transform.set_random_seed(info.seed % 2**32)
