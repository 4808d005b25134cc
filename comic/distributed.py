"""Collectives that are no-ops in a single process, so library code runs the same with or without DDP."""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import Tensor


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def _all_reduce(tensor: Tensor) -> None:
    """Sum in place. NCCL reduces only CUDA tensors: a CPU tensor (an epoch's counts) takes a round trip."""
    if tensor.device.type == "cpu" and dist.get_backend() == "nccl":
        on_device = tensor.cuda()
        dist.all_reduce(on_device)
        tensor.copy_(on_device)
    else:
        dist.all_reduce(tensor)


def all_reduce_sum(tensor: Tensor) -> Tensor:
    """In place: the sum over ranks."""
    if is_distributed():
        _all_reduce(tensor)
    return tensor


def all_reduce_mean(tensor: Tensor) -> Tensor:
    """In place: sum on each rank, all-reduce, divide by the number of ranks."""
    if is_distributed():
        _all_reduce(tensor)
        tensor /= dist.get_world_size()
    return tensor


def all_reduce_mean_each(*tensors: Tensor) -> list[Tensor]:
    """The mean over ranks of each tensor, in one collective: over gloo each small all-reduce costs
    0.1-4 ms of latency, so a step batches its per-step statistics. Single process: the tensors as given."""
    if not is_distributed():
        return list(tensors)
    flat = torch.cat([t.reshape(-1) for t in tensors])
    _all_reduce(flat)
    flat /= dist.get_world_size()
    return [chunk.view_as(t) for chunk, t in zip(flat.split([t.numel() for t in tensors]), tensors, strict=True)]
