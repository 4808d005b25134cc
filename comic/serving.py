"""The model as an MLflow pyfunc: encoded images in, per-class probabilities and labels out.

Input: a DataFrame with a column `image` holding encoded image bytes (PNG/JPEG), or base64 text of them
(what a JSON scoring request carries). Output: one column per class with its probability, and `labels`,
the classes above their per-class thresholds (chosen on validation). Preprocessing (decode, grey to RGB,
resize, normalise) travels with the model, so serving needs no other code.
"""

from __future__ import annotations

import base64
import binascii
from pathlib import Path

import mlflow.pyfunc
import numpy as np

from comic.tracking import mlflow_uri

MODEL_ARTIFACT = "model"


def decode_image(value, row: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB from bytes or base64 text; the error names the row."""
    import cv2

    data = value
    if isinstance(value, str):
        try:
            data = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ValueError(f"row {row}: `image` is text but not base64 ({err})") from err
    image = cv2.imdecode(np.frombuffer(bytes(data), np.uint8), cv2.IMREAD_ANYCOLOR)
    if image is None:
        raise ValueError(f"row {row}: `image` does not decode as PNG/JPEG")
    if image.ndim == 2:
        return np.repeat(image[:, :, None], 3, axis=2)
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class ComicModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around a `comic.export` model file (weights load with weights_only=True)."""

    def load_context(self, context) -> None:
        from comic.data import build_transform
        from comic.export import load_model_file

        self.model, self.bundle = load_model_file(context.artifacts[MODEL_ARTIFACT])
        self.transform = build_transform(False, self.bundle["image_size"])

    def predict(self, context, model_input, params=None):
        import pandas as pd
        import torch

        if "image" not in model_input:
            raise ValueError("input needs a column `image` with encoded image bytes or base64 text")
        names, thresholds = self.bundle["classes"]["names"], np.asarray(self.bundle["thresholds"])
        probabilities = []
        images = list(model_input["image"])
        for start in range(0, len(images), 64):
            batch = torch.stack(
                [self.transform(decode_image(v, start + i)) for i, v in enumerate(images[start : start + 64])]
            )
            with torch.no_grad():
                probabilities.append(torch.sigmoid(self.model.predict(batch)).numpy())
        scores = np.concatenate(probabilities) if probabilities else np.zeros((0, len(names)))
        out = pd.DataFrame(scores, columns=names)
        out["labels"] = [[n for n, s, t in zip(names, row, thresholds, strict=True) if s >= t] for row in scores]
        return out


def log_pyfunc(uri: str, run_id: str, model_path: str, example_images: list[bytes]) -> str:
    """Log the model file as a pyfunc to the run, with signature and input example; returns its URI."""
    import pandas as pd
    from mlflow.models import infer_signature

    example = pd.DataFrame({"image": [base64.b64encode(b).decode() for b in example_images]})
    probe = ComicModel()
    probe.load_context(type("Context", (), {"artifacts": {MODEL_ARTIFACT: model_path}})())
    signature = infer_signature(example, probe.predict(None, example))
    with mlflow_uri(uri), mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).with_name("pyfunc_entry.py")),
            artifacts={MODEL_ARTIFACT: model_path},
            code_paths=[str(Path(__file__).resolve().parent)],
            signature=signature,
            input_example=example,
            pip_requirements=_requirements(),
        )
    return info.model_uri


def _requirements() -> list[str]:
    """Pinned from the running environment (inference of requirements costs 7-18 s per call)."""
    from importlib.metadata import version

    names = ["torch", "torchvision", "numpy", "pandas", "opencv-python-headless", "albumentations", "mlflow"]
    return [f"{name}=={version(name)}" for name in names]
