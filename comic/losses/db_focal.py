"""Distribution-balanced focal loss (Wu et al., ECCV 2020), as in the authors' `ResampleLoss`."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from comic.losses.focal import batch_mean


class DBFocal(nn.Module):
    """Re-balanced weighting + negative-tolerant regularisation + focal term.

    Re-balanced weight of image i, class c (same for its positives and negatives):
        r_ic = (1 / n_c) / sum_k y_ik / n_k,   w_ic = alpha + sigmoid(beta (r_ic - mu))
    (an image with no positive has r = inf, so w = alpha + 1, the limit).
    Negative-tolerant regularisation with class prior p_c = n_c / N:
        z' = z - init_bias * log(1/p_c - 1) / lambda;  negatives use lambda z' and weight w / lambda
    Loss, with pt = exp(-BCE(z'', y)):   l = balance * (1 - pt)^gamma * w' * BCE(z'', y)
    """

    def __init__(
        self,
        class_counts: Tensor,
        num_samples: int,
        *,
        alpha: float,
        beta: float,
        mu: float,
        init_bias: float,
        neg_scale: float,
        gamma: float,
        balance: float,
    ):
        super().__init__()
        counts = torch.as_tensor(class_counts, dtype=torch.float32).clamp(min=1)
        if num_samples <= counts.max():
            raise ValueError(f"DBFocal: num_samples ({num_samples}) must exceed every class count")
        self.alpha, self.beta, self.mu = alpha, beta, mu
        self.neg_scale, self.gamma, self.balance = neg_scale, gamma, balance
        self.register_buffer("freq_inv", 1.0 / counts)
        self.register_buffer("logit_bias", -init_bias * torch.log(num_samples / counts - 1) / neg_scale)

    def rebalance_weight(self, targets_bc: Tensor) -> Tensor:
        repeat_b1 = (targets_bc * self.freq_inv).sum(dim=1, keepdim=True)
        ratio_bc = self.freq_inv / repeat_b1.clamp(min=torch.finfo(repeat_b1.dtype).tiny)
        weight_bc = self.alpha + torch.sigmoid(self.beta * (ratio_bc - self.mu))
        return torch.where(repeat_b1 > 0, weight_bc, torch.full_like(weight_bc, self.alpha + 1.0))

    def forward(self, logits_bc: Tensor, targets_bc: Tensor, weight_bc: Tensor | None = None) -> Tensor:
        rebalance_bc = self.rebalance_weight(targets_bc)
        shifted_bc = logits_bc + self.logit_bias
        is_pos = targets_bc > 0.5
        logits_reg = torch.where(is_pos, shifted_bc, self.neg_scale * shifted_bc)
        weight_reg = torch.where(is_pos, rebalance_bc, rebalance_bc / self.neg_scale)
        bce_bc = F.binary_cross_entropy_with_logits(logits_reg, targets_bc, reduction="none")
        pt_bc = torch.exp(-bce_bc)
        return batch_mean(self.balance * (1 - pt_bc) ** self.gamma * weight_reg * bce_bc, weight_bc)
