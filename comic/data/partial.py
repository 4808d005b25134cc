"""Partial labels: hide a fraction of each class's observed positives; class statistics of the result.

For split s and class c with m observed positives, k_c = min(round(missing_rate * m), m - 1) of them,
chosen uniformly at random, become unobserved (labels_observed = 0, labels_full unchanged), so every class
keeps at least one observed positive. An image may lose all its observed positives; it stays.
"""

from __future__ import annotations

import numpy as np

from comic.data.store import SplitTable
from comic.metrics import shot_groups

# Random streams of the data seed (see also comic.data.embedded and comic.data.split).
HIDE_STREAMS = {"train": 100, "val": 101}


def hide_labels(table: SplitTable, missing_rate: float, seed: int) -> SplitTable:
    """A copy of `table` (train or val: test keeps every label) with labels hidden as above."""
    if not 0 <= missing_rate <= 1:
        raise ValueError(f"missing_rate must be in [0, 1], got {missing_rate}")
    if table.split not in HIDE_STREAMS:
        raise ValueError(f"labels are hidden in {sorted(HIDE_STREAMS)} only, not in split '{table.split}'")
    rng = np.random.default_rng([seed, HIDE_STREAMS[table.split]])
    observed = table.labels_observed.copy()
    for c in range(observed.shape[1]):
        rows = np.flatnonzero(observed[:, c])
        hide = min(int(np.floor(missing_rate * len(rows) + 0.5)), max(len(rows) - 1, 0))
        observed[rng.choice(rows, size=hide, replace=False), c] = 0
    return table.replace(labels_observed=observed)


def class_summary(names: list[str], train, val, test, many_threshold: int, few_threshold: int) -> dict:
    """`classes.json` of the final dataset; `groups` come from the observed training counts."""
    train_counts = train.labels_observed.sum(axis=0)
    observed = train.labels_observed.astype(np.int64)
    return {
        "names": names,
        "train_counts": train_counts.tolist(),
        "cooccurrence": (observed.T @ observed).tolist(),  # (C, C) images with both classes observed
        "groups": shot_groups(train_counts, many_threshold, few_threshold).tolist(),
        "train_counts_full": train.labels_full.sum(axis=0).tolist(),
        "val_counts": val.labels_observed.sum(axis=0).tolist(),
        "test_counts": test.labels_full.sum(axis=0).tolist(),
        "many_threshold": many_threshold,
        "few_threshold": few_threshold,
    }
