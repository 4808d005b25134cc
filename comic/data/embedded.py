"""The embedded benchmark: generated (or given) label rows rendered as mosaics of real tiles.

Training pool: `pool_size` generated rows, long-tail subsampled (Wu et al. 2020), rendered from the
train tile pool. Test: `num_test` rows of the generator's natural distribution, topped up with rows
containing each class that has fewer than `min_test_positives`, rendered from the test tile pool.
Validation (optional, `num_val` > 0): drawn like test but rendered from the train tile pool, a held-out
set annotated separately from training. Label-row files replace the generator for their split and are
used as given.
"""

from __future__ import annotations

import numpy as np

from comic.config import DataConfig
from comic.data.labels import MAX_LABELS, SceneModel, load_label_rows, longtail_subsample, pareto_targets
from comic.data.render import render_split
from comic.data.store import RawDataset, SourceSplit, require_positives
from comic.data.tiles import CLASS_NAMES, TileBank

# Independent random streams of one data seed.
SCENES, POOL, LONGTAIL, TEST, RENDER_TRAIN, RENDER_TEST, VAL, RENDER_VAL = range(8)


def _file_rows(path: str, grid: int) -> np.ndarray:
    rows = load_label_rows(path)
    crowded = np.flatnonzero(rows.sum(axis=1) > grid * grid)
    if len(crowded):
        row, count = crowded[0], rows[crowded[0]].sum()
        raise ValueError(f"{path}: row {row} has {count} labels; a {grid}x{grid} mosaic fits {grid * grid}")
    return rows


def _table(split: str, labels_nc: np.ndarray, images: list[bytes]) -> SourceSplit:
    """Rows of a fresh split: ids `<split>-00000`..., nothing hidden yet."""
    ids = [f"{split}-{i:05d}" for i in range(len(labels_nc))]
    return SourceSplit(split=split, ids=ids, labels_nc=labels_nc, images=images, where="embedded benchmark")


def natural_rows(scenes: SceneModel, n: int, min_positives: int, rng: np.random.Generator) -> np.ndarray:
    """`n` rows of the generator's own distribution, then rows holding each class short of `min_positives`."""
    rows = scenes.sample(n, rng)
    for c in range(scenes.num_classes):
        deficit = min_positives - int(rows[:, c].sum())
        if deficit > 0:
            rows = np.vstack([rows, scenes.sample(deficit, rng, must_contain=c)])
    return rows


def build_embedded(bank: TileBank, data: DataConfig) -> RawDataset:
    """Build the embedded training pool, test split and (`data.val_split: natural`) validation split, every
    label observed (labels_observed == labels_full), from the `data` section."""
    seed, image_size, grid = data.seed, data.image_size, data.grid
    train_rows, test_rows = data.label_rows.train, data.label_rows.test
    files = {"train": train_rows, "test": test_rows}
    given = {name: _file_rows(path, grid) for name, path in files.items() if path}
    widths = {name: rows.shape[1] for name, rows in given.items()}
    if len(set(widths.values())) > 1:
        raise ValueError(
            f"label-rows files disagree on the number of classes: {train_rows} has {widths['train']}, "
            f"{test_rows} has {widths['test']}"
        )
    num_classes = next(iter(widths.values()), len(CLASS_NAMES))
    names = list(CLASS_NAMES[:num_classes])
    max_labels = min(MAX_LABELS, grid * grid)
    scenes = SceneModel(num_classes, np.random.default_rng([seed, SCENES]), max_labels=max_labels)

    if "train" in given:
        train_labels, train_where = given["train"], train_rows
    else:
        rows = scenes.sample(data.pool_size, np.random.default_rng([seed, POOL]))
        targets = pareto_targets(num_classes, data.max_class_count, data.min_class_count, data.pareto_alpha)
        train_labels = rows[longtail_subsample(rows, targets, np.random.default_rng([seed, LONGTAIL]))]
        train_where = f"generated pool (data.pool_size={data.pool_size})"
    if "test" in given:
        test_labels, test_where = given["test"], test_rows
    else:
        test_labels = natural_rows(scenes, data.num_test, data.min_test_positives, np.random.default_rng([seed, TEST]))
        test_where = "generated test split"

    require_positives(train_labels, names, f"{train_where}, split 'train'")
    require_positives(test_labels, names, f"{test_where}, split 'test'")
    train_images = render_split(train_labels, bank.train, image_size, grid, seed, RENDER_TRAIN)
    test_images = render_split(test_labels, bank.test, image_size, grid, seed, RENDER_TEST)
    train, test = _table("train", train_labels, train_images), _table("test", test_labels, test_images)
    val = None
    if data.val_split == "natural":
        val_labels = natural_rows(scenes, data.num_val, data.min_val_positives, np.random.default_rng([seed, VAL]))
        val_images = render_split(val_labels, bank.train, image_size, grid, seed, RENDER_VAL)
        val = _table("val", val_labels, val_images)
    return RawDataset(train=train, test=test, names=names, val=val)
