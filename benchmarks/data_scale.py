"""The data path at users' scale: synthetic photos through the data stages and a training rank's loader.

For each N it writes N synthetic photos (500 x 375 JPEG, quality 90: collages of scikit-learn's two sample
photos, shifted, flipped and tinted; 20 long-tailed classes, 1-3 labels each) plus N/10 test photos as a
`comic_json` dataset, runs build_data, split_data and drop_labels as the pipeline runs them (one process
each), and reports each stage's wall time and peak RSS (GNU time), the disk of the data outputs plus a DVC cache
(`dvc add` with the project's hardlink cache), and a training rank: `load_run_data` with the photo preset
at 224 px, then `--loader-images` images through its DataLoader (0 loader processes: per core), its peak
RSS, next to the torchvision/PIL anchor (PIL decode, torchvision's RandomResizedCrop, flip, colour jitter)
on the same files (three alternating rounds, the best of each).

    python benchmarks/data_scale.py --sizes 2000 10000 40000 --work /tmp/scale --json docs/results/data_scale.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
NUM_CLASSES = 20
WIDTH, HEIGHT = 500, 375


def photo(rng: np.random.Generator, sources: list[np.ndarray]) -> np.ndarray:
    """A 375 x 500 RGB collage of 2-4 random windows of the sample photos, flipped and tinted."""
    canvas = np.empty((HEIGHT, WIDTH, 3), np.uint8)
    cuts = np.sort(rng.integers(60, WIDTH - 60, size=rng.integers(1, 4)))
    for left, right in zip([0, *cuts], [*cuts, WIDTH], strict=True):
        source = sources[rng.integers(len(sources))]
        top, x = rng.integers(0, source.shape[0] - HEIGHT), rng.integers(0, source.shape[1] - (right - left))
        window = source[top : top + HEIGHT, x : x + right - left]
        window = window[:, ::-1] if rng.random() < 0.5 else window
        canvas[:, left:right] = np.clip(window * rng.uniform(0.7, 1.3, size=3), 0, 255)
    return canvas


def long_tailed_labels(n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, C) 0/1 rows, 1-3 labels each, class c drawn with weight (c + 1)^-1.2 (every class present)."""
    weights = np.arange(1, NUM_CLASSES + 1) ** -1.2
    weights /= weights.sum()
    labels = np.zeros((n, NUM_CLASSES), np.int8)
    for row in range(n):
        labels[row, rng.choice(NUM_CLASSES, size=rng.integers(1, 4), replace=False, p=weights)] = 1
    labels[np.arange(NUM_CLASSES) % n, np.arange(NUM_CLASSES)] = 1
    return labels


def write_photos(folder: Path, n: int, seed: int) -> int:
    """`train.json`, `test.json` and the JPEGs under `folder`; returns the JPEG bytes."""
    import cv2
    from sklearn.datasets import load_sample_images

    sources = load_sample_images().images
    rng = np.random.default_rng(seed)
    total = 0
    for split, count in (("train", n), ("test", max(200, n // 10))):
        (folder / split).mkdir(parents=True, exist_ok=True)
        entries = {}
        for row, labels in enumerate(long_tailed_labels(count, rng)):
            name = f"{row:07d}.jpg"
            ok, data = cv2.imencode(".jpg", photo(rng, sources)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 90])
            assert ok
            (folder / split / name).write_bytes(data.tobytes())
            total += len(data)
            entries[name] = labels.tolist()
        (folder / f"{split}.json").write_text(json.dumps(entries))
    return total


def params_file(folder: Path, photos: Path) -> Path:
    import yaml

    raw = yaml.safe_load((REPO / "params.yaml").read_text())
    raw["data"].update(source="comic_json", val_split="carve", image_size=224)
    raw["data"]["real"].update(
        train_annotations=str(photos / "train.json"),
        train_images=str(photos / "train"),
        test_annotations=str(photos / "test.json"),
        test_images=str(photos / "test"),
    )
    raw["model"]["input_size"] = 224
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def run_measured(argv: list[str], scratch: Path) -> dict:
    """Run a command under GNU time; its wall time and peak RSS. (wait4's ru_maxrss would not do: Linux
    carries the forking parent's peak into the child at exec.)"""
    report = scratch / "time.txt"
    started = time.perf_counter()
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), *argv], cwd=REPO, check=True)
    peak_kb = int(report.read_text().split()[-1])
    return {"wall_s": round(time.perf_counter() - started, 1), "peak_rss_mb": round(peak_kb / 1024)}


