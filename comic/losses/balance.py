"""Head-tail balancer distillation (docs/method.md, Balance; paper Eq. 11)."""

from __future__ import annotations

import torch
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
    """L_htb = kappa_h L(phi(z^_h) * phi(z_b), y) + kappa_t L(phi(z^_t) * phi(z_b), y), phi = softmax over
    classes, teachers detached. As in the paper and the authors' code, the loss L (MFM) takes the product
    of the two class distributions in place of logits."""
    balanced_bc = torch.softmax(balanced_logits_bc, dim=-1)
    head_bc = torch.softmax(head_logits_bc.detach(), dim=-1)
    tail_bc = torch.softmax(tail_logits_bc.detach(), dim=-1)
    return kappa_h * loss_fn(head_bc * balanced_bc, targets_bc) + kappa_t * loss_fn(tail_bc * balanced_bc, targets_bc)
