"""Carve a validation split out of the training pool, stratified per class.

Class c with n_c positives gets a validation quota q_c = min(round(f * n_c), n_c - 1), so training keeps at
least one positive of every class. Images are visited rarest-class first (random order within a rarity
level) and go to validation while it holds fewer than round(f * N) images and no class of the image is
over its quota; images with no positive are visited last.
"""

from __future__ import annotations

import numpy as np

from comic.data.store import SplitTable

SPLIT_STREAM = 200  # random stream of the data seed (see also comic.data.embedded)


def carve_validation(pool: SplitTable, val_fraction: float, seed: int) -> tuple[SplitTable, SplitTable]:
    """(train, val) from `pool`; rows keep their pool order inside each split."""
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1), got {val_fraction}")
    positives_nc = pool.labels_full.astype(bool)
    n_c = positives_nc.sum(axis=0)
    quota_c = np.minimum(np.floor(val_fraction * n_c + 0.5), np.maximum(n_c - 1, 0)).astype(np.int64)
    target = int(np.floor(val_fraction * len(pool) + 0.5))
    if target == 0:
        raise ValueError(
            f"split 'val' would be empty: {len(pool)} training images x data.val_fraction={val_fraction} "
            "rounds to 0; raise data.val_fraction or use more images"
        )
    rarity = np.where(positives_nc, n_c, np.iinfo(np.int64).max).min(axis=1)
    order = np.random.default_rng([seed, SPLIT_STREAM]).permutation(len(pool))
    order = order[np.argsort(rarity[order], kind="stable")]
    in_val = np.zeros(len(pool), dtype=bool)
    taken_c = np.zeros_like(quota_c)
    size = 0
    for row in order:
        classes = positives_nc[row]
        if (taken_c[classes] < quota_c[classes]).all():
            in_val[row] = True
            taken_c[classes] += 1
            size += 1
            if size == target:
                break
    if not in_val.any():
        raise ValueError(
            f"split 'val' is empty: each of the {len(pool)} training images holds a class too rare to share "
            f"(round(data.val_fraction={val_fraction} x its count) is 0); raise it or add images"
        )
    train = pool.take(np.flatnonzero(~in_val)).replace(split="train")
    val = pool.take(np.flatnonzero(in_val)).replace(split="val")
    return train, val
