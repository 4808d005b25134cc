"""Label sets of the embedded benchmark: a latent-scene generator, long-tail subsampling, label-row files.

Generator: S latent scenes with weights pi ~ Dirichlet(2). Scene s favours a core of `CORE_SIZE` classes:
p_s = (1 - BACKGROUND) * uniform(core_s) + BACKGROUND * uniform(C). An image draws s ~ pi, a label count
L = 1 + min(Poisson(MEAN_LABELS - 1), MAX_LABELS - 1) and L distinct classes from p_s, so classes of a
scene co-occur. Long-tail subsampling follows Wu et al. 2020 (Distribution-Balanced loss): per-class
targets from a Pareto pdf, filled class by class in co-occurrence order.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

MEAN_LABELS = 2.0
MAX_LABELS = 6
CORE_SIZE = 4
BACKGROUND = 0.15
MAX_FILE_CLASSES = 20


class SceneModel:
    """Latent scenes over `num_classes` classes, fixed by `rng` (one world for train and test)."""

    def __init__(self, num_classes: int, rng: np.random.Generator, max_labels: int = MAX_LABELS):
        self.num_classes = num_classes
        self.max_labels = min(max_labels, num_classes)
        num_scenes = max(2, num_classes // 2)
        self.scene_weights_s = rng.dirichlet(np.full(num_scenes, 2.0))
        core = min(CORE_SIZE, num_classes)
        self.class_probs_sc = np.full((num_scenes, num_classes), BACKGROUND / num_classes)
        for s in range(num_scenes):
            members = rng.choice(num_classes, size=core, replace=False)
            self.class_probs_sc[s, members] += (1 - BACKGROUND) / core

    def sample(self, n: int, rng: np.random.Generator, must_contain: int | None = None) -> np.ndarray:
        """(n, C) int16 label rows; with `must_contain`, only rows holding that class (rejection)."""
        rows = np.zeros((n, self.num_classes), dtype=np.int16)
        i = 0
        while i < n:
            scene = rng.choice(len(self.scene_weights_s), p=self.scene_weights_s)
            count = 1 + min(rng.poisson(MEAN_LABELS - 1), self.max_labels - 1)
            classes = rng.choice(self.num_classes, size=count, replace=False, p=self.class_probs_sc[scene])
            if must_contain is not None and must_contain not in classes:
                continue
            rows[i, classes] = 1
            i += 1
        return rows


def pareto_targets(num_classes: int, max_count: int, min_count: int, alpha: float) -> np.ndarray:
    """Per-rank targets n_r = (max - min) * x_r^-(alpha+1) + min, x_r = linspace(1, Pareto ppf(0.99)).

    This is Wu et al.'s `pareto_dist`: the Pareto(alpha) pdf, rescaled so rank 0 gets `max_count`.
    """
    x = np.linspace(1.0, 0.01 ** (-1.0 / alpha), num_classes)
    return ((max_count - min_count) * x ** -(alpha + 1) + min_count).astype(np.int64)


def longtail_subsample(labels_nc: np.ndarray, targets_r: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted row indices of a subset whose class counts follow `targets_r` (Wu et al. 2020).

    Classes are ranked by sum_i P(c | i) from the co-occurrence matrix (classes that come with many
    others first); in that order, images are added (or removed) at random until the class count reaches
    its target. Later additions raise earlier classes' counts, so head classes overshoot a little.
    """
    positives = labels_nc.astype(bool)
    co_cc = positives.T.astype(np.float64) @ positives.astype(np.float64)
    cond_cc = co_cc / np.maximum(np.diag(co_cc), 1)[:, None]
    rank = np.argsort(-cond_cc.sum(axis=0), kind="stable")
    selected = np.zeros(len(labels_nc), dtype=bool)
    for r, c in enumerate(rank):
        have = np.flatnonzero(selected & positives[:, c])
        need = int(targets_r[r]) - len(have)
        if need < 0:
            selected[rng.choice(have, size=-need, replace=False)] = False
        elif need > 0:
            free = np.flatnonzero(~selected & positives[:, c])
            selected[rng.choice(free, size=min(need, len(free)), replace=False)] = True
    return np.flatnonzero(selected)


def load_label_rows(path: str | Path) -> np.ndarray:
    """An N x C 0/1 matrix from `.npy` or `.csv` (no header), C <= 20; errors name the file and row."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: label-rows file not found (data.label_rows)")
    if path.suffix == ".npy":
        rows = np.load(path, allow_pickle=False)
    elif path.suffix == ".csv":
        with open(path, newline="") as f:
            parsed = []
            for line_no, record in enumerate(csv.reader(f), start=1):
                try:
                    parsed.append([float(v) for v in record])
                except ValueError:
                    raise ValueError(f"{path}: line {line_no} is not numeric; write 0/1, no header") from None
        widths = {len(r) for r in parsed}
        if len(widths) > 1:
            line = next(i for i, r in enumerate(parsed, start=1) if len(r) != len(parsed[0]))
            width = len(parsed[line - 1])
            raise ValueError(f"{path}: line {line} has {width} values, line 1 has {len(parsed[0])}")
        rows = np.asarray(parsed).reshape(len(parsed), -1)
    else:
        raise ValueError(f"{path}: label rows must be a .npy or .csv file")
    if rows.ndim != 2 or rows.shape[0] == 0 or not 1 <= rows.shape[1] <= MAX_FILE_CLASSES:
        raise ValueError(
            f"{path}: label rows must be an N x C matrix with N >= 1 and 1 <= C <= {MAX_FILE_CLASSES}, "
            f"got shape {rows.shape}"
        )
    bad = np.flatnonzero(((rows != 0) & (rows != 1)).any(axis=1))
    if len(bad):
        raise ValueError(f"{path}: row {bad[0]} (from 0) has values other than 0/1: {rows[bad[0]].tolist()}")
    return rows.astype(np.int16)
