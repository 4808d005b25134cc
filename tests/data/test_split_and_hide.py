import numpy as np
import pytest

from comic.data.partial import hide_labels
from comic.data.split import carve_validation

from .test_store import make_table


def pool_table(n=400, c=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, c)) < np.linspace(0.5, 0.01, c)).astype(np.int16)
    labels[:2, -1] = 1  # the rarest class has at least two positives
    table = make_table(n=n, c=c)
    return table.replace(labels_observed=labels.copy(), labels_full=labels)


def test_validation_is_carved_per_class_and_training_keeps_every_class():
    pool = pool_table()
    train, val = carve_validation(pool, 0.2, seed=0)
    assert len(train) + len(val) == len(pool) and not set(train.ids) & set(val.ids)
    assert abs(len(val) - 80) <= 8
    assert (train.labels_full.sum(axis=0) >= 1).all()
    share = val.labels_full.sum(axis=0) / pool.labels_full.sum(axis=0)
    assert np.all(share[:4] > 0.1) and np.all(share <= 0.5)
    assert train.split == "train" and val.split == "val"


def test_carving_is_deterministic_in_the_seed():
    pool = pool_table()
    assert carve_validation(pool, 0.2, seed=3)[1].ids == carve_validation(pool, 0.2, seed=3)[1].ids
    assert carve_validation(pool, 0.2, seed=3)[1].ids != carve_validation(pool, 0.2, seed=4)[1].ids


def test_hiding_removes_the_missing_rate_of_each_class_and_keeps_one_positive():
    pool = pool_table()
    hidden = hide_labels(pool, 0.4, seed=0)
    np.testing.assert_array_equal(hidden.labels_full, pool.labels_full)
    full_c, observed_c = pool.labels_full.sum(axis=0), hidden.labels_observed.sum(axis=0)
    expected = full_c - np.minimum(np.floor(0.4 * full_c + 0.5), full_c - 1)
    np.testing.assert_array_equal(observed_c, expected)
    assert (observed_c >= 1).all() and (hidden.labels_observed <= hidden.labels_full).all()


def test_a_missing_rate_of_one_still_leaves_one_observed_positive_per_class():
    hidden = hide_labels(pool_table(), 1.0, seed=0)
    assert (hidden.labels_observed.sum(axis=0) == 1).all()
    assert (hidden.labels_observed.sum(axis=1) == 0).sum() > 0  # images with nothing observed stay


def test_hiding_is_deterministic_in_the_seed_and_refuses_the_test_split():
    pool = pool_table()
    same = hide_labels(pool, 0.4, seed=5).labels_observed
    np.testing.assert_array_equal(same, hide_labels(pool, 0.4, seed=5).labels_observed)
    assert (same != hide_labels(pool, 0.4, seed=6).labels_observed).any()
    with pytest.raises(ValueError, match="not in split 'test'"):
        hide_labels(pool.replace(split="test"), 0.4, seed=5)
