"""Does the small CNN learn the embedded benchmark with BatchNorm, GroupNorm or no normalisation?

    PYTHONPATH=. .venv/bin/python scripts/compare_norms.py --data data/plt --epochs 10

Trains `SingleHeadModel("small_cnn")` with plain BCE on the full training labels (Adam 1e-3, batch 32,
one thread) and prints the mean training loss per epoch for each normalisation.
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

from comic.data import MultiLabelDataset, build_transform
from comic.models import SingleHeadModel

NORMS = {
    "batch": lambda c: nn.BatchNorm2d(c),
    "group": lambda c: nn.GroupNorm(8, c),
    "none": lambda c: nn.Identity(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="data/plt")
    parser.add_argument("--epochs", type=int, default=10)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = MultiLabelDataset(args.data, "train", build_transform(False, 64))
    images = torch.stack([dataset[i]["image"] for i in range(len(dataset))])
    labels = torch.stack([dataset[i]["labels_full"] for i in range(len(dataset))])
    for name, make in NORMS.items():
        torch.manual_seed(0)
        model = SingleHeadModel("small_cnn", labels.shape[1])
        features = model.backbone.features
        for i, module in enumerate(features):
            if isinstance(module, nn.BatchNorm2d):
                features[i] = make(module.num_features)
        optimizer = torch.optim.Adam(model.parameters(), 1e-3)
        losses = []
        for _ in range(args.epochs):
            order, total = torch.randperm(len(images)), 0.0
            for start in range(0, len(images), 32):
                rows = order[start : start + 32]
                loss = F.binary_cross_entropy_with_logits(model(images[rows]), labels[rows], reduction="sum") / len(
                    rows
                )
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += loss.item() * len(rows)
            losses.append(round(total / len(images), 3))
        print(f"{name:>6}: {losses}", flush=True)


if __name__ == "__main__":
    main()