def peak_rss_mb() -> int:
    """This process's peak RSS since exec (VmHWM)."""
    status = Path("/proc/self/status").read_text()
    return round(int(next(line for line in status.splitlines() if line.startswith("VmHWM")).split()[1]) / 1024)


def disk_mb(*folders: Path) -> float:
    """Bytes on disk of `folders` together, a hard link counted once (du)."""
    out = subprocess.run(["du", "-scb", *map(str, folders)], capture_output=True, text=True, check=True).stdout
    return round(int(out.splitlines()[-1].split()[0]) / 2**20, 1)


def dvc_cache(data: Path) -> Path:
    """`dvc add` the data outputs in a scratch DVC repo with the project's cache type; its cache."""
    dvc = [sys.executable, "-m", "dvc"]
    subprocess.run([*dvc, "init", "--no-scm", "-q"], cwd=data, check=True)
    subprocess.run([*dvc, "config", "cache.type", project_cache_type()], cwd=data, check=True)
    for folder in ("images", "raw", "split", "plt"):
        subprocess.run([*dvc, "add", "-q", folder], cwd=data, check=True)
    return data / ".dvc" / "cache"


def project_cache_type() -> str:
    import configparser

    config = configparser.ConfigParser()
    config.read(REPO / ".dvc" / "config")
    return config.get("cache", "type", fallback="copy")


def rank_probe(data_dir: str, params: str, images: int) -> dict:
    """In this process: a training rank's data (`load_run_data`), then `images` of its train stream."""
    import torch
    from torch.utils.data import DataLoader

    from comic.config import load_params
    from comic.data.transforms import resolve_augment
    from comic.models import run_input_spec
    from comic.training import load_run_data

    torch.set_num_threads(1)
    p = load_params(params)
    augment = resolve_augment(p.augment, p.data.source)
    spec = run_input_spec(p)
    data = load_run_data(data_dir, spec=spec, augment=augment, seed=0, class_aware=False, rebalanced=True)
    loader = DataLoader(data.train, batch_size=32, sampler=data.rebalanced, num_workers=0)
    started, seen = time.perf_counter(), 0
    for batch in loader:
        seen += len(batch["index"])
        if seen >= images:
            break
    rate = seen / (time.perf_counter() - started)
    return {"images_per_s_per_core": round(rate, 1), "peak_rss_mb": peak_rss_mb()}


def anchor_probe(photos: str, images: int) -> dict:
    """The torchvision/PIL anchor on the same files: PIL decode, RandomResizedCrop 224, flip, jitter."""
    import torch
    from PIL import Image
    from torchvision import transforms

    torch.set_num_threads(1)
    pipeline = transforms.Compose(
        [
            transforms.RandomResizedCrop(224, scale=(0.3, 1.0)),
            transforms.RandomHorizontalFlip(),
            transforms.ColorJitter(0.2, 0.2),
            transforms.ToTensor(),
            transforms.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        ]
    )
    files = sorted(Path(photos).glob("*.jpg"))[:images]
    started = time.perf_counter()
    for path in files:
        with Image.open(path) as image:
            pipeline(image.convert("RGB"))
    return {"images_per_s_per_core": round(len(files) / (time.perf_counter() - started), 1)}


def probe(kind: str, *args: str) -> dict:
    """Run `rank_probe` or `anchor_probe` in a fresh process (its own peak RSS) and return its result."""
    out = subprocess.run(
        [sys.executable, __file__, "--probe", kind, *args], cwd=REPO, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.splitlines()[-1])


