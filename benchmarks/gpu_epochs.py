"""A few epochs of the real training loop on one GPU, as rank 0 of a one-process NCCL group.

    PYTHONPATH=. python benchmarks/gpu_epochs.py --data data/plt --epochs 3 --out gpu_epochs.json

This is the train stage's loop (`comic.training.train`: loaders, DDP wrapper, per-epoch collectives,
validation, checkpoints) without Ray, MLflow or DVC, so it runs on a machine that has only torch,
torchvision and the data packages. The one-rank NCCL group makes every collective of an epoch go through
NCCL, as on a multi-GPU cluster. Per epoch: loaded images/s, train loss and validation mAP.
`--no-ddp` trains in a plain process instead. CPU smoke test: `--device cpu` (gloo).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist

from comic.config import load_params, override
from comic.training import LocalReporter, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/plt")
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--model", default="comic", choices=["comic", "single"])
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--no-ddp", action="store_true")
    parser.add_argument("--compile", action="store_true", help="train.compile: torch.compile the training step")
    parser.add_argument("--out", default="gpu_epochs.json")
    args = parser.parse_args()
    cuda = args.device == "cuda"
    updates = {"train.epochs": args.epochs, "model.name": args.model, "train.use_gpu": cuda}
    updates["train.compile"] = args.compile
    params = override(load_params(args.params), updates)
    ddp = not args.no_ddp
    started = time.time()
    with tempfile.TemporaryDirectory() as folder:
        if ddp:
            dist.init_process_group(
                "nccl" if cuda else "gloo",
                init_method=f"file://{folder}/store",
                rank=0,
                world_size=1,
                timeout=timedelta(seconds=120),
            )
        try:
            reporter = LocalReporter(Path(folder) / "run")
            train(params, args.data, reporter)
        finally:
            if ddp:
                dist.destroy_process_group()
    rows = [
        {k: row[k] for k in ("epoch", "train/images_per_s", "train/loss", "val/mAP", "correction/precision")}
        for row in reporter.history
    ]
    for row in rows:
        print(json.dumps(row), flush=True)
    result = {
        "device": torch.cuda.get_device_name() if cuda else "cpu",
        "torch": torch.__version__,
        "ddp": "one-process NCCL group" if ddp and cuda else ("one-process gloo group" if ddp else "none"),
        "model": args.model,
        "compile": args.compile,
        "epochs": rows,
        "wall_s": round(time.time() - started, 1),
    }
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")


if __name__ == "__main__":
    main()
