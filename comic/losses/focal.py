"""The asymmetric-focal family: BCE, focal, ASL and COMIC's multi-focal modifier (MFM).

All four are one formula with different exponents, so they share one implementation and the
reductions between them (MFM -> ASL -> focal -> BCE) hold exactly, not just within tolerance.
Every loss takes logits and 0/1 (or soft) targets of shape (B, C) and returns the mean over the batch
of the sum over classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

EPS = 1e-8


def asymmetric_focal_terms(
    logits_bc: Tensor,
    targets_bc: Tensor,
    gamma_pos: float | Tensor,
    gamma_neg: float | Tensor,
    clip: float,
    detach_weights: bool,
) -> Tensor:
    """Per-entry loss (B, C):

        p = sigmoid(z),  p_m = max(p - clip, 0)
        l = -[ y (1 - p)^gamma_pos log p + (1 - y) p_m^gamma_neg log(1 - p_m) ]

    `gamma_*` are scalars or per-class tensors (C,). With `detach_weights` the focusing weights
    (1 - p)^gamma_pos and p_m^gamma_neg carry no gradient (ASL's `disable_torch_grad_focal_loss`).
    """
    probs = torch.sigmoid(logits_bc)
    log_p = F.logsigmoid(logits_bc)
    if clip > 0:
        probs_neg = (probs - clip).clamp(min=0)
        log_one_minus = torch.log((1 - probs_neg).clamp(min=EPS))
    else:
        probs_neg = probs
        log_one_minus = F.logsigmoid(-logits_bc)
    with torch.set_grad_enabled(torch.is_grad_enabled() and not detach_weights):
        weight_pos = torch.pow(1 - probs, gamma_pos)
        weight_neg = torch.pow(probs_neg, gamma_neg)
    return -(targets_bc * weight_pos * log_p + (1 - targets_bc) * weight_neg * log_one_minus)


def batch_mean(loss_bc: Tensor) -> Tensor:
    """Sum over classes, mean over the batch."""
    return loss_bc.sum() / loss_bc.shape[0]


class BCE(nn.Module):
    """Binary cross-entropy, assume-negative: l = -[y log p + (1 - y) log(1 - p)]."""

    def forward(self, logits_bc: Tensor, targets_bc: Tensor) -> Tensor:
        return batch_mean(asymmetric_focal_terms(logits_bc, targets_bc, 0.0, 0.0, 0.0, False))


class Focal(nn.Module):
    """Focal loss (Lin et al. 2017): l = -[y (1-p)^g log p + (1-y) p^g log(1-p)]."""

    def __init__(self, *, gamma: float, detach_weights: bool = False):
        super().__init__()
        self.gamma, self.detach_weights = gamma, detach_weights

    def forward(self, logits_bc: Tensor, targets_bc: Tensor) -> Tensor:
        terms = asymmetric_focal_terms(logits_bc, targets_bc, self.gamma, self.gamma, 0.0, self.detach_weights)
        return batch_mean(terms)


class ASL(nn.Module):
    """Asymmetric loss (Ridnik et al. 2021):
    l = -[y (1-p)^g+ log p + (1-y) p_m^g- log(1-p_m)],  p_m = max(p - clip, 0)."""

    def __init__(self, *, gamma_pos: float, gamma_neg: float, clip: float, detach_weights: bool = True):
        super().__init__()
        self.gamma_pos, self.gamma_neg, self.clip = gamma_pos, gamma_neg, clip
        self.detach_weights = detach_weights

    def forward(self, logits_bc: Tensor, targets_bc: Tensor) -> Tensor:
        terms = asymmetric_focal_terms(
            logits_bc, targets_bc, self.gamma_pos, self.gamma_neg, self.clip, self.detach_weights
        )
        return batch_mean(terms)


def head_tail_factor(class_counts_c: Tensor, exponent: float) -> Tensor:
    """gamma_ht,c = (1 - ln(n_c / max_j n_j))^exponent  (>= 1; rarer classes get larger values).
    Counts are floored at 1 so that a class with no label yet stays finite."""
    counts = class_counts_c.clamp(min=1)
    return (1 - torch.log(counts / counts.max())) ** exponent


class MFM(nn.Module):
    """Multi-focal modifier loss (COMIC, docs/method.md, Modification):

        gamma+_c = gamma+_pn + w+ gamma_ht,c,   gamma-_c = gamma-_pn + w- gamma_ht,c
        l = -a_c [ y (1-p)^gamma+_c log p + (1-y) p_m^gamma-_c log(1-p_m) ],  p_m = max(p - clip, 0)

    with a_c = gamma_ht,c (`class_weight`) or 1, focusing weights without gradient. The class counts are
    a buffer that the trainer refreshes each epoch with recalled labels added (`set_class_counts`).
    """

    def __init__(
        self,
        class_counts: Tensor,
        *,
        gamma_pos_pn: float,
        w_pos: float,
        gamma_neg_pn: float,
        w_neg: float,
        ht_exponent: float,
        clip: float,
        class_weight: bool,
    ):
        super().__init__()
        if gamma_neg_pn < gamma_pos_pn:
            raise ValueError(f"MFM needs gamma_neg_pn >= gamma_pos_pn, got {gamma_neg_pn} < {gamma_pos_pn}")
        self.gamma_pos_pn, self.w_pos, self.gamma_neg_pn, self.w_neg = gamma_pos_pn, w_pos, gamma_neg_pn, w_neg
        self.ht_exponent, self.clip, self.class_weight = ht_exponent, clip, class_weight
        self.register_buffer("class_counts", torch.as_tensor(class_counts, dtype=torch.float32).clone())

    def set_class_counts(self, class_counts_c: Tensor) -> None:
        self.class_counts.copy_(torch.as_tensor(class_counts_c, dtype=torch.float32))

    def forward(self, logits_bc: Tensor, targets_bc: Tensor) -> Tensor:
        factor_c = head_tail_factor(self.class_counts, self.ht_exponent).to(logits_bc.dtype)
        terms = asymmetric_focal_terms(
            logits_bc,
            targets_bc,
            self.gamma_pos_pn + self.w_pos * factor_c,
            self.gamma_neg_pn + self.w_neg * factor_c,
            self.clip,
            detach_weights=True,
        )
        if self.class_weight:
            terms = terms * factor_c
        return batch_mean(terms)
