"""Batch inference for `comic predict`: a model from the registry (or a model file) over a folder of
images or a Parquet split, written as JSON Lines: {"id", "probabilities": {class: p}, "labels": [...]}.

Labels are the classes whose probability reaches the model's per-class threshold (chosen on validation
at training time), exactly as the served pyfunc returns them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
REGISTRY_PREFIXES = ("models:/", "runs:/")  # resolved through the tracking server
URI_PREFIXES = (*REGISTRY_PREFIXES, "mlflow-artifacts:/", "file:", "s3:", "gs:")


def load_predictor(model: str, tracking_uri: str):
    """A loaded `comic.serving.ComicModel`: `model` is a comic model file, an MLflow model URI
    (models:/comic@champion, runs:/..., file:...) or a downloaded pyfunc folder."""
    from comic.serving import ComicModel

    if Path(model).is_file():
        return ComicModel().load(model)
    if not (Path(model).is_dir() or model.startswith(URI_PREFIXES)):
        raise FileNotFoundError(f"{model}: no such model file, and not an MLflow model URI (models:/comic@champion)")
    import mlflow

    from comic.registry import check_reachable, http_limits
    from comic.tracking import mlflow_uri

    store = tracking_uri.removeprefix("sqlite:///")
    if model.startswith(REGISTRY_PREFIXES) and tracking_uri.startswith("sqlite:///") and not Path(store).is_file():
        raise FileNotFoundError(
            f"no MLflow tracking store at {tracking_uri}; pass --tracking-uri or set MLFLOW_TRACKING_URI"
        )
    with mlflow_uri(tracking_uri), http_limits(timeout=30):
        check_reachable(tracking_uri, timeout=30)
        try:
            python_model = mlflow.pyfunc.load_model(model).unwrap_python_model()
        except mlflow.exceptions.MlflowException as err:
            raise ValueError(f"{model}: cannot load it from {tracking_uri} ({err})") from err
    if not hasattr(python_model, "bundle"):
        raise ValueError(f"{model}: not a comic model (its pyfunc is {type(python_model).__name__})")
    return python_model


def iter_images(source: str | Path, batch_size: int) -> tuple[int, Iterator[tuple[list[str], list[bytes]]]]:
    """(number of images, batches of (ids, encoded images)) from an image folder or a comic Parquet file.
    Folder ids are paths relative to the folder; Parquet ids are its `id` column."""
    source = Path(source)
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{source}: no {'/'.join(IMAGE_SUFFIXES)} images in this folder")

        def folder_batches():
            for start in range(0, len(files), batch_size):
                chunk = files[start : start + batch_size]
                yield [p.relative_to(source).as_posix() for p in chunk], [p.read_bytes() for p in chunk]

        return len(files), folder_batches()
    if source.is_file() and source.suffix == ".parquet":
        import pyarrow.parquet as pq

        handle = pq.ParquetFile(source)
        names = set(handle.schema_arrow.names)
        if "id" not in names or not names & {"image", "path"}:
            raise ValueError(f"{source}: a comic split file needs columns `id` and `image` or `path`")
        columns = [c for c in ("id", "image", "path") if c in names]

        def parquet_batches():
            for batch in handle.iter_batches(batch_size=batch_size, columns=columns):
                rows = batch.to_pydict()
                ids = [str(i) for i in rows["id"]]
                images = rows.get("image", [None] * len(ids))
                paths = rows.get("path", [None] * len(ids))
                yield ids, [_row_bytes(source, i, b, p) for i, b, p in zip(ids, images, paths, strict=True)]

        return handle.metadata.num_rows, parquet_batches()
    raise ValueError(f"{source}: give an image folder or a .parquet split file")


def _row_bytes(source: Path, id_: str, image: bytes | None, path: str | None) -> bytes:
    if image is not None:
        return image
    if path is None or not Path(path).is_file():
        raise FileNotFoundError(f"{source}: row {id_!r} has no image bytes and its file {path} is missing")
    return Path(path).read_bytes()


def predict_to_jsonl(predictor, source: str | Path, output: str | Path, *, batch_size: int = 64) -> int:
    """Write one JSON line per image to `output` (atomically); returns the number of rows."""
    from tqdm import tqdm

    from comic.files import atomic_file
    from comic.images import decode_image

    names = predictor.class_names
    total, batches = iter_images(source, batch_size)
    rows = 0
    with (
        atomic_file(output) as tmp,
        tmp.open("w") as handle,
        tqdm(total=total, unit="img", desc="predict", file=sys.stderr, disable=None) as bar,
    ):
        for ids, images in batches:
            decoded = [decode_image(data, f"{source}: image {id_!r}") for id_, data in zip(ids, images, strict=True)]
            probabilities = predictor.probabilities(decoded)  # (B, C)
            for id_, row, labels in zip(ids, probabilities, predictor.labels(probabilities), strict=True):
                line = {"id": id_, "probabilities": dict(zip(names, map(float, row), strict=True)), "labels": labels}
                handle.write(json.dumps(line) + "\n")
            rows += len(ids)
            bar.update(len(ids))
    return rows
