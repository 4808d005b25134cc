"""A torch Dataset over one split of a dataset folder (see comic.data.store for the layout)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from comic.data.shards import ImageReader
from comic.data.store import read_split, split_path
from comic.images import decode_image


class MultiLabelDataset(torch.utils.data.Dataset):
    """Item i: {"image": (3, H, W) float tensor from `transform`, "labels_observed": (C,) float32,
    "labels_full": (C,) float32, "index": i}. Grey images are repeated to 3 channels, colour is RGB.

    It holds the split's labels and image references only; each item's image is read when the item is
    (`comic.data.shards.ImageReader`), so memory does not grow with the images' bytes.
    `labels_observed` / `labels_full` attributes: (N, C) float32 arrays, for samplers and losses.
    """

    def __init__(self, data_dir: str | Path, split: str, transform: Callable[[np.ndarray], torch.Tensor] | None):
        table = read_split(data_dir, split)
        self.file = split_path(data_dir, split)
        self.ids = table.ids
        self._files, self._offsets, self._sizes = table.files, table.offsets, table.sizes
        self._reader = ImageReader(table.image_store)
        self.labels_observed = table.labels_observed.astype(np.float32)
        self.labels_full = table.labels_full.astype(np.float32)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def num_classes(self) -> int:
        return self.labels_full.shape[1]

    def image_bytes(self, i: int) -> bytes:
        """Row i's encoded image."""
        try:
            return self._reader.read(self._files[i], int(self._offsets[i]), int(self._sizes[i]))
        except OSError as err:
            raise type(err)(f"{self.file}: row {i} (id {self.ids[i]}): {err}") from None

    def decode(self, i: int) -> np.ndarray:
        """Row i's image as (H, W, 3) uint8 RGB; errors name the split file, row and id."""
        return decode_image(self.image_bytes(i), f"{self.file}: row {i} (id {self.ids[i]})")

    def __getitem__(self, i: int) -> dict:
        return {
            "image": self.transform(self.decode(i)),
            "labels_observed": torch.from_numpy(self.labels_observed[i].copy()),  # callers may edit it
            "labels_full": torch.from_numpy(self.labels_full[i].copy()),
            "index": i,
        }
