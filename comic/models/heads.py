"""Classifier heads: the normalised (cosine) classifier and HTB's learning-effect and fusion parts."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CosineClassifier(nn.Module):
    """z = rho * (f / ||f||) . (W_c / (||W_c|| + eta)),  (B, D) -> (B, C)."""

    def __init__(self, in_dim: int, num_classes: int, *, rho: float, eta: float):
        super().__init__()
        self.rho, self.eta = rho, eta
        self.weight = nn.Parameter(torch.empty(num_classes, in_dim))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))

    def project(self, vectors_bd: Tensor) -> Tensor:
        """rho * v . W_hat for any vectors v (the learning-effect logits use non-unit v)."""
        weight_hat = self.weight / (self.weight.norm(dim=1, keepdim=True) + self.eta)
        return self.rho * vectors_bd @ weight_hat.t()

    def forward(self, features_bd: Tensor) -> Tensor:
        return self.project(F.normalize(features_bd, dim=1))


class MovingVector(nn.Module):
    """e <- mu e + mean_batch(f).detach() (the authors' code averages features; the paper says gradients).
    The batch mean is over all DDP ranks, so every rank holds the same vector."""

    def __init__(self, dim: int, *, momentum: float):
        super().__init__()
        self.momentum = momentum
        self.register_buffer("vector", torch.zeros(dim))

    @torch.no_grad()
    def update(self, batch_mean_d: Tensor) -> None:
        """e <- mu e + m, for m the batch mean of the features averaged over ranks (the caller averages,
        so that HTBModel's three vectors share one collective)."""
        self.vector.mul_(self.momentum).add_(batch_mean_d.to(self.vector.dtype))


def learning_effect(features_bd: Tensor, moving_d: Tensor, coefficient: float) -> Tensor:
    """f_hat + coefficient * cos(f_hat, e_hat) * e_hat: coefficient -1 gives the head view (the moving
    direction removed), +alpha the tail view. A zero moving vector leaves f_hat unchanged."""
    features_hat = F.normalize(features_bd, dim=1)
    moving_hat = F.normalize(moving_d.to(features_bd.dtype), dim=0)
    cosine_b1 = features_hat @ moving_hat.unsqueeze(1)
    return features_hat + coefficient * cosine_b1 * moving_hat


class AdditiveAttention(nn.Module):
    """Additive (Bahdanau) attention of a query over K keys, values = keys:
    s_k = v . tanh(W_q q + W_k k_k),  a = softmax_k(s),  out = sum_k a_k k_k.   (B, D), (B, K, D) -> (B, D)"""

    def __init__(self, dim: int, hidden: int | None = None):
        super().__init__()
        hidden = hidden or dim
        self.query = nn.Linear(dim, hidden, bias=False)
        self.key = nn.Linear(dim, hidden, bias=True)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, query_bd: Tensor, keys_bkd: Tensor) -> Tensor:
        scores_bk = self.score(torch.tanh(self.query(query_bd).unsqueeze(1) + self.key(keys_bkd))).squeeze(-1)
        weights_bk = torch.softmax(scores_bk, dim=1)
        return (weights_bk.unsqueeze(-1) * keys_bkd).sum(dim=1)
