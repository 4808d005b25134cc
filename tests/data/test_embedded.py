import dataclasses

import cv2
import numpy as np
import pytest

from comic.config import DataConfig, LabelRowsConfig
from comic.data.embedded import build_embedded
from comic.data.partial import hide_labels
from comic.data.render import render_mosaic
from comic.data.store import SourceSplit, SplitTable
from comic.data.tiles import CLASS_NAMES, TilePool
from comic.metrics import shot_groups

from .conftest import TINY_DATA

TINY = dataclasses.replace(DataConfig(), **TINY_DATA)


def decode(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


def labels_only(source: SourceSplit) -> SplitTable:
    n = len(source)
    refs = {"files": ["unused"] * n, "offsets": np.full(n, -1), "sizes": np.zeros(n, np.int64)}
    return SplitTable(
        source.split, source.ids, **refs, labels_observed=source.labels_nc.copy(), labels_full=source.labels_nc
    )


def test_the_tile_bank_has_disjoint_train_and_test_pools_of_all_twenty_classes(bank):
    assert len(CLASS_NAMES) == 20 and CLASS_NAMES[3] == "digit-3" and "sneaker" in CLASS_NAMES
    train = {tile.tobytes() for tile in bank.train.images}
    test = {tile.tobytes() for tile in bank.test.images}
    assert not train & test
    assert set(bank.train.labels) == set(bank.test.labels) == set(range(20))


def test_the_generated_benchmark_is_long_tailed_and_its_test_split_covers_every_class(bank):
    raw = build_embedded(bank, TINY)
    train_counts = raw.train.labels_nc.sum(axis=0)
    assert train_counts.min() >= 1 and train_counts.max() >= 5 * train_counts.min()
    assert raw.test.labels_nc.sum(axis=0).min() >= TINY.min_test_positives
    image = decode(raw.train.images[0])
    assert image.shape == (36, 36) and image.dtype == np.uint8


@pytest.mark.parametrize("suffix", [".npy", ".csv"])
def test_label_rows_from_a_file_are_used_as_given(bank, tmp_path, suffix):
    rows = np.random.default_rng(0).random((40, 5)) < 0.3
    rows[np.arange(5), np.arange(5)] = True  # every class present
    path = tmp_path / f"train{suffix}"
    if suffix == ".npy":
        np.save(path, rows.astype(np.int64))
    else:
        np.savetxt(path, rows.astype(int), fmt="%d", delimiter=",")
    raw = build_embedded(bank, dataclasses.replace(TINY, label_rows=LabelRowsConfig(train=str(path), test=None)))
    np.testing.assert_array_equal(raw.train.labels_nc, rows.astype(np.int16))
    assert raw.names == list(CLASS_NAMES[:5])
    assert raw.test.labels_nc.shape[1] == 5  # the generator follows the file's classes


def test_a_mosaic_is_mostly_dark_except_where_tiles_and_clutter_are():
    pool = TilePool(np.full((20, 28, 28), 255, np.uint8), np.arange(20))
    labels = np.zeros(20, np.int16)
    labels[[2, 9]] = 1
    image = render_mosaic(labels, pool, 63, 3, np.random.default_rng(0))
    bright_cells = sum(
        image[r * 21 : (r + 1) * 21, c * 21 : (c + 1) * 21].max() > 120 for r in range(3) for c in range(3)
    )
    assert 2 <= bright_cells <= 9
    assert np.median(image) < 20


def test_the_default_benchmark_v2_keeps_the_protocol_it_promises(bank):
    """Training >= 2,000 long-tailed images whose few-shot classes keep < 20 observed positives; a natural
    validation set of >= 600 images with >= 10 observed positives per class; test >= 1,200 images."""
    data = DataConfig()
    raw = build_embedded(bank, data)
    train = hide_labels(labels_only(raw.train), data.missing_rate, data.seed)
    val = hide_labels(labels_only(raw.val), data.missing_rate, data.seed)
    observed = train.labels_observed.sum(axis=0)
    assert len(train) >= 2000 and observed.max() >= 50 * observed.min()  # a long tail
    groups = shot_groups(observed, 100, 20)
    assert {"many", "medium", "few"} <= set(groups) and (groups == "few").sum() >= 5
    assert len(val) >= 600 and val.labels_observed.sum(axis=0).min() >= 10
    assert len(raw.test) >= 1200 and raw.test.labels_nc.sum(axis=0).min() >= data.min_test_positives
    assert not set(raw.val.ids) & set(raw.train.ids) and not set(raw.val.ids) & set(raw.test.ids)
    for split in (raw.train, raw.val, raw.test):
        per_image = split.labels_nc.sum(axis=1)
        assert per_image.min() >= 1 and per_image.max() <= 6 and 1.6 < per_image.mean() < 2.4
    assert decode(raw.test.images[0]).shape == (64, 64)
