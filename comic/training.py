"""The per-worker training loop: data, model, epochs, validation, checkpoints; and the model file after it.

It runs the same in one process or as one rank of a DDP group (Ray Train starts the group; see
`comic.ray_train`). Checkpoints and metrics go through a `Reporter`, so the loop does not depend on Ray:
`LocalReporter` keeps checkpoints in a folder (tests, single process), `comic.ray_train.RayReporter` hands
them to Ray Train. Model selection uses the validation split only (`comic.history`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
import torch.distributed as dist
from torch import nn
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn
from torch.utils.data import DataLoader

from comic import checkpoint, distributed
from comic.config import Params
from comic.data.dataset import MultiLabelDataset
from comic.data.samplers import ClassAwareSampler, InstanceSampler
from comic.data.store import load_classes
from comic.data.transforms import Augment, InputSpec, build_transform, resolve_augment, seed_worker
from comic.device import loader_processes, worker_device
from comic.engine import build_optimizer, build_scheduler, loss_table, objective_for, seed_everything, train_step
from comic.evaluation import evaluate, predict_split
from comic.export import save_model_file
from comic.features import FeatureDataset, check_cache
from comic.history import SELECTED, progress_line, trailing_mean, write_history
from comic.metrics import choose_thresholds
from comic.models import build_model, run_input_spec
from comic.tracking import MetricSink


class Reporter(Protocol):
    def restored(self) -> AbstractContextManager[Path | None]:
        """Folder of the latest checkpoint to resume from (None: a fresh start), readable inside the `with`:
        a copy fetched from remote storage is deleted after."""

    def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
        """Called by every rank once per epoch; rank 0 passes the checkpoint folder, others None."""


@dataclass
class LocalReporter:
    """Keeps the latest checkpoint in `root/checkpoint` and the metrics in memory."""

    root: Path
    history: list[dict] = field(default_factory=list)

    def restored(self) -> AbstractContextManager[Path | None]:
        latest = Path(self.root) / "checkpoint"
        return nullcontext(latest if (latest / checkpoint.STATE_FILE).is_file() else None)

    def report(self, metrics: dict, checkpoint_dir: Path | None) -> None:
        self.history.append(metrics)
        if checkpoint_dir is not None:
            target = Path(self.root) / "checkpoint"
            staging = Path(self.root) / "checkpoint.tmp"
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(checkpoint_dir, staging)
            shutil.rmtree(target, ignore_errors=True)
            os.replace(staging, target)


def _loader(dataset, sampler, batch_size: int, device: torch.device, processes: int) -> DataLoader:
    # Loader processes are not persistent, so each epoch reseeds them from torch's (checkpointed) RNG and a
    # resume is exact.
    return DataLoader(
        dataset,
        batch_size=batch_size,
        sampler=sampler,
        num_workers=processes,
        worker_init_fn=seed_worker,
        pin_memory=device.type == "cuda",
    )


@dataclass
class RunData:
    train: MultiLabelDataset
    val: MultiLabelDataset
    classes: dict
    instance: InstanceSampler | ClassAwareSampler
    rebalanced: ClassAwareSampler | None
    val_sampler: InstanceSampler


def load_run_data(
    data_dir: str | Path,
    *,
    spec: InputSpec,
    augment: Augment,
    seed: int,
    class_aware: bool,
    rebalanced: bool,
    features_dir: str | Path | None = None,
) -> RunData:
    """This rank's data: the instance stream (class-aware sampled with `class_aware`), the re-balanced stream
    of COMIC's tail branch when `rebalanced`, and validation; the cached trunk features of `features_dir`
    in place of the images when given (a frozen trunk, `comic.features`)."""
    if features_dir is not None:
        train, val = FeatureDataset(features_dir, data_dir, "train"), FeatureDataset(features_dir, data_dir, "val")
    else:
        train = MultiLabelDataset(data_dir, "train", build_transform(True, spec, augment=augment))
        val = MultiLabelDataset(data_dir, "val", build_transform(False, spec))
    shard = {"num_replicas": distributed.world_size(), "rank": distributed.rank()}
    if class_aware:
        instance = ClassAwareSampler(train.labels_observed, seed=seed, **shard)
    else:
        instance = InstanceSampler(len(train), seed=seed, shuffle=True, **shard)
    second = ClassAwareSampler(train.labels_observed, seed=seed + 1, **shard) if rebalanced else None
    val_sampler = InstanceSampler(len(val), seed=seed, shuffle=False, **shard)
    return RunData(train, val, load_classes(data_dir), instance, second, val_sampler)


def per_worker_batch(global_batch: int) -> int:
    world = distributed.world_size()
    if global_batch % world:
        raise ValueError(f"train.batch_size ({global_batch}) must be divisible by train.num_workers ({world})")
    return global_batch // world


def _mean_parts(steps: list[dict], epoch: int) -> dict[str, float]:
    """Epoch means of the step losses, averaged over ranks (sum on each rank, all-reduce, divide)."""
    keys, table = loss_table(steps, epoch)
    sums = table.sum(0)
    count = torch.tensor([float(len(steps))], dtype=torch.float64)
    distributed.all_reduce_sum(sums)
    distributed.all_reduce_sum(count)
    return {f"train/{k}": float(v) for k, v in zip(keys, sums / count, strict=True)}


def _batches(data: RunData, batch_size: int, device: torch.device, processes: int) -> Iterator[dict]:
    """One epoch's batches of the instance stream (and COMIC's re-balanced one); the two streams share the
    rank's `processes` loader processes."""
    if data.rebalanced is None:
        for batch in _loader(data.train, data.instance, batch_size, device, processes):
            yield {"instance": batch}
        return
    instance = _loader(data.train, data.instance, batch_size, device, processes - processes // 2)
    rebalanced = _loader(data.train, data.rebalanced, batch_size, device, processes // 2)
    for first, second in zip(instance, rebalanced, strict=False):
        yield {"instance": first, "rebalanced": second}


def _gather_rng() -> list[dict]:
    """Every rank's RNG state, so that each rank resumes its own stream."""
    state = checkpoint.rng_state()
    if not distributed.is_distributed():
        return [state]
    states: list = [None] * distributed.world_size()
    dist.all_gather_object(states, state)
    return states


def train(
    params: Params,
    data_dir: str | Path,
    reporter: Reporter,
    sink: MetricSink | None = None,
    verbose: bool = True,
    features_dir: str | Path | None = None,
) -> dict:
    """Train for `params.train.epochs`, resuming from the reporter's checkpoint if there is one; rank 0
    prints one progress line per epoch when `verbose`. With a frozen trunk, `features_dir` holds its cached
    features (the cache_features stage). Returns the last epoch's metrics (the same on every rank)."""
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    settings = params.train
    device = worker_device(settings.use_gpu)
    seed_everything(params.seed + distributed.rank())
    comic = params.model.name == "comic"
    augment = resolve_augment(params.augment, params.data.source)
    spec = run_input_spec(params)
    processes = loader_processes(settings.loader_processes, device)
    if params.model.freeze_backbone:
        if features_dir is None:
            raise ValueError(
                "model.freeze_backbone trains on cached trunk features: pass the cache_features stage's folder"
            )
        check_cache(features_dir, params.model, spec)
    data = load_run_data(
        data_dir,
        spec=spec,
        augment=augment,
        seed=params.seed,
        class_aware=not comic and settings.sampler == "class_aware",
        rebalanced=comic,
        features_dir=features_dir if params.model.freeze_backbone else None,
    )
    num_classes = len(data.classes["names"])

    model = build_model(params.model, params.balance, num_classes=num_classes).to(device)
    if device.type == "cuda" and distributed.is_distributed():
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    objective = objective_for(
        params,
        class_counts=torch.tensor(data.classes["train_counts"], dtype=torch.float32),
        num_samples=len(data.train),
        groups=data.classes["groups"],
        cooccurrence=torch.tensor(data.classes["cooccurrence"]) if "cooccurrence" in data.classes else None,
    ).to(device)
    optimizer = build_optimizer(
        model,
        lr=settings.lr,
        weight_decay=settings.weight_decay,
        classifier_lr_scale=settings.classifier_lr_scale,
        backbone_lr_scale=settings.backbone_lr_scale,
    )
    scheduler = build_scheduler(optimizer, schedule=settings.schedule, epochs=settings.epochs)
    candidates = selection_candidates(params)
    progress = {
        "epoch": 0,
        "best_score": -1.0,
        "best_epoch": -1,
        "best_rule": candidates[0],
        "history": [],
        "resumed_at": [],
    }

    # The weight average (train.ema_decay) is what validation, selection and the model file see.
    ema = None
    if settings.ema_decay > 0:
        ema = AveragedModel(model, multi_avg_fn=get_ema_multi_avg_fn(settings.ema_decay), use_buffers=True)
    evaluated = model if ema is None else ema.module

    state, best_state = None, None
    with reporter.restored() as restored:  # the state is read into memory: a fetched copy can go
        if restored is not None:
            state, best_state = checkpoint.load(restored, map_location=device)
    if state is not None:
        model.load_state_dict(state[checkpoint.MODEL])
        optimizer.load_state_dict(state[checkpoint.OPTIMIZER])
        scheduler.load_state_dict(state[checkpoint.SCHEDULER])
        objective.load_state_dict(state[checkpoint.OBJECTIVE])
        if ema is not None:
            if checkpoint.EMA not in state:
                raise checkpoint.CheckpointError(
                    f"the checkpoint to resume (epoch {state[checkpoint.PROGRESS]['epoch']}) keeps no weight average, "
                    f"but train.ema_decay is {settings.ema_decay}: resume with the params it was made with"
                )
            ema.load_state_dict(state[checkpoint.EMA])
        ranks = state[checkpoint.RNG]
        checkpoint.set_rng_state(ranks[min(distributed.rank(), len(ranks) - 1)])
        progress = state[checkpoint.PROGRESS]
        progress["resumed_at"].append(progress["epoch"])

    wrapped: nn.Module = model
    if distributed.is_distributed():
        device_ids = [device.index] if device.type == "cuda" else None
        wrapped = nn.parallel.DistributedDataParallel(model, device_ids=device_ids)
    if settings.compile:
        wrapped = torch.compile(wrapped)

    batch_size = per_worker_batch(settings.batch_size)
    metrics: dict = progress["history"][-1] if progress["history"] else {}
    for epoch in range(progress["epoch"], settings.epochs):
        for sampler in (data.instance, data.rebalanced):
            if sampler is not None:
                sampler.set_epoch(epoch)
        if isinstance(data.train, MultiLabelDataset):  # cached features have no augmentation to seed
            data.train.transform.set_random_seed(params.seed * 100_003 + epoch * 1_009 + distributed.rank())
        started, images = time.perf_counter(), 0
        steps = []
        for batches in _batches(data, batch_size, device, processes):
            steps.append(
                train_step(wrapped, objective, optimizer, batches, epoch=epoch, device=device, amp=settings.amp)
            )
            if ema is not None:
                ema.update_parameters(model)
            images += sum(len(batch["index"]) for batch in batches.values())
        if device.type == "cuda":
            torch.cuda.synchronize(device)  # the steps were queued, not finished
        throughput = distributed.all_reduce_sum(torch.tensor([images / (time.perf_counter() - started)]))
        scheduler.step()
        metrics = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"], **_mean_parts(steps, epoch)}
        # Loaded images (both streams for COMIC, data loading included) per second, summed over ranks.
        metrics["train/images_per_s"] = float(throughput)
        metrics.update(objective.end_epoch())
        val_loader = _loader(data.val, data.val_sampler, batch_size, device, processes)
        val = evaluate(
            evaluated,
            val_loader,
            data.classes,
            params.metrics,
            device=device,
            amp=settings.amp,
            label_key="labels_observed",
        )
        metrics.update({f"val/{k}": v for k, v in val.items() if k not in ("per_class", "rules")})
        metrics.update({f"val/rule/{rule}/mAP": v for rule, v in val["rules"].items()})
        score, rule = smoothed_best(progress["history"] + [metrics], candidates, settings.select_window)
        metrics[SELECTED] = score
        if score > progress["best_score"]:
            progress.update(best_score=score, best_epoch=epoch, best_rule=rule)
            best_state = {k: v.detach().cpu().clone() for k, v in evaluated.state_dict().items()}
        metrics.update({"best/val_mAP_smoothed": progress["best_score"], "best/epoch": progress["best_epoch"]})
        progress["epoch"] = epoch + 1
        progress["history"].append(metrics)
        rng = _gather_rng()
        with tempfile.TemporaryDirectory() as folder:
            checkpoint_dir = None
            if distributed.rank() == 0:
                checkpoint_dir = Path(folder)
                state = {
                    checkpoint.MODEL: model.state_dict(),
                    checkpoint.OPTIMIZER: optimizer.state_dict(),
                    checkpoint.SCHEDULER: scheduler.state_dict(),
                    checkpoint.OBJECTIVE: objective.state_dict(),
                    checkpoint.RNG: rng,
                    checkpoint.PROGRESS: progress,
                }
                if ema is not None:
                    state[checkpoint.EMA] = ema.state_dict()
                checkpoint.save(checkpoint_dir, state, best_state)
            reporter.report(metrics, checkpoint_dir)
        if distributed.rank() == 0:
            if verbose:
                print(progress_line(metrics, settings.epochs), flush=True)
            if sink is not None:
                sink.log(metrics, step=epoch)
    return metrics


def selection_candidates(params: Params) -> list[str]:
    """The prediction rules epoch selection may choose among (`balance.prediction: auto`: three)."""
    if params.model.name == "single":
        return ["single"]
    if params.balance.prediction == "auto":
        return ["balanced", "unfused", "mean"]
    return [params.balance.prediction]


def smoothed_best(history: list[dict], rules: list[str], window: int) -> tuple[float, str]:
    """The best of `rules` by the trailing mean of its validation mAP over the last `window` epochs."""
    scores = {r: trailing_mean([row[f"val/rule/{r}/mAP"] for row in history], window) for r in rules}
    rule = max(rules, key=lambda r: scores[r])
    return scores[rule], rule


def finish_training(params: Params, data_dir, checkpoint_dir: Path, model_path, history_path) -> dict:
    """The model file of the selected epoch and prediction rule, with per-class decision thresholds chosen
    on validation, and the history CSV; returns the run's progress (best epoch and rule, history)."""
    state, best_weights = checkpoint.load(checkpoint_dir)
    progress = state[checkpoint.PROGRESS]
    classes = load_classes(data_dir)
    model = build_model(params.model, params.balance, num_classes=len(classes["names"]), load_weights=False)
    model.load_state_dict(best_weights)
    if hasattr(model, "prediction"):
        model.prediction = progress["best_rule"]
    spec = run_input_spec(params)
    val = predict_split(model, data_dir, "val", spec=spec)
    thresholds = choose_thresholds(val["labels_observed"], val["scores"], default=params.metrics.decision_threshold)
    save_model_file(
        model_path, best_weights, params, classes, thresholds.tolist(), prediction=progress["best_rule"], spec=spec
    )
    write_history(history_path, progress["history"])
    return progress
