"""Evaluation metrics for long-tailed multi-label classification (numpy, float64).

Average precision matches ``sklearn.metrics.average_precision_score`` (ties included), plus
many/medium/few shot-group reports, an audit of COMIC's label correction, and per-class F1
thresholds. Inputs may be numpy arrays or torch tensors; a label counts as positive when > 0.5.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "CorrectionAudit",
    "average_precision",
    "choose_thresholds",
    "multilabel_report",
    "percent_mean",
    "per_class_average_precision",
    "shot_groups",
]

GROUPS = ("many", "medium", "few")


def _to_numpy(x: Any) -> np.ndarray:
    """Convert a numpy array, list or torch tensor (any device/dtype) to a numpy array."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.is_floating_point():  # bfloat16/float16 have no (or lossy) numpy equivalents
            x = x.double()
    return np.asarray(x)


def _binary(x: Any) -> np.ndarray:
    """0/1 (or bool, or -1/0/1) labels -> bool array; positive means > 0.5."""
    return _to_numpy(x) > 0.5


def _check_pair(labels: Any, scores: Any, ndim: int) -> tuple[np.ndarray, np.ndarray]:
    y = _binary(labels)
    s = _to_numpy(scores).astype(np.float64, copy=False)
    if y.shape != s.shape or y.ndim != ndim:
        raise ValueError(
            f"labels and scores must have the same {ndim}-D shape, got labels {y.shape} and scores {s.shape}"
        )
    return y, s


