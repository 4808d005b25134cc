"""Test-split evaluation: the metrics DVC tracks and the data of its plots."""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from comic.metrics import multilabel_report, per_class_average_precision, shot_groups


def _finite(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def test_report(labels_nc, scores_nc, classes: dict, *, many: int, few: int, decision: float) -> dict:
    """metrics.json: mAP, per-group mAP, recall/precision@0.5 (percent) and per-class AP with names."""
    counts = np.asarray(classes["train_counts"])
    report = multilabel_report(
        labels_nc, scores_nc, counts, many_threshold=many, few_threshold=few, decision_threshold=decision
    )
    for row in report["per_class"]:
        row["name"] = classes["names"][row["index"]]
    return {k: _finite(v) if not isinstance(v, list) else v for k, v in report.items()}


def score_model_file(path, data_dir, *, many: int, few: int, decision: float) -> tuple[dict, dict]:
    """`(test_report, predictions)` of a model file on `data_dir`'s test split, scored against the full
    labels with the dataset's own class statistics. Raises ValueError if the model predicts other classes."""
    from comic.config import Params, from_dict
    from comic.data import load_classes
    from comic.export import load_model_file
    from comic.selection import predict_split

    model, bundle = load_model_file(path)
    classes = load_classes(data_dir)
    if list(bundle["classes"]["names"]) != list(classes["names"]):
        raise ValueError(
            f"{path}: the model predicts {len(bundle['classes']['names'])} classes that differ from the "
            f"{len(classes['names'])} classes of {data_dir}; it cannot be evaluated on this test split"
        )
    test = predict_split(model, data_dir, "test", from_dict(Params, bundle["params"]))
    report = test_report(test["labels_full"], test["scores"], classes, many=many, few=few, decision=decision)
    return report, test


def precision_recall_rows(labels_nc, scores_nc, groups_c, points: int = 50) -> list[dict]:
    """Micro precision-recall per shot group at `points` thresholds (DVC plot data)."""
    rows = []
    for group in ("many", "medium", "few"):
        mask = groups_c == group
        if not mask.any():
            continue
        labels, scores = labels_nc[:, mask] > 0.5, scores_nc[:, mask]
        for threshold in np.linspace(0.0, 1.0, points, endpoint=False):
            predicted = scores >= threshold
            tp = float((predicted & labels).sum())
            precision = tp / max(float(predicted.sum()), 1.0)
            recall = tp / max(float(labels.sum()), 1.0)
            rows.append(
                {"group": group, "threshold": round(float(threshold), 4), "precision": precision, "recall": recall}
            )
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    with staging.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    os.replace(staging, path)


def write_reports(report: dict, labels_nc, scores_nc, classes: dict, *, metrics_path, plots_dir, many, few) -> None:
    metrics_path, plots_dir = Path(metrics_path), Path(plots_dir)
    metrics_path.parent.mkdir(parents=True, exist_ok=True)
    plots_dir.mkdir(parents=True, exist_ok=True)
    staging = metrics_path.with_name(f".{metrics_path.name}.tmp")
    staging.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(staging, metrics_path)
    ap = per_class_average_precision(labels_nc, scores_nc)
    groups = shot_groups(np.asarray(classes["train_counts"]), many, few)
    _write_csv(
        plots_dir / "ap_vs_train_count.csv",
        [
            {"class": name, "train_count": int(count), "group": str(group), "ap": round(float(100 * a), 4)}
            for name, count, group, a in zip(classes["names"], classes["train_counts"], groups, ap, strict=True)
            if not math.isnan(a)
        ],
    )
    _write_csv(plots_dir / "precision_recall.csv", precision_recall_rows(labels_nc, scores_nc, groups))
