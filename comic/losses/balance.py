"""Head-tail balancer distillation (docs/method.md, Balance): the balanced branch learns from the head
and tail branches' learning-effect logits, teachers detached."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def distillation_weights(head_loss: Tensor, tail_loss: Tensor, power: float) -> tuple[Tensor, Tensor]:
    """kappa_h = L_h^a / (L_h^a + L_t^a), kappa_t = 1 - kappa_h, computed without gradient."""
    head = head_loss.detach().clamp(min=0) ** power
    tail = tail_loss.detach().clamp(min=0) ** power
    total = (head + tail).clamp(min=torch.finfo(head.dtype).tiny)
    return head / total, tail / total


def htb_distillation(
    head_logits_bc: Tensor,
    tail_logits_bc: Tensor,
    balanced_logits_bc: Tensor,
    targets_bc: Tensor,
    loss_fn: nn.Module,
    kappa_h: Tensor,
    kappa_t: Tensor,
) -> Tensor:
    """The paper's Eq. 11 (`balance.distill: literal`):
    L_htb = kappa_h L(phi(z^_h) * phi(z_b), y) + kappa_t L(phi(z^_t) * phi(z_b), y), phi = softmax over
    classes. As in the paper and the authors' code, the loss L (MFM) takes the product of the two class
    distributions in place of logits, so its value has a floor far above 0 and its gradient is small."""
    balanced_bc = torch.softmax(balanced_logits_bc, dim=-1)
    head_bc = torch.softmax(head_logits_bc.detach(), dim=-1)
    tail_bc = torch.softmax(tail_logits_bc.detach(), dim=-1)
    return kappa_h * loss_fn(head_bc * balanced_bc, targets_bc) + kappa_t * loss_fn(tail_bc * balanced_bc, targets_bc)


def bce_distillation(
    head_logits_bc: Tensor,
    tail_logits_bc: Tensor,
    balanced_logits_bc: Tensor,
    head_weight_c: Tensor,
    tail_weight_c: Tensor,
) -> Tensor:
    """Probabilities toward probabilities (`balance.distill: bce`):

        L = (1/B) sum_b sum_c [ w_h,c BCE(z_b, sigmoid(z^_h)) + w_t,c BCE(z_b, sigmoid(z^_t)) ]

    with BCE(z, q) = -[q log sigmoid(z) + (1 - q) log(1 - sigmoid(z))], teachers detached; the class
    weights are kappa everywhere (`teachers: all`) or say which teacher teaches which class (`by_group`)."""
    head_q = torch.sigmoid(head_logits_bc.detach())
    tail_q = torch.sigmoid(tail_logits_bc.detach())
    from_head = F.binary_cross_entropy_with_logits(balanced_logits_bc, head_q, reduction="none")
    from_tail = F.binary_cross_entropy_with_logits(balanced_logits_bc, tail_q, reduction="none")
    return (head_weight_c * from_head + tail_weight_c * from_tail).sum() / balanced_logits_bc.shape[0]


def teacher_weights(kappa_h: Tensor, kappa_t: Tensor, groups_c: Tensor | None) -> tuple[Tensor | float, Tensor | float]:
    """Per-class weights of the two teachers: kappa for every class, or with `groups_c` (0 many, 1 medium,
    2 few) the head teacher alone on many-shot classes, the tail teacher alone on few-shot, kappa on medium."""
    if groups_c is None:
        return kappa_h, kappa_t
    head = torch.where(groups_c == 0, 1.0, torch.where(groups_c == 2, 0.0, kappa_h))
    tail = torch.where(groups_c == 2, 1.0, torch.where(groups_c == 0, 0.0, kappa_t))
    return head, tail
