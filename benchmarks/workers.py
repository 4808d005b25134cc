"""Two Ray Train workers (one core each, gloo DDP) against one process using both cores.

    PYTHONPATH=. .venv/bin/python benchmarks/workers.py --data data/plt --epochs 4 --out docs/results/workers.json

Both train the default params for `--epochs` epochs on the same data; throughput is the median over
epochs after the first of `train/images_per_s` (loaded images per second, data loading included, summed
over ranks). The ratio ray/single is the cost of the distributed path on one machine (goal >= 0.85).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch

from comic import checkpoint
from comic.config import load_params, override
from comic.training import LocalReporter, train


def median_throughput(history: list[dict]) -> float:
    return statistics.median(row["train/images_per_s"] for row in history[1:] or history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/plt")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--model", default="comic", choices=["comic", "single"])
    parser.add_argument("--out", default="docs/results/workers.json")
    args = parser.parse_args()
    params = override(load_params(), {"train.epochs": args.epochs, "model.name": args.model})

    torch.set_num_threads(2)
    os.environ["OMP_NUM_THREADS"] = "2"
    with tempfile.TemporaryDirectory() as folder:
        single = LocalReporter(Path(folder))
        train(params, args.data, single)
    single_rate = median_throughput(single.history)
    print(f"one process, 2 threads: {single_rate:.1f} images/s", flush=True)

    import ray

    from comic.ray_train import fit, init_ray

    init_ray(num_cpus=2)
    try:
        with tempfile.TemporaryDirectory() as folder:
            result = fit(params, args.data, storage_path=folder, name="bench-workers")
            with result.checkpoint.as_directory() as last:
                history = checkpoint.load(last)[0][checkpoint.PROGRESS]["history"]
    finally:
        ray.shutdown()
    ray_rate = median_throughput(history)
    print(f"Ray Train, 2 workers x 1 core: {ray_rate:.1f} images/s; ratio {ray_rate / single_rate:.3f}", flush=True)
    Path(args.out).write_text(
        json.dumps(
            {
                "model": args.model,
                "epochs": args.epochs,
                "single_process_images_per_s": single_rate,
                "ray_two_workers_images_per_s": ray_rate,
                "ratio": ray_rate / single_rate,
            },
            indent=1,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
