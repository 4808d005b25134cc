"""The asymmetric-focal family: BCE, focal, ASL and COMIC's multi-focal modifier (MFM).

All four are one formula with different exponents, so they share one implementation and the
reductions between them (MFM -> ASL -> focal -> BCE) hold exactly, not just within tolerance.
Every loss takes logits and 0/1 (or soft) targets of shape (B, C), and optionally per-entry weights
`weight_bc` (0 removes an entry), and returns the mean over the batch of the sum over classes.
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
    tolerance_bc: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Per-entry positive and negative terms (B, C), `loss = y * pos + (1 - y) * neg`:

        p = sigmoid(z),  p_m = max(p - clip, 0)
        pos = -(1 - p)^gamma_pos log p,   neg = -p_m^gamma_neg log(1 - p_m)

    `gamma_*` are scalars or per-class tensors (C,). With `detach_weights` the focusing weights
    (1 - p)^gamma_pos and p_m^gamma_neg carry no gradient (ASL's `disable_torch_grad_focal_loss`).
    `tolerance_bc` (>= 1 per entry) makes negatives more tolerant, as the authors' co-occurrence prior:
    1 - p_m becomes min(s (1 - p_m), 1), i.e. p_m <- max(1 - s (1 - p_m), 0).
    """
    probs = torch.sigmoid(logits_bc)
    log_p = F.logsigmoid(logits_bc)
    if clip > 0 or tolerance_bc is not None:
        probs_neg = (probs - clip).clamp(min=0)
        if tolerance_bc is not None:
            probs_neg = torch.where(tolerance_bc > 1, (1 - tolerance_bc * (1 - probs_neg)).clamp(min=0), probs_neg)
        log_one_minus = torch.log((1 - probs_neg).clamp(min=EPS))
    else:
        probs_neg = probs
        log_one_minus = F.logsigmoid(-logits_bc)
    with torch.set_grad_enabled(torch.is_grad_enabled() and not detach_weights):
        weight_pos = torch.pow(1 - probs, gamma_pos)
        weight_neg = torch.pow(probs_neg, gamma_neg)
    return -weight_pos * log_p, -weight_neg * log_one_minus


def combine(targets_bc: Tensor, pos_bc: Tensor, neg_bc: Tensor) -> Tensor:
    return targets_bc * pos_bc + (1 - targets_bc) * neg_bc


def batch_mean(loss_bc: Tensor, weight_bc: Tensor | None = None) -> Tensor:
    """Sum over classes, mean over the batch; `weight_bc` scales each entry first."""
    if weight_bc is not None:
        loss_bc = loss_bc * weight_bc
    return loss_bc.sum() / loss_bc.shape[0]


class BCE(nn.Module):
    """Binary cross-entropy, assume-negative: l = -[y log p + (1 - y) log(1 - p)]."""

    def forward(self, logits_bc: Tensor, targets_bc: Tensor, weight_bc: Tensor | None = None) -> Tensor:
        terms = asymmetric_focal_terms(logits_bc, targets_bc, 0.0, 0.0, 0.0, False)
        return batch_mean(combine(targets_bc, *terms), weight_bc)


class Focal(nn.Module):
    """Focal loss (Lin et al. 2017): l = -[y (1-p)^g log p + (1-y) p^g log(1-p)]."""

    def __init__(self, *, gamma: float, detach_weights: bool = False):
        super().__init__()
        self.gamma, self.detach_weights = gamma, detach_weights

    def forward(self, logits_bc: Tensor, targets_bc: Tensor, weight_bc: Tensor | None = None) -> Tensor:
        terms = asymmetric_focal_terms(logits_bc, targets_bc, self.gamma, self.gamma, 0.0, self.detach_weights)
        return batch_mean(combine(targets_bc, *terms), weight_bc)


class ASL(nn.Module):
    """Asymmetric loss (Ridnik et al. 2021):
    l = -[y (1-p)^g+ log p + (1-y) p_m^g- log(1-p_m)],  p_m = max(p - clip, 0)."""

    def __init__(self, *, gamma_pos: float, gamma_neg: float, clip: float, detach_weights: bool = True):
        super().__init__()
        self.gamma_pos, self.gamma_neg, self.clip = gamma_pos, gamma_neg, clip
        self.detach_weights = detach_weights

    def forward(self, logits_bc: Tensor, targets_bc: Tensor, weight_bc: Tensor | None = None) -> Tensor:
        terms = asymmetric_focal_terms(
            logits_bc, targets_bc, self.gamma_pos, self.gamma_neg, self.clip, self.detach_weights
        )
        return batch_mean(combine(targets_bc, *terms), weight_bc)


def head_tail_factor(class_counts_c: Tensor, exponent: float) -> Tensor:
    """gamma_ht,c = (1 - ln(n_c / max_j n_j))^exponent  (>= 1; rarer classes get larger values).
    Counts are floored at 1 so that a class with no label yet stays finite."""
    counts = class_counts_c.clamp(min=1)
    return (1 - torch.log(counts / counts.max())) ** exponent


