"""The `comic` command.

comic predict --model models:/comic@champion --input <image folder | split.parquet> --output preds.jsonl
comic serve --model models:/comic@champion [--host 127.0.0.1] [--port 5001]
"""

from __future__ import annotations

import argparse
import os
import subprocess
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


def serve(args: argparse.Namespace) -> None:
    """MLflow's scoring server on a verified model file with the installed comic code: a registered
    version's files are checked against its hash tags first, and no code logged to the registry is run."""
    from comic.predict import model_file
    from comic.serving import save_served_model

    bin_dir = Path(sys.executable).parent  # the scoring server runs `uvicorn` from PATH
    with tempfile.TemporaryDirectory(prefix="comic-serve-") as scratch:
        path = model_file(args.model, _tracking_uri(args.tracking_uri, args.params), scratch)
        served = save_served_model(path, Path(scratch) / "served")
        print(f"comic serve: {args.model} verified; serving it on http://{args.host}:{args.port}", file=sys.stderr)
        command = [str(bin_dir / "mlflow"), "models", "serve", "-m", str(served), "--env-manager", "local"]
        env = os.environ | {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
        code = subprocess.call([*command, "-h", args.host, "-p", str(args.port)], env=env)
    if code:
        raise SystemExit(code)


def _model_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--model", required=True, help="models:/comic@champion, models:/comic/3 (checked by hash), or a model file"
    )
    p.add_argument(
        "--tracking-uri",
        help="MLflow tracking URI for models:/ (default: MLFLOW_TRACKING_URI, else params tracking.uri, "
        "else sqlite:///mlflow/mlflow.db)",
    )
    p.add_argument("--params", default="params.yaml", help="params file for tracking.uri (default: params.yaml)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="comic", description="COMIC multi-label classification tools")
    commands = parser.add_subparsers(dest="command", required=True)
    p = commands.add_parser(
        "predict",
        help="batch inference: per-class probabilities and labels, one JSON line per image",
        description="Run a registered model (or a model file) over an image folder or a Parquet split; "
        'writes JSON Lines {"id", "probabilities": {class: p}, "labels": [classes >= their threshold]}.',
    )
    _model_arguments(p)
    p.add_argument("--input", required=True, help="image folder (png/jpg, searched recursively) or a .parquet split")
    p.add_argument("--output", required=True, help="output JSON Lines file (written atomically)")
    p.add_argument("--batch-size", type=int, default=64, help="images per forward pass (default: 64)")
    s = commands.add_parser(
        "serve",
        help="serve a registered model (or a model file) over HTTP, verified, with comic's own code",
        description="Check a registered version's files against its hash tags, then run MLflow's scoring server "
        "(POST /invocations) on its model file with the installed comic code; no code from the registry runs.",
    )
    _model_arguments(s)
    s.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=5001, help="port (default: 5001)")
    args = parser.parse_args(argv)
    if args.command == "predict" and args.batch_size < 1:
        parser.error("--batch-size must be >= 1")
    from comic.registry import RegistryError

    try:
        {"predict": predict, "serve": serve}[args.command](args)
    except (FileNotFoundError, ValueError, RegistryError) as err:
        parser.exit(2, f"comic {args.command}: {err}\n")


if __name__ == "__main__":
    main()
