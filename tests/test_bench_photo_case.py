"""benchmarks/photo_case.py: COCO-80 labels map onto VOC's 20 classes, and the test split has its size and
at least MIN_TEST_POSITIVES positives of every class."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import photo_case  # noqa: E402


def test_coco80_indices_map_to_voc_columns_in_voc_order():
    photos = [Path("000000000001.jpg"), Path("000000000002.jpg")]
    labels = photo_case.voc_matrix(photos, {1: {0, 62, 7}, 2: {4, 15}})  # 7 (truck) is not a VOC class
    names = list(photo_case.COCO_INDEX_OF_VOC)
    assert [names[c] for c in np.flatnonzero(labels[0])] == ["person", "tvmonitor"]
    assert [names[c] for c in np.flatnonzero(labels[1])] == ["aeroplane", "cat"]
    with pytest.raises(ValueError, match="without a label row"):
        photo_case.voc_matrix([Path("000000000003.jpg")], {1: {0}})


def test_the_test_split_has_its_size_and_every_class_its_positives():
    rng = np.random.default_rng(0)
    labels = (rng.random((2000, 20)) < np.linspace(0.005, 0.5, 20)).astype(np.int16)
    test = photo_case.choose_test(labels, seed=0)
    assert len(test) == len(set(test.tolist())) == photo_case.NUM_TEST
    assert labels[test].sum(0).min() >= min(photo_case.MIN_TEST_POSITIVES, labels.sum(0).min())
    assert np.array_equal(test, photo_case.choose_test(labels, seed=0))
