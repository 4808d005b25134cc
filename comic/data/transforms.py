"""albumentations pipelines: HxWx3 uint8 image -> (3, S, S) float32 tensor, normalised with the trunk's
mean and std (`InputSpec`; ImageNet's for every built-in backbone).

Two presets (`augment.preset`, each value a key of its own in `params.yaml`):
- mosaic (the embedded benchmark): RandomResizedCrop to S with area 0.8-1 and aspect 0.9-1.1, a light crop
  and shift that keeps most of every mosaic cell, and RandomBrightnessContrast(0.2); no flip (digits are not
  mirror-symmetric); eval stretches the square image to S.
- photo (real datasets): RandomResizedCrop with area 0.3-1 and aspect 3/4-4/3, a horizontal flip, the same
  brightness and contrast jitter; eval resizes the short side to S / 0.875 and takes the centre S x S, so the
  aspect ratio is kept (the ImageNet convention).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import albumentations as A
import numpy as np
import torch
from albumentations.pytorch import ToTensorV2

MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Augment:
    """The training augmentation and the eval crop of a preset, resolved (`resolve_augment`)."""

    crop_scale_min: float
    crop_ratio_min: float
    crop_ratio_max: float
    hflip: bool
    color_jitter: float
    eval_crop: float


PRESETS = {
    "mosaic": Augment(crop_scale_min=0.8, crop_ratio_min=0.9, crop_ratio_max=1.1, hflip=False, color_jitter=0.2,
                      eval_crop=0.0),
    "photo": Augment(crop_scale_min=0.3, crop_ratio_min=0.75, crop_ratio_max=4 / 3, hflip=True, color_jitter=0.2,
                     eval_crop=0.875),
}  # fmt: skip


def resolve_augment(augment, source: str) -> Augment:
    """The values of the `augment` params section: its preset's (`auto`: mosaic for the embedded benchmark,
    photo for real data), each replaced by the key's own value where that is not null."""
    preset = augment.preset if augment.preset != "auto" else ("mosaic" if source == "embedded" else "photo")
    chosen = {k: v for k, v in dataclasses.asdict(augment).items() if k != "preset" and v is not None}
    return dataclasses.replace(PRESETS[preset], **chosen)


@dataclass(frozen=True)
class InputSpec:
    """What the trunk takes: `size` x `size` images normalised by `mean` and `std` (per channel); eval resizes
    the short side to size / `eval_crop` and takes the centre, or with `eval_crop` 0 stretches to the square."""

    size: int
    mean: tuple[float, ...] = MEAN
    std: tuple[float, ...] = STD
    eval_crop: float = 0.0

    def to_dict(self) -> dict:
        crop = {"eval_crop": self.eval_crop} if self.eval_crop else {}  # model files of stretch inputs: as before
        return {"size": self.size, "mean": list(self.mean), "std": list(self.std), **crop}

    @classmethod
    def from_dict(cls, raw: dict) -> InputSpec:
        return cls(int(raw["size"]), tuple(raw["mean"]), tuple(raw["std"]), float(raw.get("eval_crop", 0.0)))


class ImageTransform:
    """Callable wrapper of an `A.Compose`: `transform(image_hw3) -> tensor (3, S, S)`."""

    def __init__(self, pipeline: A.Compose):
        self.pipeline = pipeline

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        return self.pipeline(image=image)["image"]

    def set_random_seed(self, seed: int | None) -> None:
        self.pipeline.set_random_seed(seed)


def build_transform(train: bool, spec: InputSpec, *, augment: Augment = PRESETS["mosaic"], seed: int | None = None):
    """Train (with `augment`) or eval pipeline for the trunk's inputs; `seed` fixes the augmentation stream.

    DataLoader workers copy the transform with its state; pass `seed_worker` as `worker_init_fn` so each
    worker draws its own stream (seeded from torch's per-worker seed).
    """
    size = spec.size
    if train:
        scale, ratio = (augment.crop_scale_min, 1.0), (augment.crop_ratio_min, augment.crop_ratio_max)
        steps = [A.RandomResizedCrop(size=(size, size), scale=scale, ratio=ratio)]
        if augment.hflip:
            steps.append(A.HorizontalFlip(p=0.5))
        if augment.color_jitter:
            limit = augment.color_jitter
            steps.append(A.RandomBrightnessContrast(brightness_limit=limit, contrast_limit=limit, p=0.8))
    elif spec.eval_crop:
        steps = [A.SmallestMaxSize(max_size=round(size / spec.eval_crop)), A.CenterCrop(size, size)]
    else:
        steps = [A.Resize(size, size)]
    return ImageTransform(A.Compose([*steps, A.Normalize(mean=spec.mean, std=spec.std), ToTensorV2()], seed=seed))


def seed_worker(worker_id: int) -> None:
    """`worker_init_fn` for DataLoader: reseed the dataset's transform from the worker's torch seed."""
    info = torch.utils.data.get_worker_info()
    transform = getattr(info.dataset, "transform", None)
    if isinstance(transform, ImageTransform):
        transform.set_random_seed(info.seed % 2**32)
