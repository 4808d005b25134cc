"""The trained-model file: best weights plus everything needed to use them (params, class names and
counts, per-class decision thresholds chosen on validation, image size). Loads with weights_only=True."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from comic.config import Params, from_dict, to_dict
from comic.data.transforms import InputSpec
from comic.files import atomic_file
from comic.models import build_model

FORMAT_VERSION = 3  # 2: the prediction rule; 3: the input spec


def save_model_file(
    path: str | Path,
    weights: dict,
    params: Params,
    classes: dict,
    thresholds: list[float],
    *,
    prediction: str,
    spec: InputSpec,
) -> None:
    """Write the model file (atomically); `prediction` is the prediction rule chosen on validation, `spec`
    the trunk's input (size, normalisation), which prediction and serving reproduce."""
    bundle = {
        "format_version": FORMAT_VERSION,
        "weights": weights,
        "params": to_dict(params),
        "classes": {"names": list(classes["names"]), "train_counts": [int(c) for c in classes["train_counts"]]},
        "thresholds": [float(t) for t in thresholds],
        "input": spec.to_dict(),
        "prediction": prediction,
    }
    # Through a file object: torch names the archive inside after a path, and the temporary one is random.
    with atomic_file(path) as tmp, tmp.open("wb") as handle:
        torch.save(bundle, handle)


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> tuple[nn.Module, dict]:
    """`(model in eval mode, bundle)`; never unpickles arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file not found; run `dvc repro train` first")
    from comic.checkpoint import CheckpointError, load_tensors

    try:
        bundle = load_tensors(path, device)
    except CheckpointError as err:  # one line naming the file; torch's advice (turning weights_only off) would run it
        raise ValueError(f"{path}: not a comic model file: {str(err).removeprefix(f'{path}: ')}") from None
    if bundle.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"{path}: model file format {bundle.get('format_version')}, expected {FORMAT_VERSION}")
    params = from_dict(Params, bundle["params"])
    model = build_model(params.model, params.balance, num_classes=len(bundle["classes"]["names"]), load_weights=False)
    model.load_state_dict(bundle["weights"])
    if hasattr(model, "prediction"):
        model.prediction = bundle["prediction"]
    return model.to(device).eval(), bundle