def cooccurring(targets_bc: Tensor, cooccurrence_cc: Tensor) -> Tensor:
    """(B, C) bool: class c co-occurs in training with some positive of image b (the support of the
    authors' prior a_b = mean over positives i of column-normalised C[i, :], which only enters through a > 0)."""
    return ((targets_bc > 0.5).to(cooccurrence_cc.dtype) @ (cooccurrence_cc > 0).to(cooccurrence_cc.dtype)) > 0


def reject_largest(neg_bc: Tensor, negatives_bc: Tensor, fraction: float) -> Tensor:
    """0/1 weights (B, C) that drop the `fraction` largest negative terms of the batch (no gradient)."""
    keep = torch.ones_like(neg_bc)
    values = neg_bc.detach()[negatives_bc]
    count = int(fraction * values.numel())
    if count == 0:
        return keep
    cutoff = torch.topk(values, count).values[-1]
    return torch.where(negatives_bc & (neg_bc.detach() >= cutoff), torch.zeros_like(keep), keep)


class MFM(nn.Module):
    """Multi-focal modifier loss (COMIC, docs/method.md, Modification):

        gamma+_c = gamma+_pn + w+ gamma_ht,c,   gamma-_c = gamma-_pn + w- gamma_ht,c
        l = -a_c [ y (1-p)^gamma+_c log p + (1-y) p_m^gamma-_c log(1-p_m) ],  p_m = max(p - clip, 0)

    with a_c = gamma_ht,c (`class_weight`) or 1, focusing weights without gradient. The class counts are
    a buffer that the trainer refreshes each epoch with recalled labels added (`set_class_counts`).
    Options (each off at its default): the authors' co-occurrence prior (`cooccurrence_scale` > 1 with a
    co-occurrence matrix: a negative that co-occurs with an observed positive gets 1 - p_m scaled up,
    so its loss vanishes sooner); Hill's negative term a_c (lambda - p) p^2 (`negative: hill`); dropping
    the `reject_fraction` largest negative terms of a batch (LL-R).
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
        cooccurrence_scale: float,
        negative: str,
        hill_lamb: float,
        reject_fraction: float,
        cooccurrence: Tensor | None = None,
    ):
        super().__init__()
        if gamma_neg_pn < gamma_pos_pn:
            raise ValueError(f"MFM needs gamma_neg_pn >= gamma_pos_pn, got {gamma_neg_pn} < {gamma_pos_pn}")
        if negative not in ("focal", "hill"):
            raise ValueError(f"loss.mfm.negative: {negative!r} is not focal or hill")
        if cooccurrence_scale > 1 and cooccurrence is None:
            raise ValueError(
                "loss.mfm.cooccurrence_scale > 1 needs the training co-occurrence matrix, which classes.json "
                "lacks; rebuild the data (`dvc repro drop_labels`)"
            )
        self.gamma_pos_pn, self.w_pos, self.gamma_neg_pn, self.w_neg = gamma_pos_pn, w_pos, gamma_neg_pn, w_neg
        self.ht_exponent, self.clip, self.class_weight = ht_exponent, clip, class_weight
        self.cooccurrence_scale, self.negative, self.hill_lamb = cooccurrence_scale, negative, hill_lamb
        self.reject_fraction = reject_fraction
        self.register_buffer("class_counts", torch.as_tensor(class_counts, dtype=torch.float32).clone())
        prior = None if cooccurrence_scale == 1 else torch.as_tensor(cooccurrence, dtype=torch.float32)
        self.register_buffer("cooccurrence", prior, persistent=False)

    def set_class_counts(self, class_counts_c: Tensor) -> None:
        self.class_counts.copy_(torch.as_tensor(class_counts_c, dtype=torch.float32))

    def forward(self, logits_bc: Tensor, targets_bc: Tensor, weight_bc: Tensor | None = None) -> Tensor:
        factor_c = head_tail_factor(self.class_counts, self.ht_exponent).to(logits_bc.dtype)
        tolerance = None
        if self.cooccurrence is not None:
            near = cooccurring(targets_bc, self.cooccurrence.to(logits_bc.dtype))
            tolerance = torch.where(near, self.cooccurrence_scale, 1.0).to(logits_bc.dtype)
        pos, neg = asymmetric_focal_terms(
            logits_bc,
            targets_bc,
            self.gamma_pos_pn + self.w_pos * factor_c,
            self.gamma_neg_pn + self.w_neg * factor_c,
            self.clip,
            detach_weights=True,
            tolerance_bc=tolerance,
        )
        if self.negative == "hill":
            probs = torch.sigmoid(logits_bc)
            neg = (self.hill_lamb - probs) * probs**2
        if self.reject_fraction > 0:
            kept = reject_largest(neg, targets_bc < 0.5, self.reject_fraction)
            weight_bc = kept if weight_bc is None else weight_bc * kept
        terms = combine(targets_bc, pos, neg)
        if self.class_weight:
            terms = terms * factor_c
        return batch_mean(terms, weight_bc)
