"""The per-worker training loop: data, model, epochs, validation, checkpoints.

It runs the same in one process or as one rank of a DDP group (Ray Train starts the group; see
`comic.ray_train`). Checkpoints and metrics go through a `Reporter`, so the loop does not depend on Ray:
`LocalReporter` keeps checkpoints in a folder (tests, single process), `comic.ray_train.RayReporter` hands
them to Ray Train. Model selection uses the validation split only.
"""

from __future__ import annotations

import os
import random
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.utils.data import DataLoader

from comic import distributed
from comic.config import Params
from comic.data import (
    ClassAwareSampler,
    InstanceSampler,
    MultiLabelDataset,
    build_transform,
    load_classes,
    seed_worker,
)
from comic.engine import Objective, build_optimizer, loss_table, predict_scores, seed_everything, train_step
from comic.metrics import multilabel_report
from comic.models import build_model
from comic.tracking import MetricSink

# Checkpoint layout: one folder per epoch with these files.
STATE_FILE = "state.pt"  # everything needed to resume (model, optimizer, scheduler, objective, RNG, history)
BEST_FILE = "best_model.pt"  # weights of the best epoch by validation mAP, with what is needed to use them


class Reporter(Protocol):
    def restore(self) -> Path | None:
        """Folder of the latest checkpoint to resume from, or None for a fresh start."""

    def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
        """Called by every rank once per epoch; rank 0 passes the checkpoint folder, others None."""


@dataclass
class LocalReporter:
    """Keeps the latest checkpoint in `root/checkpoint` and the metrics in memory."""

    root: Path
    history: list[dict] = field(default_factory=list)

    def restore(self) -> Path | None:
        latest = Path(self.root) / "checkpoint"
        return latest if (latest / STATE_FILE).is_file() else None

    def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
        self.history.append(metrics)
        if checkpoint_dir is not None:
            target = Path(self.root) / "checkpoint"
            staging = Path(self.root) / "checkpoint.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(checkpoint_dir, staging)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)


def worker_device(use_gpu: bool) -> torch.device:
    if not use_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("train.use_gpu is true but CUDA is not available; set train.use_gpu: false")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def _loader(dataset, sampler, batch_size: int, device: torch.device) -> DataLoader:
    # No loader processes on CPU: the cores already run one training worker each. Loader processes are
    # not persistent, so each epoch reseeds them from torch's (checkpointed) RNG and a resume is exact.
    workers = 4 if device.type == "cuda" else 0
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=workers,
        worker_init_fn=seed_worker,
        pin_memory=device.type == "cuda",
    )


@dataclass
class RunData:
    train: MultiLabelDataset
    val: MultiLabelDataset
    classes: dict
    instance: InstanceSampler
    rebalanced: ClassAwareSampler | None
    val_sampler: InstanceSampler


def load_run_data(params: Params, data_dir: str | Path) -> RunData:
    size = params.data.image_size
    train = MultiLabelDataset(data_dir, "train", build_transform(True, size))
    val = MultiLabelDataset(data_dir, "val", build_transform(False, size))
    rank, world = distributed.rank(), distributed.world_size()
    seed = params.seed
    if params.model.name == "single" and params.train.sampler == "class_aware":
        instance = ClassAwareSampler(train.labels_observed, seed=seed, num_replicas=world, rank=rank)
    else:
        instance = InstanceSampler(len(train), seed=seed, num_replicas=world, rank=rank, shuffle=True)
    rebalanced = None
    if params.model.name == "comic":
        rebalanced = ClassAwareSampler(train.labels_observed, seed=seed + 1, num_replicas=world, rank=rank)
    val_sampler = InstanceSampler(len(val), seed=seed, num_replicas=world, rank=rank, shuffle=False)
    return RunData(train, val, load_classes(data_dir), instance, rebalanced, val_sampler)


def per_worker_batch(global_batch: int) -> int:
    world = distributed.world_size()
    if global_batch % world:
        raise ValueError(f"train.batch_size ({global_batch}) must be divisible by train.num_workers ({world})")
    return global_batch // world


