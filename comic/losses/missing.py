"""Losses designed for missing labels: Hill and SPLC (Zhang et al., 2021)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from comic.losses.focal import batch_mean


class Hill(nn.Module):
    """Hill loss. Positives: focal loss on margin-shifted logits; negatives: the Hill curve.

    p_m = sigmoid(z - m),  p = sigmoid(z)
    l = -y (1 - p_m)^gamma log p_m + (1 - y) (lambda - p) p^2
    """

    def __init__(self, *, lamb: float, margin: float, gamma: float):
        super().__init__()
        self.lamb, self.margin, self.gamma = lamb, margin, gamma

    def forward(self, logits_bc: Tensor, targets_bc: Tensor, weight_bc: Tensor | None = None) -> Tensor:
        probs_margin = torch.sigmoid(logits_bc - self.margin)
        probs = torch.sigmoid(logits_bc)
        loss_pos = -((1 - probs_margin) ** self.gamma) * F.logsigmoid(logits_bc - self.margin)
        loss_neg = (self.lamb - probs) * probs**2
        return batch_mean(targets_bc * loss_pos + (1 - targets_bc) * loss_neg, weight_bc)


class SPLC(nn.Module):
    """Self-paced loss correction. Margin on annotated positives, then unannotated entries whose
    probability exceeds tau become positives (recomputed every step), then focal loss:

        z' = z - m y,  p = sigmoid(z'),  y^ = y OR (p > tau)   (only when `correct`)
        l = -[ y^ (1 - p)^gamma log p + (1 - y^) p^gamma log(1 - p) ]
    """

    def __init__(self, *, tau: float, margin: float, gamma: float):
        super().__init__()
        self.tau, self.margin, self.gamma = tau, margin, gamma

    def corrected_targets(self, logits_bc: Tensor, targets_bc: Tensor) -> Tensor:
        with torch.no_grad():
            probs = torch.sigmoid(logits_bc - self.margin * targets_bc)
            return torch.where(probs > self.tau, torch.ones_like(targets_bc), targets_bc)

    def forward(
        self, logits_bc: Tensor, targets_bc: Tensor, weight_bc: Tensor | None = None, *, correct: bool = True
    ) -> Tensor:
        shifted_bc = logits_bc - self.margin * targets_bc
        targets = self.corrected_targets(logits_bc, targets_bc) if correct else targets_bc
        probs = torch.sigmoid(shifted_bc)
        focal_bc = (1 - probs) * targets + probs * (1 - targets)
        bce_bc = -(targets * F.logsigmoid(shifted_bc) + (1 - targets) * F.logsigmoid(-shifted_bc))
        return batch_mean(focal_bc**self.gamma * bce_bc, weight_bc)
