"""A torch Dataset over one split of a dataset folder (see comic.data.store for the layout)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from comic.data.store import read_split, split_path
from comic.images import decode_image


class MultiLabelDataset(torch.utils.data.Dataset):
    """Item i: {"image": (3, H, W) float tensor from `transform`, "labels_observed": (C,) float32,
    "labels_full": (C,) float32, "index": i}. Grey images are repeated to 3 channels, colour is RGB.

    `labels_observed` / `labels_full` attributes: (N, C) float32 arrays, for samplers and losses.
    """

    def __init__(self, data_dir: str | Path, split: str, transform: Callable[[np.ndarray], torch.Tensor]):
        table = read_split(data_dir, split)
        self.file = split_path(data_dir, split)
        self.ids = table.ids
        self._images = table.images
        self._paths = table.paths
        self.labels_observed = table.labels_observed.astype(np.float32)
        self.labels_full = table.labels_full.astype(np.float32)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        return self.labels_full.shape[1]

    def decode(self, i: int) -> np.ndarray:
        """Row i's image as (H, W, 3) uint8 RGB; errors name the split file, row and id."""
        where = f"{self.file}: row {i} (id {self.ids[i]})"
        data = self._images[i]
        if data is None:
            path = Path(self._paths[i])
            if not path.is_file():
                raise FileNotFoundError(f"{where}: image file {path} not found; restore it or rebuild")
            data = path.read_bytes()
        return decode_image(data, where)

    def __getitem__(self, i: int) -> dict:
        return {
            "image": self.transform(self.decode(i)),
            "labels_observed": torch.from_numpy(self.labels_observed[i].copy()),  # callers may edit it
            "labels_full": torch.from_numpy(self.labels_full[i].copy()),
            "index": i,
        }
