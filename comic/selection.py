"""After training: take the best epoch (by validation mAP), choose per-class decision thresholds on the
validation split, and write the model file and the training history. The test split is not touched."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from comic.config import Params
from comic.data import MultiLabelDataset, build_transform, load_classes
from comic.engine import predict_scores
from comic.export import save_model_file
from comic.metrics import choose_thresholds
from comic.models import build_model
from comic.training import BEST_FILE, STATE_FILE


def predict_split(model, data_dir, split: str, params: Params, batch_size: int = 128) -> dict[str, np.ndarray]:
    dataset = MultiLabelDataset(data_dir, split, build_transform(False, params.data.image_size))
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=0)
    return predict_scores(model, loader, device=torch.device("cpu"), amp=False)


def write_history(path: str | Path, history: list[dict]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    keys = sorted({k for row in history for k in row}, key=lambda k: (k != "epoch", k))
    staging = path.with_name(f".{path.name}.tmp")
    with staging.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=keys)
        writer.writeheader()
        writer.writerows(history)
    os.replace(staging, path)


def finish_training(params: Params, data_dir, checkpoint_dir: Path, model_path, history_path) -> dict:
    state = torch.load(checkpoint_dir / STATE_FILE, map_location="cpu", weights_only=False)
    best_weights = torch.load(checkpoint_dir / BEST_FILE, map_location="cpu", weights_only=True)
    classes = load_classes(data_dir)
    model = build_model(params.model, params.balance, num_classes=len(classes["names"]))
    model.load_state_dict(best_weights)
    val = predict_split(model, data_dir, "val", params)
    thresholds = choose_thresholds(val["labels_observed"], val["scores"], default=params.metrics.decision_threshold)
    save_model_file(model_path, best_weights, params, classes, thresholds.tolist())
    write_history(history_path, state["progress"]["history"])
    return state["progress"]
