"""The model as an MLflow pyfunc: encoded images in, per-class probabilities and labels out.

Input: a DataFrame with a column `image` holding encoded image bytes (PNG/JPEG), or base64 text of them
(what a JSON scoring request carries). Output: one column per class with its probability, and `labels`,
the classes above their per-class thresholds (chosen on validation). Preprocessing (decode, grey to RGB,
resize, normalise) travels with the model, so serving needs no other code.
"""

from __future__ import annotations

import base64
import binascii
import logging
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from comic.images import decode_image
from comic.tracking import mlflow_uri

MODEL_ARTIFACT = "model"
MAX_ROWS = 256  # images per scoring request
log = logging.getLogger(__name__)


def _row_bytes(value, row: int) -> bytes:
    """Encoded image bytes of a request row: bytes as given, or base64 text decoded."""
    if not isinstance(value, str | bytes | bytearray):
        raise ValueError(f"row {row}: `image` must be base64 text (or bytes), not {type(value).__name__}")
    if isinstance(value, str):
        try:
            return base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError) as err:
            raise ValueError(f"row {row}: `image` is text but not base64 ({err})") from err
    return value


class ComicModel(mlflow.pyfunc.PythonModel):
    """pyfunc wrapper around a `comic.export` model file (weights load with weights_only=True)."""

    def load_context(self, context) -> None:
        self.load(context.artifacts[MODEL_ARTIFACT])

    def load(self, model_path: str | Path) -> ComicModel:
        from comic.data.transforms import InputSpec, build_transform
        from comic.export import load_model_file

        self.model, self.bundle = load_model_file(model_path)
        self.transform = build_transform(False, InputSpec.from_dict(self.bundle["input"]))
        return self

    @property
    def class_names(self) -> list[str]:
        return list(self.bundle["classes"]["names"])

    def probabilities(self, images: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """(N, C) class probabilities of decoded (H, W, 3) uint8 RGB images."""
        import torch

        out = []
        for start in range(0, len(images), batch_size):
            batch = torch.stack([self.transform(image) for image in images[start : start + batch_size]])
            with torch.no_grad():
                out.append(torch.sigmoid(self.model.predict(batch)).numpy())
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)))

    def labels(self, probabilities_nc: np.ndarray) -> list[list[str]]:
        """Per image, the classes whose probability reaches their threshold (chosen on validation)."""
        thresholds = np.asarray(self.bundle["thresholds"])
        return [
            [n for n, s, t in zip(self.class_names, row, thresholds, strict=True) if s >= t] for row in probabilities_nc
        ]

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """A bad request (a missing column, too many rows, a row that is not an image or is too large)
        answers HTTP 400 with one line naming the row; the details are logged here, not sent.

        The DataFrame hint tells MLflow that the logged signature, not a type hint, validates the input."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import BAD_REQUEST

        try:
            if "image" not in model_input:
                raise ValueError("input needs a column `image` with encoded image bytes or base64 text")
            if len(model_input) > MAX_ROWS:
                raise ValueError(f"a request has at most {MAX_ROWS} rows, this one {len(model_input)}; split it")
            images = [decode_image(_row_bytes(v, row), f"row {row}") for row, v in enumerate(model_input["image"])]
        except ValueError as err:
            log.warning("refused a scoring request: %s", err)
            raise MlflowException(str(err), error_code=BAD_REQUEST) from None
        scores = self.probabilities(images)
        out = pd.DataFrame(scores, columns=self.class_names)
        out["labels"] = self.labels(scores)
        return out


def log_pyfunc(uri: str, run_id: str, model_path: str, example_images: list[bytes]) -> str:
    """Log the model file as a pyfunc to the run, with signature and input example; returns its URI."""
    from mlflow.models import infer_signature

    example = pd.DataFrame({"image": [base64.b64encode(b).decode() for b in example_images]})
    probe = ComicModel().load(model_path)
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
