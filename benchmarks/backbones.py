"""Training speed of COMIC on each backbone: fine-tuned, frozen (live trunk), frozen on cached features.

    PYTHONPATH=. .venv/bin/python benchmarks/backbones.py --input-size 64 --threads 2 \
        --out docs/results/backbones.json

COMIC with the shared trunk (what a frozen trunk needs; a fine-tuned one could also use three), 20
classes, a batch of `--batch` images per stream, `comic.engine.train_step` on the CPU with `--threads`
torch threads; images/s counts all three streams (head and balanced see the instance batch, tail the
re-balanced one: 3 x batch per step) over `--steps` timed steps after 2 warm-up steps. `cached` feeds
the trunk's (B, D) features, as training on the cache_features stage's cache does; its one-off cost is the
trunk's eval-mode throughput, reported as `embed_images_per_s`.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from comic.config import Params, override
from comic.engine import build_optimizer, objective_for, seed_everything, train_step
from comic.models import build_model

BACKBONES = ("small_cnn", "resnet18", "resnet50", "efficientnet_lite0")


def batch(size: int, image: tuple[int, ...], classes: int, generator) -> dict:
    labels = (torch.rand(size, classes, generator=generator) < 0.1).float()
    return {
        "image": torch.randn(size, *image, generator=generator),
        "labels_observed": labels,
        "labels_full": labels,
        "index": torch.arange(size),
    }


def measure(backbone: str, mode: str, args) -> dict:
    pretrained = backbone == "efficientnet_lite0" and mode != "fine-tuned"
    updates = {
        "model.backbone": backbone,
        "model.pretrained": pretrained,
        "model.freeze_backbone": mode != "fine-tuned",
        "model.input_size": args.input_size,
        "balance.shared_backbone": True,
        "correction.start_epoch": 0,
    }
    if mode != "fine-tuned" and backbone != "efficientnet_lite0":  # frozen needs weights: a local random file
        updates.update({"model.pretrained": False, "model.pretrained_path": args.weights[backbone]})
    params = override(Params(), updates)
    seed_everything(0)
    model = build_model(params.model, params.balance, num_classes=20)
    trunk = model.trunk
    dim = model.classifiers["head"].weight.shape[1]
    generator = torch.Generator().manual_seed(0)
    shape = (dim,) if mode == "frozen, cached" else (3, args.input_size, args.input_size)
    batches = {s: batch(args.batch, shape, 20, generator) for s in ("instance", "rebalanced")}
    counts = (batches["instance"]["labels_observed"].sum(0) + 1) * 10
    loss = objective_for(
        params,
        class_counts=counts,
        num_samples=1000,
        groups=["many"] * 5 + ["medium"] * 10 + ["few"] * 5,
        cooccurrence=None,
    )
    optimizer = build_optimizer(model, lr=1e-3, weight_decay=0.0, classifier_lr_scale=1.0)
    cpu = torch.device("cpu")
    times = []
    for step in range(2 + args.steps):
        started = time.perf_counter()
        train_step(model, loss, optimizer, batches, epoch=0, device=cpu, amp=False)
        if step >= 2:
            times.append(time.perf_counter() - started)
    row = {"backbone": backbone, "mode": mode, "images_per_s": round(3 * args.batch / statistics.median(times), 1)}
    if mode == "frozen, cached":
        trunk.eval()
        images = torch.randn(args.batch, 3, args.input_size, args.input_size, generator=generator)
        with torch.no_grad():
            started = time.perf_counter()
            trunk(images)
            row["embed_images_per_s"] = round(args.batch / (time.perf_counter() - started), 1)
    print(row, flush=True)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--input-size", type=int, default=64)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--out", default="docs/results/backbones.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import tempfile
    from pathlib import Path

    from comic.files import write_json
    from comic.models.backbones import build_backbone

    folder = Path(tempfile.mkdtemp(prefix="comic-weights-"))
    args.weights = {}
    for name in args.backbones:  # random "pretrained" files for frozen rows of trunks without offline weights
        if name not in ("efficientnet_lite0", "small_cnn"):
            module, _, _ = build_backbone(name, pretrained=False, pretrained_path=None, norm="batch")
            args.weights[name] = str(folder / f"{name}.pt")
            torch.save(module.state_dict(), args.weights[name])
    modes = ("fine-tuned", "frozen, live", "frozen, cached")
    rows = [measure(b, m, args) for b in args.backbones for m in modes if b != "small_cnn" or m == "fine-tuned"]
    command = "PYTHONPATH=. .venv/bin/python benchmarks/backbones.py"
    command += f" --input-size {args.input_size} --threads {args.threads} --batch {args.batch}"
    write_json(args.out, {"command": command, "batch_per_stream": args.batch, "rows": rows})


if __name__ == "__main__":
    main()