def gather_predictions(local: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """All ranks' predictions in dataset order, sampler padding (repeated indices) dropped."""
    if distributed.is_distributed():
        parts: list = [None] * distributed.world_size()
        dist.all_gather_object(parts, local)
    else:
        parts = [local]
    merged = {k: np.concatenate([p[k] for p in parts]) for k in local}
    _, first = np.unique(merged["index"], return_index=True)
    return {k: v[first] for k, v in merged.items()}


def _rng_state() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def _mean_parts(steps: list[dict], epoch: int) -> dict[str, float]:
    """Epoch means of the step losses, averaged over ranks (sum on each rank, all-reduce, divide)."""
    keys, table = loss_table(steps, epoch)
    sums = table.sum(0)
    count = torch.tensor([float(len(steps))], dtype=torch.float64)
    distributed.all_reduce_sum(sums)
    distributed.all_reduce_sum(count)
    return {f"train/{k}": float(v) for k, v in zip(keys, sums / count, strict=True)}


def _batches(data: RunData, batch_size: int, device: torch.device) -> Iterator[dict]:
    instance = _loader(data.train, data.instance, batch_size, device)
    if data.rebalanced is None:
        for batch in instance:
            yield {"instance": batch}
        return
    rebalanced = _loader(data.train, data.rebalanced, batch_size, device)
    for first, second in zip(instance, rebalanced, strict=False):
        yield {"instance": first, "rebalanced": second}


def train(params: Params, data_dir: str | Path, reporter: Reporter, sink: MetricSink | None = None) -> dict:
    """Train for `params.train.epochs`, resuming from the reporter's checkpoint if there is one.
    Returns the last epoch's metrics (identical on every rank)."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    device = worker_device(params.train.use_gpu)
    seed_everything(params.seed + distributed.rank())
    data = load_run_data(params, data_dir)
    num_classes = len(data.classes["names"])
    class_counts = torch.tensor(data.classes["train_counts"], dtype=torch.float32)

    model = build_model(params.model, params.balance, num_classes=num_classes).to(device)
    if device.type == "cuda" and distributed.is_distributed():
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    objective = Objective(params, class_counts=class_counts, num_samples=len(data.train)).to(device)
    optimizer = build_optimizer(model, lr=params.train.lr, weight_decay=params.train.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.train.epochs)
    progress = {"epoch": 0, "best_val_map": -1.0, "best_epoch": -1, "history": [], "resumed_at": []}

    checkpoint = reporter.restore()
    best_state = None
    if checkpoint is not None:
        state = torch.load(checkpoint / STATE_FILE, map_location=device, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        objective.load_state_dict(state["objective"])
        _set_rng_state(state["rng"][min(distributed.rank(), len(state["rng"]) - 1)])
        progress = state["progress"]
        progress["resumed_at"].append(progress["epoch"])
        best_state = torch.load(checkpoint / BEST_FILE, map_location="cpu", weights_only=True)

    wrapped: nn.Module = model
    if distributed.is_distributed():
        device_ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if params.train.compile:
        wrapped = torch.compile(wrapped)

    batch_size = per_worker_batch(params.train.batch_size)
    metrics: dict = progress["history"][-1] if progress["history"] else {}
    for epoch in range(progress["epoch"], params.train.epochs):
        for sampler in (data.instance, data.rebalanced):
            if sampler is not None:
                sampler.set_epoch(epoch)
        data.train.transform.set_random_seed(params.seed * 100_003 + epoch * 1_009 + distributed.rank())
        started, images = time.perf_counter(), 0
        steps = []
        for batches in _batches(data, batch_size, device):
            steps.append(
                train_step(wrapped, objective, optimizer, batches, epoch=epoch, device=device, amp=params.train.amp)
            )
            images += sum(len(batch["index"]) for batch in batches.values())
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the steps were queued, not finished
        throughput = distributed.all_reduce_sum(torch.tensor([images / (time.perf_counter() - started)]))
        scheduler.step()
        metrics = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], **_mean_parts(steps, epoch)}
        # Loaded images (both streams for COMIC, data loading included) per second, summed over ranks.
        metrics["train/images_per_s"] = float(throughput)
        metrics.update({f"correction/{k}": v for k, v in objective.end_epoch().items()})
        val = evaluate(model, data.val, data.val_sampler, data.classes, params, device, batch_size, "labels_observed")
        metrics.update({f"val/{k}": v for k, v in val.items() if k != "per_class"})
        if metrics["val/mAP"] > progress["best_val_map"]:
            progress.update(best_val_map=metrics["val/mAP"], best_epoch=epoch)
            best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
        metrics.update({"best/val_mAP": progress["best_val_map"], "best/epoch": progress["best_epoch"]})
        progress["epoch"] = epoch + 1
        progress["history"].append(metrics)
        rng = _gather_rng()
        with tempfile.TemporaryDirectory() as folder:
            checkpoint_dir = None
            if distributed.rank() == 0:
                checkpoint_dir = Path(folder)
                state = {
                    "model": model.state_dict(),
                    "optimizer": optimizer.state_dict(),
                    "scheduler": scheduler.state_dict(),
                    "objective": objective.state_dict(),
                    "rng": rng,
                    "progress": progress,
                }
                torch.save(state, checkpoint_dir / STATE_FILE)
                torch.save(best_state, checkpoint_dir / BEST_FILE)
            reporter.report(metrics, checkpoint_dir)
        if sink is not None and distributed.rank() == 0:
            sink.log(metrics, step=epoch)
    return metrics


def _gather_rng() -> list[dict]:
    """Every rank's RNG state, so that each rank resumes its own stream."""
    state = _rng_state()
    if not distributed.is_distributed():
        return [state]
    states: list = [None] * distributed.world_size()
    dist.all_gather_object(states, state)
    return states


def evaluate(model, dataset, sampler, classes, params: Params, device, batch_size: int, label_key: str) -> dict:
    """Metrics on one split against `label_key` (`labels_observed` on validation: selection never sees the
    hidden labels), predictions gathered from every rank (the same result on each)."""
    loader = _loader(dataset, sampler, batch_size, device)
    local = predict_scores(model, loader, device=device, amp=params.train.amp)
    merged = gather_predictions(local)
    return multilabel_report(
        merged[label_key],
        merged["scores"],
        np.asarray(classes["train_counts"]),
        many_threshold=params.metrics.many_threshold,
        few_threshold=params.metrics.few_threshold,
        decision_threshold=params.metrics.decision_threshold,
    )