def _threshold_counts(y: np.ndarray, s: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Counts at each distinct score threshold, as in sklearn's ``_binary_clf_curve``.

    Sorting by score descending, threshold k is the k-th distinct score; everything with
    score >= threshold_k is predicted positive. Returns (thresholds, tp_k, fp_k).
    """
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    y_sorted = y[order]
    last_of_group = np.r_[np.flatnonzero(np.diff(s_sorted)), s_sorted.size - 1]
    tps = np.cumsum(y_sorted, dtype=np.int64)[last_of_group]
    fps = (last_of_group + 1) - tps
    return s_sorted[last_of_group], tps, fps


def average_precision(labels_n: Any, scores_n: Any) -> float:
    """Non-interpolated AP of one class, identical to sklearn's ``average_precision_score``.

    With distinct score thresholds t_1 > t_2 > ... (tied scores form one threshold),
    P_k = TP_k / (TP_k + FP_k), R_k = TP_k / n_pos and AP = sum_k (R_k - R_{k-1}) * P_k, R_0 = 0.
    Returns NaN when the class has no positive.
    """
    y, s = _check_pair(labels_n, scores_n, ndim=1)
    n_pos = int(y.sum())
    if n_pos == 0:
        return float("nan")
    _, tps, fps = _threshold_counts(y, s)
    precision = tps / (tps + fps)
    recall_gain = np.diff(tps, prepend=0) / n_pos
    return float(np.sum(recall_gain * precision))


def per_class_average_precision(labels_nc: Any, scores_nc: Any) -> np.ndarray:
    """AP of each column (shape (C,)), NaN for classes without a positive."""
    y, s = _check_pair(labels_nc, scores_nc, ndim=2)
    return np.array([average_precision(y[:, c], s[:, c]) for c in range(y.shape[1])], dtype=np.float64)


def hidden_positive_map(observed_nc: Any, full_nc: Any, scores_nc: Any) -> float:
    """mAP (percent) of the hidden positives against the true negatives: per class, the entries whose label
    is not observed, ranked by score, positive where the full label is; the mean over classes with a hidden
    positive. It falls when training fits the hidden positives as negatives."""
    observed, full = _binary(observed_nc), _binary(full_nc)
    scores = np.asarray(_to_numpy(scores_nc), dtype=np.float64)
    if not observed.shape == full.shape == scores.shape or observed.ndim != 2:
        raise ValueError(f"need three (N, C) arrays, got {observed.shape}, {full.shape}, {scores.shape}")
    if np.any(observed & ~full):
        raise ValueError("an observed positive is negative in the full labels: pass (observed, full, scores)")
    unobserved = ~observed
    ap = [average_precision(full[unobserved[:, c], c], scores[unobserved[:, c], c]) for c in range(full.shape[1])]
    return percent_mean(np.asarray(ap, dtype=np.float64))


def shot_groups(train_counts_c: Any, many_threshold: int = 100, few_threshold: int = 20) -> np.ndarray:
    """Shot group of each class from its training count n_c.

    "many": n_c >= many_threshold; "medium": few_threshold <= n_c < many_threshold;
    "few": n_c < few_threshold. Requires many_threshold > few_threshold >= 0.
    """
    if not (many_threshold > few_threshold >= 0):
        raise ValueError(
            f"need many_threshold > few_threshold >= 0, got many_threshold={many_threshold}, "
            f"few_threshold={few_threshold}"
        )
    n = _to_numpy(train_counts_c)
    if n.ndim != 1:
        raise ValueError(f"train_counts_c must be 1-D, got shape {n.shape}")
    return np.where(n >= many_threshold, "many", np.where(n >= few_threshold, "medium", "few"))


def percent_mean(values: np.ndarray) -> float:
    """100 x the mean of the non-NaN values (an mAP from per-class APs), NaN if there are none."""
    values = values[~np.isnan(values)]
    return float(100.0 * values.mean()) if values.size else float("nan")


def multilabel_report(
    labels_nc: Any,
    scores_nc: Any,
    train_counts_c: Any,
    *,
    many_threshold: int = 100,
    few_threshold: int = 20,
    decision_threshold: float = 0.5,
) -> dict[str, Any]:
    """Evaluation summary, all values in percent.

    - "mAP": mean AP over classes with >= 1 positive; "mAP_many"/"mAP_medium"/"mAP_few" the same
      within each shot group (see ``shot_groups``), NaN when a group has no evaluable class.
    - "recall@0.5" = TP / (TP + FN) and "precision@0.5" = TP / (TP + FP), micro-averaged over all
      N*C entries with predicted positive = score >= decision_threshold. Precision is 0 when
      nothing is predicted, recall NaN when there is no positive. The key names keep "@0.5"
      whatever ``decision_threshold`` is, so logs stay comparable across runs.
    - "per_class": list of {"index", "train_count", "group", "ap"} (ap in percent, None if NaN).
    """
    y, s = _check_pair(labels_nc, scores_nc, ndim=2)
    counts = _to_numpy(train_counts_c)
    if counts.shape != (y.shape[1],):
        raise ValueError(
            f"train_counts_c must have shape ({y.shape[1]},) to match labels {y.shape}, got {counts.shape}"
        )
    groups = shot_groups(counts, many_threshold=many_threshold, few_threshold=few_threshold)
    ap = per_class_average_precision(y, s)

    pred = s >= decision_threshold
    tp = int(np.sum(pred & y))
    n_pred = int(pred.sum())
    n_pos = int(y.sum())

    report: dict[str, Any] = {"mAP": percent_mean(ap)}
    for g in GROUPS:
        report[f"mAP_{g}"] = percent_mean(ap[groups == g])
    report["recall@0.5"] = 100.0 * tp / n_pos if n_pos else float("nan")
    report["precision@0.5"] = 100.0 * tp / n_pred if n_pred else 0.0
    report["per_class"] = [
        {
            "index": c,
            "train_count": counts[c].item(),
            "group": str(groups[c]),
            "ap": None if math.isnan(ap[c]) else float(100.0 * ap[c]),
        }
        for c in range(y.shape[1])
    ]
    return report


class CorrectionAudit:
    """Epoch-level quality of the labels recalled by correction.

    Per update: recalled = corrected & ~observed, tp = recalled & full, fp = recalled & ~full,
    hidden = full & ~observed. Result: precision = tp / recalled, recall = tp / hidden (NaN if
    the denominator is 0). For distributed runs, all-reduce ``counts()`` and then
    ``reset(); add_counts(total)``.
    """

    FIELDS = ("recalled", "correct", "wrong", "hidden")

    def __init__(self) -> None:
        self._counts = np.zeros(4, dtype=np.int64)
        self._pending = None  # counts of torch updates, kept on their device until read

    def reset(self) -> None:
        self._counts[:] = 0
        self._pending = None

    def update(self, observed_bc: Any, corrected_bc: Any, full_bc: Any) -> None:
        inputs = (observed_bc, corrected_bc, full_bc)
        if all(hasattr(x, "detach") for x in inputs):
            # Torch tensors: count on their device, so that a training step does not wait for the host.
            observed, corrected, full = (x.detach() > 0.5 for x in inputs)
            _check_same_shape(observed, corrected, full)
            recalled, hidden = corrected & ~observed, full & ~observed
            counts = _stack_sums(recalled, recalled & full, recalled & ~full, hidden)
            self._pending = counts if self._pending is None else self._pending + counts
            return
        observed, corrected, full = (_binary(x) for x in inputs)
        _check_same_shape(observed, corrected, full)
        recalled = corrected & ~observed
        hidden = full & ~observed
        tp = int(np.sum(recalled & full))
        n_recalled = int(recalled.sum())
        self._counts += np.array([n_recalled, tp, n_recalled - tp, int(hidden.sum())], dtype=np.int64)

    def _fold(self) -> None:
        if self._pending is not None:
            self._counts += _to_numpy(self._pending).astype(np.int64)
            self._pending = None

    def counts(self) -> np.ndarray:
        """Copy of the raw int64 counts [recalled, tp, fp, hidden]."""
        self._fold()
        return self._counts.copy()

    def add_counts(self, counts: Any) -> None:
        """Add raw counts [recalled, tp, fp, hidden] (e.g. from another rank or an all-reduce)."""
        arr = _to_numpy(counts)
        if arr.shape != (4,):
            raise ValueError(f"counts must have shape (4,), got {arr.shape}")
        self._counts += arr.astype(np.int64)

    def result(self) -> dict[str, float | int]:
        recalled, tp, fp, hidden = (int(v) for v in self.counts())
        return {
            "recalled": recalled,
            "correct": tp,
            "wrong": fp,
            "hidden": hidden,
            "precision": tp / recalled if recalled else float("nan"),
            "recall": tp / hidden if hidden else float("nan"),
        }

    def state_dict(self) -> dict[str, int]:
        return {k: int(v) for k, v in zip(self.FIELDS, self.counts(), strict=True)}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self._counts = np.array([int(state[k]) for k in self.FIELDS], dtype=np.int64)
        self._pending = None


def _check_same_shape(observed: Any, corrected: Any, full: Any) -> None:
    if not (observed.shape == corrected.shape == full.shape):
        raise ValueError(
            f"observed {tuple(observed.shape)}, corrected {tuple(corrected.shape)} and full {tuple(full.shape)} "
            "must have the same shape"
        )


def _stack_sums(*masks: Any) -> Any:
    """[sum(m) for m in masks] as one int64 tensor on the masks' device."""
    import torch

    return torch.stack([m.sum() for m in masks])


def choose_thresholds(labels_nc: Any, scores_nc: Any, default: float = 0.5) -> np.ndarray:
    """Per-class threshold t_c maximising F1 = 2TP / (2TP + FP + FN) with prediction score >= t_c.

    Candidates are the distinct scores of the class (ties broken towards the highest threshold);
    classes without a positive get ``default``. Returns float64 array of shape (C,).
    """
    y, s = _check_pair(labels_nc, scores_nc, ndim=2)
    out = np.full(y.shape[1], float(default), dtype=np.float64)
    for c in range(y.shape[1]):
        n_pos = int(y[:, c].sum())
        if n_pos == 0:
            continue
        thresholds, tps, fps = _threshold_counts(y[:, c], s[:, c])
        f1 = 2 * tps / (tps + fps + n_pos)  # 2TP + FP + FN = TP + FP + n_pos
        out[c] = thresholds[int(np.argmax(f1))]
    return out