def corrupt_midway(photos: Path, data: Path, params: str, n: int) -> dict:
    """Corrupt the middle training photo, rebuild: build_data must fail naming it and leave the existing
    image store and raw dataset as they were, and no temporary folder."""
    victim = photos / "train" / f"{n // 2:07d}.jpg"
    victim.write_bytes(victim.read_bytes()[: len(victim.read_bytes()) // 3])  # a truncated JPEG
    before = {p: p.stat().st_mtime_ns for p in (data / "images").iterdir()}
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "pipelines/build_data.py", "--tile-bank", "comic/data/assets/tile_bank.npz",
         "--images", str(data / "images"), "--out", str(data / "raw"), "--params", params],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    untouched = before == {p: p.stat().st_mtime_ns for p in (data / "images").iterdir()}
    leftovers = [p.name for p in data.iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    return {
        "exit_code": done.returncode,
        "message": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "",
        "seconds_to_fail": round(time.perf_counter() - started, 1),
        "store_untouched": untouched,
        "temporary_left": leftovers,
    }


def measure(n: int, work: Path, loader_images: int, seed: int, corrupt: bool = False) -> dict:
    folder = work / f"n{n}"
    shutil.rmtree(folder, ignore_errors=True)
    photos, data = folder / "photos", folder / "data"
    data.mkdir(parents=True)
    jpeg_bytes = write_photos(photos, n, seed)
    params = str(params_file(folder, photos))
    python = sys.executable
    stages = {
        "build_data": [python, "pipelines/build_data.py", "--tile-bank", "comic/data/assets/tile_bank.npz",
                       "--images", str(data / "images"), "--out", str(data / "raw"), "--params", params],
        "split_data": [python, "pipelines/split_data.py", "--in", str(data / "raw"), "--out", str(data / "split"),
                       "--params", params],
        "drop_labels": [python, "pipelines/drop_labels.py", "--in", str(data / "split"), "--out", str(data / "plt"),
                        "--params", params],
    }  # fmt: skip
    result = {"images": n, "jpeg_mb": round(jpeg_bytes / 2**20, 1), "stages": {}}
    for name, argv in stages.items():
        result["stages"][name] = run_measured(argv, folder)
        print(f"n={n} {name}: {result['stages'][name]}", flush=True)
    outputs = [data / name for name in ("images", "raw", "split", "plt")]
    result["data_outputs_mb"] = disk_mb(*outputs)
    result["data_outputs_and_dvc_cache_mb"] = disk_mb(*outputs, dvc_cache(data))
    result["disk_ratio_to_jpeg"] = round(result["data_outputs_and_dvc_cache_mb"] / result["jpeg_mb"], 2)
    # Alternating rounds, the best of each: a throughput is what the loader can do, not the noise beside it.
    rounds = [
        (probe("rank", str(data / "plt"), params, str(loader_images)), probe("anchor", str(photos / "train"),
         str(loader_images))) for _ in range(3)
    ]  # fmt: skip
    result["training_rank"] = {
        "images_per_s_per_core": max(r["images_per_s_per_core"] for r, _ in rounds),
        "peak_rss_mb": max(r["peak_rss_mb"] for r, _ in rounds),
        "rounds": [r["images_per_s_per_core"] for r, _ in rounds],
    }
    result["anchor"] = {
        "images_per_s_per_core": max(a["images_per_s_per_core"] for _, a in rounds),
        "rounds": [a["images_per_s_per_core"] for _, a in rounds],
    }
    rank, anchor = result["training_rank"], result["anchor"]
    result["loader_vs_anchor"] = round(rank["images_per_s_per_core"] / anchor["images_per_s_per_core"], 2)
    if corrupt:
        result["corrupt_midway"] = corrupt_midway(photos, data, params, n)
    print(f"n={n}: {json.dumps(result)}", flush=True)
    shutil.rmtree(photos)  # the next size needs the disk
    shutil.rmtree(data)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 10000, 40000])
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one)")
    parser.add_argument("--loader-images", type=int, default=1500, help="images through each loader")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corrupt-check", action="store_true", help="at the last size, rebuild with a corrupt photo")
    parser.add_argument("--json", type=Path, help="write the results here (rewritten after each size)")
    parser.add_argument("--probe", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        kind, *rest = args.probe
        result = rank_probe(rest[0], rest[1], int(rest[2])) if kind == "rank" else anchor_probe(rest[0], int(rest[1]))
        print(json.dumps(result))
        return
    work = args.work or Path(tempfile.mkdtemp(prefix="comic-scale-"))
    command = "python benchmarks/data_scale.py " + " ".join(sys.argv[1:])
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    results = {"command": command, "machine": machine, "sizes": []}
    for n in args.sizes:
        corrupt = args.corrupt_check and n == args.sizes[-1]
        results["sizes"].append(measure(n, work, args.loader_images, args.seed, corrupt))
        if args.json:
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
