"""The model as an MLflow pyfunc: encoded images in, per-class probabilities and labels out.

Input: a DataFrame with a column `image` holding encoded image bytes (PNG/JPEG), or base64 text of them
(what a JSON scoring request carries). Output: one column per class with its probability, and `labels`,
the classes above their per-class thresholds (chosen on validation). Preprocessing (decode, grey to RGB,
resize, normalise) travels with the model, so serving needs no other code.

Memory is bounded per request, not per image only: every row's header is read before anything is
decoded (each image at most `MAX_PIXELS`, all rows together at most `MAX_REQUEST_PIXELS`), and rows are
decoded and resized one at a time, so at most one full-size image is in memory at once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections.abc import Iterable
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd

from comic.images import MAX_PIXELS, decode_image, image_size
from comic.tracking import mlflow_uri

MODEL_ARTIFACT = "model"
MAX_ROWS = 256  # images per scoring request
MAX_REQUEST_PIXELS = 200_000_000  # declared pixels of one request's rows together: five images at MAX_PIXELS
# Tag of a logged model: the sha256 of all its files (`artifact_sha256`), computed by the train stage.
ARTIFACT_TAG = "comic.artifact_sha256"
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

    def probabilities(self, encoded: Iterable[tuple[str, bytes]], batch_size: int = 64) -> np.ndarray:
        """(N, C) class probabilities of encoded images, given as (where, bytes) (`where` names the image in
        errors). Each image is decoded and resized before the next is read: a batch holds `batch_size`
        resized tensors and at most one full-size image, whatever the images' sizes."""
        out, batch = [], []
        for where, data in encoded:
            batch.append(self.transform(decode_image(data, where)))  # (3, S, S); the decoded image is dropped
            if len(batch) == batch_size:
                out.append(self._forward(batch))
                batch = []
        if batch:
            out.append(self._forward(batch))
        return np.concatenate(out) if out else np.zeros((0, len(self.class_names)))

    def _forward(self, batch: list) -> np.ndarray:
        import torch

        with torch.no_grad():
            return torch.sigmoid(self.model.predict(torch.stack(batch))).numpy()  # (B, C)

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
            rows = [(f"row {row}", _row_bytes(v, row)) for row, v in enumerate(model_input["image"])]
            check_pixel_budget(rows)
            scores = self.probabilities(rows)
        except ValueError as err:
            log.warning("refused a scoring request: %s", err)
            raise MlflowException(str(err), error_code=BAD_REQUEST) from None
        out = pd.DataFrame(scores, columns=self.class_names)
        out["labels"] = self.labels(scores)
        return out


def check_pixel_budget(rows: list[tuple[str, bytes]], budget: int = MAX_REQUEST_PIXELS) -> None:
    """ValueError unless every row's header declares at most `MAX_PIXELS` and all rows together at most
    `budget` pixels; only headers are read, nothing is decoded."""
    total = 0
    for where, data in rows:
        width, height = image_size(data, where)
        if width * height > MAX_PIXELS:
            raise ValueError(
                f"{where}: image of {width} x {height} = {width * height / 1e6:.1f} MP exceeds the limit of "
                f"{MAX_PIXELS / 1e6:.0f} MP; downscale it first"
            )
        total += width * height
    if total > budget:
        raise ValueError(
            f"the request's {len(rows)} images hold {total / 1e6:.1f} MP together, more than the {budget / 1e6:.0f} "
            "MP a request may hold; split it"
        )


ENTRY_POINT = Path(__file__).with_name("pyfunc_entry.py")
CODE_DIR = Path(__file__).resolve().parent  # the comic package, logged as the pyfunc's code


def _pyfunc_kwargs(model_path: str | Path, example_images: list[bytes]) -> dict:
    """What the logged and the locally served pyfunc share: entry point, model file, signature, example."""
    from mlflow.models import infer_signature

    example = pd.DataFrame({"image": [base64.b64encode(b).decode() for b in example_images]})
    probe = ComicModel().load(model_path)
    return {
        "python_model": str(ENTRY_POINT),
        "artifacts": {MODEL_ARTIFACT: str(model_path)},
        "signature": infer_signature(example, probe.predict(None, example)),
        "input_example": example,
        "pip_requirements": _requirements(),
    }


def log_pyfunc(uri: str, run_id: str, model_path: str, example_images: list[bytes]) -> str:
    """Log the model file as a pyfunc to the run, with signature and input example; returns its URI. The
    logged model is tagged with the sha256 of all its files (`ARTIFACT_TAG`), read back right after logging:
    the gate and `comic predict` / `comic serve` check it before they use the model."""
    import tempfile

    from mlflow.tracking import MlflowClient

    with mlflow_uri(uri), mlflow.start_run(run_id=run_id):
        info = mlflow.pyfunc.log_model(
            name="model", code_paths=[str(CODE_DIR)], **_pyfunc_kwargs(model_path, example_images)
        )
    client = MlflowClient(uri)
    location = client.get_logged_model(info.model_id).artifact_location  # models:/ would add a metadata file
    with tempfile.TemporaryDirectory(prefix="comic-logged-") as scratch:
        local = mlflow.artifacts.download_artifacts(artifact_uri=location, dst_path=scratch, tracking_uri=uri)
        client.set_logged_model_tags(info.model_id, {ARTIFACT_TAG: artifact_sha256(local)})
    return info.model_uri


def save_served_model(model_path: str | Path, path: str | Path) -> Path:
    """A local pyfunc of a (verified) model file whose code is the installed comic package, not code from
    the registry: what `comic serve` hands to MLflow's scoring server."""
    import cv2

    example = cv2.imencode(".png", np.zeros((64, 64, 3), np.uint8))[1].tobytes()
    mlflow.pyfunc.save_model(path=str(path), **_pyfunc_kwargs(model_path, [example]))
    return Path(path)


def artifact_sha256(folder: str | Path) -> str:
    """sha256 over every file of a folder: its relative path and the sha256 of its bytes, in path order. Any
    added, removed, renamed or changed file (weights, code, MLmodel, requirements) changes it."""
    from comic.files import file_sha256

    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    lines = "".join(f"{p.relative_to(folder).as_posix()}\0{file_sha256(p)}\n" for p in files)
    return hashlib.sha256(lines.encode()).hexdigest()


def _requirements() -> list[str]:
    """Pinned from the running environment (inference of requirements costs 7-18 s per call)."""
    from importlib.metadata import version

    names = ["torch", "torchvision", "numpy", "pandas", "opencv-python-headless", "albumentations", "mlflow"]
    return [f"{name}=={version(name)}" for name in names]
