"""Measure the data layer: build time of the embedded benchmark and loader throughput per core.

Throughput is decode + transform of `MultiLabelDataset[i]` in one process with one thread (cv2 and
torch), i.e. images/s per core; then a whole DataLoader (batch 32, collate included) on the train split
with 0 and 2 worker processes. Two inputs: the embedded benchmark's PNG mosaics (grey, data.image_size
px) and 224 px colour JPEGs (quality 90) made from the same mosaics, a stand-in for resized photos.
    python benchmarks/data_loading.py --params params.yaml [--images 1000] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from comic.config import load_params
from comic.data.build import build_raw
from comic.data.dataset import MultiLabelDataset
from comic.data.partial import hide_labels
from comic.data.samplers import InstanceSampler
from comic.data.split import carve_validation
from comic.data.store import read_split, write_dataset, write_split
from comic.data.tiles import TILE_BANK_PATH
from comic.data.transforms import InputSpec, build_transform, seed_worker


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def build_times(params_path: str, out: Path) -> dict:
    data = load_params(params_path).data
    raw, t_build = timed(lambda: build_raw(data, TILE_BANK_PATH))
    _, t_write = timed(lambda: write_dataset(out / "raw", [raw.train, raw.test], {"names": raw.names}))
    (train, val), t_split = timed(lambda: carve_validation(raw.train, data.val_fraction, data.seed))
    rate, seed = data.missing_rate, data.seed
    (train, val), t_hide = timed(lambda: (hide_labels(train, rate, seed), hide_labels(val, rate, seed)))
    _, t_write2 = timed(lambda: write_dataset(out / "plt", [train, val, raw.test], {"names": raw.names}))
    return {
        "train_pool_images": len(raw.train),
        "test_images": len(raw.test),
        "generate_and_render_s": t_build,
        "carve_validation_s": t_split,
        "hide_labels_s": t_hide,
        "write_parquet_s": t_write + t_write2,
    }


def as_jpeg_split(source_dir: Path, out_dir: Path, size: int) -> None:
    """The test split re-encoded as `size` px colour JPEGs (tinted mosaics), same ids and labels."""
    table = MultiLabelDataset(source_dir, "test", build_transform(False, InputSpec(size)))
    rng = np.random.default_rng(0)
    images = []
    for i in range(len(table)):
        grey = cv2.resize(table.decode(i)[:, :, 0], (size, size), interpolation=cv2.INTER_LINEAR)
        tint = rng.uniform(0.5, 1.0, size=3)
        colour = (grey[:, :, None] * tint + rng.normal(0, 6, (size, size, 3))).clip(0, 255).astype(np.uint8)
        images.append(cv2.imencode(".jpg", colour, [cv2.IMWRITE_JPEG_QUALITY, 90])[1].tobytes())
    write_split(out_dir, read_split(source_dir, "test").replace(images=images))


def throughput(data_dir: Path, split: str, train: bool, size: int, count: int, repeats: int = 5) -> dict:
    """Images/s of `dataset[i]` over `repeats` runs of `count` items: best and median (noisy machines)."""
    dataset = MultiLabelDataset(data_dir, split, build_transform(train, InputSpec(size), seed=0))
    order = np.arange(count) % len(dataset)
    for i in order[:50]:  # warm-up
        dataset[int(i)]
    rates = [count / timed(lambda: [dataset[int(i)] for i in order])[1] for _ in range(repeats)]
    return {"best": max(rates), "median": float(np.median(rates))}


def loader_throughput(data_dir: Path, size: int, workers: int, epochs: int = 5) -> float:
    """Images/s of a DataLoader (batch 32, persistent workers) over `epochs` passes of the train split."""
    dataset = MultiLabelDataset(data_dir, "train", build_transform(True, InputSpec(size), seed=0))
    sampler = InstanceSampler(len(dataset), seed=0)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=32,
        sampler=sampler,
        num_workers=workers,
        worker_init_fn=seed_worker,
        persistent_workers=workers > 0,
    )
    start = time.perf_counter()
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for _ in loader:
            pass
    return epochs * len(dataset) / (time.perf_counter() - start)


def main() -> None:
    formatter = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=formatter)
    parser.add_argument("--params", default="params.yaml")
    parser.add_argument("--images", type=int, default=1000, help="items per timed run (5 runs per row)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    size = load_params(args.params).data.image_size

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        build = build_times(args.params, tmp)
        as_jpeg_split(tmp / "plt", tmp / "jpeg", 224)
        rows = {
            f"png_{size}px_grey_train": throughput(tmp / "plt", "train", True, size, args.images),
            f"png_{size}px_grey_eval": throughput(tmp / "plt", "test", False, size, args.images),
            "jpeg_224px_colour_train": throughput(tmp / "jpeg", "test", True, 224, args.images),
            "jpeg_224px_colour_eval": throughput(tmp / "jpeg", "test", False, 224, args.images),
        }
        loader = {f"{w}_workers": loader_throughput(tmp / "plt", size, w) for w in (0, 2)}
    cpu = platform.processor() or platform.machine()
    machine = f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}"
    results = {
        "machine": machine,
        "build": build,
        "images_per_s_per_core": rows,
        "dataloader_images_per_s": loader,
    }
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
