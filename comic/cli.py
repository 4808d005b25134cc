"""The `comic` command.

comic predict --model models:/comic@champion --input <image folder | split.parquet> --output preds.jsonl
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path


def _tracking_uri(explicit: str | None, params_path: str) -> str:
    """--tracking-uri, else MLFLOW_TRACKING_URI, else params tracking.uri, else the repository's SQLite store."""
    from comic.config import load_params
    from comic.tracking import tracking_uri

    if explicit:
        return explicit
    configured = load_params(params_path).tracking.uri if Path(params_path).is_file() else None
    return tracking_uri(configured)


def predict(args: argparse.Namespace) -> None:
    from comic.predict import load_predictor, predict_to_jsonl

    with tempfile.TemporaryDirectory(prefix="comic-predict-") as scratch:
        predictor = load_predictor(args.model, _tracking_uri(args.tracking_uri, args.params), scratch)
        rows = predict_to_jsonl(predictor, args.input, args.output, batch_size=args.batch_size)
    print(f"wrote {rows} predictions to {args.output}", file=sys.stderr)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="comic", description="COMIC multi-label classification tools")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "predict",
        help="batch inference: per-class probabilities and labels, one JSON line per image",
        description="Run a registered model (or a model file) over an image folder or a Parquet split; "
        'writes JSON Lines {"id", "probabilities": {class: p}, "labels": [classes >= their threshold]}.',
    )
    p.add_argument(
        "--model", required=True, help="models:/comic@champion, models:/comic/3 (checked by hash), or a model file"
    )
    p.add_argument("--input", required=True, help="image folder (png/jpg, searched recursively) or a .parquet split")
    p.add_argument("--output", required=True, help="output JSON Lines file (written atomically)")
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI for models:/ (default: MLFLOW_TRACKING_URI, else params tracking.uri, "
        "else sqlite:///mlflow/mlflow.db)",
    )
    p.add_argument("--params", default="params.yaml", help="params file for tracking.uri (default: params.yaml)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    from comic.registry import RegistryError

    try:
        predict(args)
    except (FileNotFoundError, ValueError, RegistryError) as err:
        parser.exit(2, f"comic {args.command}: {err}\n")


if __name__ == "__main__":
    main()
