"""Where tensors run: the worker's device, bf16 autocast, batch transfer, and unwrapping DDP/compile."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping

import torch
from torch import Tensor, nn


def worker_device(use_gpu: bool) -> torch.device:
    """The CPU, or this worker's GPU (LOCAL_RANK); an error saying what to set if CUDA is missing."""
    if not use_gpu:
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise RuntimeError("train.use_gpu is true but CUDA is not available; set train.use_gpu: false")
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    torch.cuda.set_device(local_rank)
    return torch.device("cuda", local_rank)


def autocast(device: torch.device, enabled: bool) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when enabled; a no-op on the CPU (bitwise-deterministic fp32 there)."""
    if device.type == "cuda" and enabled:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(batch: Mapping[str, Tensor], device: torch.device) -> dict[str, Tensor]:
    """The batch on `device`; images channels_last, the layout whose convolutions are faster on CUDA (bf16)
    and on the CPU (oneDNN: the training loop about 10 % faster, docs/studies/channels-last.md)."""
    moved = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    if moved.get("image") is not None and moved["image"].dim() == 4:  # cached trunk features are (B, D)
        moved["image"] = moved["image"].contiguous(memory_format=torch.channels_last)
    return moved


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside torch.compile and DistributedDataParallel wrappers."""
    ddp = nn.parallel.DistributedDataParallel
    while isinstance(model, ddp) or hasattr(model, "_orig_mod"):
        model = model.module if isinstance(model, ddp) else model._orig_mod
    return model


def loader_processes(setting: int | None, device: torch.device, *, training_rank: bool = True) -> int:
    """DataLoader processes: `setting` if given, else the cores this process has less one (the process's
    own). A training rank on the CPU takes none: there each core runs a rank, and a loader process beside it
    would take its core. LOCAL_WORLD_SIZE (set by Ray Train and torchrun) shares a node's cores among ranks."""
    if setting is not None:
        return setting
    if training_rank and device.type != "cuda":
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(0, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))) - 1)
