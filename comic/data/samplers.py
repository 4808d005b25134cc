"""Samplers for single-process and DDP training, deterministic in (seed, epoch).

Both build one global sequence of `total_size` indices (a multiple of `num_replicas` R) on every rank and
give rank r the positions r, r + R, r + 2R, ..., so ranks get disjoint, equal shares, as torch's
DistributedSampler does. The first `num_real()` indices a rank yields are real; the rest (`padding` in
all ranks together) repeat earlier ones: evaluation drops them, or dedupes on the item's `index`.
"""

from __future__ import annotations

import math

import numpy as np
import torch


class _ShardedSampler(torch.utils.data.Sampler[int]):
    """Epoch, seed and rank bookkeeping; subclasses give the global order of one epoch."""

    def __init__(self, *, num_samples: int, total_size: int, seed: int, num_replicas: int, rank: int):
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise ValueError(f"need 0 <= rank < num_replicas, got {num_replicas=} {rank=}")
        self.num_samples, self.total_size = num_samples, total_size
        self.seed, self.num_replicas, self.rank, self.epoch = seed, num_replicas, rank, 0
        self.padding = max(total_size - num_samples, 0)

    def _global_order(self, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def __iter__(self):
        order = self._global_order(np.random.default_rng([self.seed, self.epoch]))
        return iter(order[self.rank : self.total_size : self.num_replicas].tolist())

    def __len__(self) -> int:
        return self.total_size // self.num_replicas

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def num_real(self) -> int:
        """How many of this rank's indices come before the padding."""
        real = min(self.num_samples, self.total_size)
        return max(0, math.ceil((real - self.rank) / self.num_replicas))


class InstanceSampler(_ShardedSampler):
    """Every image once per epoch, shuffled by (seed, epoch) unless `shuffle=False`.

    Without `drop_last` the sequence is padded by repeating its start; with it, the tail is cut instead.
    """

    def __init__(self, num_samples, *, seed, num_replicas=1, rank=0, shuffle=True, drop_last=False):
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        per_rank = num_samples // num_replicas if drop_last else math.ceil(num_samples / num_replicas)
        if per_rank == 0:
            raise ValueError(f"drop_last with {num_samples} samples on {num_replicas} replicas leaves none")
        total_size = per_rank * num_replicas
        super().__init__(
            num_samples=num_samples, total_size=total_size, seed=seed, num_replicas=num_replicas, rank=rank
        )
        self.shuffle = shuffle

    def _global_order(self, rng):
        order = rng.permutation(self.num_samples) if self.shuffle else np.arange(self.num_samples)
        return np.resize(order, self.total_size)  # cuts, or pads by repeating from the start


class ClassAwareSampler(_ShardedSampler):
    """Class-aware re-balancing (Shen et al. 2016; Wu et al. 2020): each draw picks a class uniformly among
    the classes with an observed positive, then one of its observed positives uniformly, with replacement.

    An image with no observed positive is never drawn. An epoch has `num_samples` draws (default N).
    """

    def __init__(self, labels_observed_nc, *, seed, num_replicas=1, rank=0, num_samples=None):
        positives_nc = np.asarray(labels_observed_nc) > 0.5
        if positives_nc.ndim != 2:
            raise ValueError(f"labels_observed_nc must be (N, C), got shape {positives_nc.shape}")
        per_class = [np.flatnonzero(positives_nc[:, c]) for c in range(positives_nc.shape[1])]
        per_class = [rows for rows in per_class if len(rows)]
        if not per_class:
            raise ValueError("no class has an observed positive: class-aware sampling has nothing to draw")
        self._rows = np.concatenate(per_class)
        self._sizes = np.asarray([len(rows) for rows in per_class])
        self._starts = np.concatenate([[0], np.cumsum(self._sizes)[:-1]])
        num_samples = len(positives_nc) if num_samples is None else num_samples
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        total_size = math.ceil(num_samples / num_replicas) * num_replicas
        super().__init__(
            num_samples=num_samples, total_size=total_size, seed=seed, num_replicas=num_replicas, rank=rank
        )

    def _global_order(self, rng):
        classes = rng.integers(len(self._sizes), size=self.total_size)
        offsets = np.floor(rng.random(self.total_size) * self._sizes[classes]).astype(np.int64)
        return self._rows[self._starts[classes] + offsets]
