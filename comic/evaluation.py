"""Scoring models: predictions over a split, the metrics of a split (also across DDP ranks), the test
report DVC tracks, and the data of its plots. The test split is scored here and never feeds a choice."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.utils.data import DataLoader

from comic import distributed, plots
from comic.config import MetricsConfig
from comic.data.dataset import MultiLabelDataset
from comic.data.store import load_classes
from comic.data.transforms import InputSpec, build_transform
from comic.device import autocast, loader_processes, to_device, unwrap
from comic.export import load_model_file
from comic.files import write_csv, write_json
from comic.metrics import multilabel_report, per_class_average_precision, percent_mean, shot_groups


@torch.no_grad()
def predict_scores(
    model: nn.Module,
    batches: Iterable[Mapping[str, Tensor]],
    *,
    device: torch.device,
    amp: bool,
    rules: bool = False,
) -> dict[str, np.ndarray]:
    """Probabilities sigmoid(logits) (N, C) of the model's prediction (`scores`), with the batch labels and
    indices; with `rules`, also `rule/<name>` for every prediction rule the model has (`model.rule_logits`)."""
    model.eval()
    predictor = unwrap(model)
    out: dict[str, list] = {"scores": [], "labels_observed": [], "labels_full": [], "index": []}
    for batch in batches:
        images = to_device({"image": batch["image"]}, device)["image"]
        with autocast(device, amp):
            logits = predictor.rule_logits(images) if rules else {"predicted": predictor.predict(images)}
        if rules:
            for name, value in logits.items():
                out.setdefault(f"rule/{name}", []).append(torch.sigmoid(value.float()).cpu())
            logits["predicted"] = logits[getattr(predictor, "prediction", "single")]
        out["scores"].append(torch.sigmoid(logits["predicted"].float()).cpu())
        for key in ("labels_observed", "labels_full", "index"):
            out[key].append(batch[key])
    return {k: torch.cat(v).numpy() for k, v in out.items()}


def predict_split(
    model: nn.Module,
    data_dir,
    split: str,
    *,
    spec: InputSpec,
    rules: bool = False,
    batch_size: int = 128,
    processes: int | None = None,
) -> dict:
    """`predict_scores` over a whole split on the CPU, in dataset order; `processes` loader processes (None:
    the cores less one)."""
    dataset = MultiLabelDataset(data_dir, split, build_transform(False, spec))
    processes = loader_processes(processes, torch.device("cpu"), training_rank=False)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=processes)
    return predict_scores(model, loader, device=torch.device("cpu"), amp=False, rules=rules)


def gather_predictions(local: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All ranks' predictions in dataset order, sampler padding (repeated indices) dropped."""
    if distributed.is_distributed():
        parts: list = [None] * distributed.world_size()
        dist.all_gather_object(parts, local)
    else:
        parts = [local]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in local}
    _, first = np.unique(merged["index"], return_index=True)
    return {k: v[first] for k, v in merged.items()}


def report(labels_nc, scores_nc, train_counts_c, metrics: MetricsConfig) -> dict:
    """`comic.metrics.multilabel_report` with the shot groups and decision threshold of `metrics`."""
    return multilabel_report(
        labels_nc,
        scores_nc,
        np.asarray(train_counts_c),
        many_threshold=metrics.many_threshold,
        few_threshold=metrics.few_threshold,
        decision_threshold=metrics.decision_threshold,
    )


def evaluate(model, batches, classes: dict, metrics: MetricsConfig, *, device, amp: bool, label_key: str) -> dict:
    """Metrics of one split against `label_key` (`labels_observed` on validation: selection never sees the
    hidden labels), predictions gathered from every rank (the same result on each); `rules` holds the
    mAP of every prediction rule of the model."""
    merged = gather_predictions(predict_scores(model, batches, device=device, amp=amp, rules=True))
    result = report(merged[label_key], merged["scores"], classes["train_counts"], metrics)
    result["rules"] = {
        key.removeprefix("rule/"): percent_mean(per_class_average_precision(merged[label_key], merged[key]))
        for key in merged
        if key.startswith("rule/")
    }
    return result


def _finite(value):
    return None if isinstance(value, float) and math.isnan(value) else value


def test_report(labels_nc, scores_nc, classes: dict, metrics: MetricsConfig) -> dict:
    """metrics.json: mAP, per-group mAP, recall/precision@0.5 (percent) and per-class AP with names."""
    result = report(labels_nc, scores_nc, classes["train_counts"], metrics)
    for row in result["per_class"]:
        row["name"] = classes["names"][row["index"]]
    return {k: _finite(v) if not isinstance(v, list) else v for k, v in result.items()}


def score_on_test(model: nn.Module, data_dir, *, spec: InputSpec, metrics: MetricsConfig) -> tuple[dict, dict]:
    """`(test_report, predictions)` of a model on `data_dir`'s test split against the full labels."""
    test = predict_split(model, data_dir, "test", spec=spec)
    return test_report(test["labels_full"], test["scores"], load_classes(data_dir), metrics), test


def score_model_file(path, data_dir, metrics: MetricsConfig) -> tuple[dict, dict]:
    """`score_on_test` of a model file, with the dataset's own class statistics. Raises ValueError if the
    model predicts other classes than the dataset has."""
    model, bundle = load_model_file(path)
    names = load_classes(data_dir)["names"]
    if list(bundle["classes"]["names"]) != list(names):
        raise ValueError(
            f"{path}: the model predicts {len(bundle['classes']['names'])} classes that differ from the "
            f"{len(names)} classes of {data_dir}; it cannot be evaluated on this test split"
        )
    return score_on_test(model, data_dir, spec=InputSpec.from_dict(bundle["input"]), metrics=metrics)


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


def write_reports(
    result: dict, predictions: dict, classes: dict, metrics: MetricsConfig, *, metrics_path, plots_dir, history
) -> None:
    """`metrics.json`, the plot data (AP against training count, precision-recall by shot group) and the
    plots as images, with the training curves of `history` (the train stage's per-epoch rows)."""
    labels_nc, scores_nc = predictions["labels_full"], predictions["scores"]
    write_json(metrics_path, result)
    plots_dir = Path(plots_dir)
    ap = per_class_average_precision(labels_nc, scores_nc)
    groups = shot_groups(np.asarray(classes["train_counts"]), metrics.many_threshold, metrics.few_threshold)
    ap_rows = [
        {"class": name, "train_count": int(count), "group": str(group), "ap": round(float(100 * a), 4)}
        for name, count, group, a in zip(classes["names"], classes["train_counts"], groups, ap, strict=True)
        if not math.isnan(a)
    ]
    pr_rows = precision_recall_rows(labels_nc, scores_nc, groups)
    write_csv(plots_dir / "ap_vs_train_count.csv", ap_rows)
    write_csv(plots_dir / "precision_recall.csv", pr_rows)
    plots.ap_vs_train_count(ap_rows, plots_dir / "ap_vs_train_count.png")
    plots.precision_recall(pr_rows, plots_dir / "precision_recall.png")
    plots.validation_by_group(history, plots_dir / "validation_map.png")
    plots.validation_by_rule(history, plots_dir / "validation_by_rule.png")
    plots.training_losses(history, plots_dir / "training_loss.png")
