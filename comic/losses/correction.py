"""Reflective label corrector (RLC, docs/method.md, Correction): recall missing positives from the model's own
confident predictions, with a class-aware threshold that it learns as it goes."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from comic.distributed import all_reduce_mean, all_reduce_sum


class LabelCorrector:
    """Pseudo-labels for one branch:

        z' = z - m y_obs,  p' = sigmoid(z')
        y^_c = 1  if y_obs,c = 1  or  p'_c > max(tau, P_c)

    P_c, the class-aware threshold, is the mean of p'_c over past batches (`ema`: P <- mu P + (1-mu) mean,
    started at the first batch's mean), over the current batch alone (`batch`, the authors' code), or
    0 (`none`). With `persist`, an entry once recalled stays positive for the rest of training (needs the
    dataset indices of the batch). It also counts recalled labels per class, so that the loss's class
    distribution can be refreshed with them at the end of an epoch (`take_epoch_counts`).
    """

    def __init__(
        self,
        num_classes: int,
        *,
        tau: float,
        margin: float,
        class_threshold: Literal["ema", "batch", "none"],
        momentum: float,
        persist: bool,
        num_samples: int | None,
    ):
        if class_threshold not in ("ema", "batch", "none"):
            raise ValueError(f"class_threshold must be ema, batch or none, got {class_threshold!r}")
        if persist and num_samples is None:
            raise ValueError("LabelCorrector(persist=True) needs num_samples, the training-set size")
        self.tau, self.margin, self.momentum = tau, margin, momentum
        self.class_threshold = class_threshold
        self.threshold_c = torch.zeros(num_classes)
        self.threshold_ready = False
        self.recalled_counts_c = torch.zeros(num_classes, dtype=torch.int64)
        self.recalled_nc = torch.zeros(num_samples, num_classes, dtype=torch.bool) if persist else None

    @torch.no_grad()
    def batch_mean(self, logits_bc: Tensor, observed_bc: Tensor) -> Tensor | None:
        """This rank's per-class mean of p' (C,), the input of the class-aware threshold (None when
        `class_threshold` is none). Average it over ranks and pass it to the call, so that several
        correctors share one collective."""
        if self.class_threshold == "none":
            return None
        return self._shifted_probs(logits_bc, observed_bc > 0.5).mean(dim=0)

    @torch.no_grad()
    def __call__(
        self, logits_bc: Tensor, observed_bc: Tensor, index_b: Tensor | None = None, mean_c: Tensor | None = None
    ) -> Tensor:
        """Corrected labels (B, C), float, on the logits' device; never drops an observed positive.
        `mean_c`: `batch_mean` averaged over ranks; computed here (one all-reduce) when not given.
        Nothing here waits for the device: the threshold and the counts live next to the logits."""
        observed = observed_bc > 0.5
        probs_bc = self._shifted_probs(logits_bc, observed)
        cutoff_c = torch.full_like(probs_bc[0], self.tau)
        if self.class_threshold != "none":
            if mean_c is None:
                mean_c = all_reduce_mean(probs_bc.mean(dim=0))
            if self.class_threshold == "ema":
                mean_c = self._update_ema(mean_c)
            cutoff_c = torch.maximum(cutoff_c, mean_c)
        recalled = (probs_bc > cutoff_c) & ~observed
        if self.recalled_nc is not None:
            if index_b is None:
                raise ValueError("LabelCorrector(persist=True) needs the batch's dataset indices")
            index = index_b.cpu()
            self.recalled_nc[index] |= recalled.cpu()
            recalled = self.recalled_nc[index].to(recalled.device) & ~observed
        self.recalled_counts_c = self.recalled_counts_c.to(recalled.device) + recalled.sum(dim=0)
        return (observed | recalled).float()

    def _shifted_probs(self, logits_bc: Tensor, observed_bc: Tensor) -> Tensor:
        """p' = sigmoid(z - m y_obs)."""
        return torch.sigmoid(logits_bc.float() - self.margin * observed_bc.float())

    def _update_ema(self, mean_c: Tensor) -> Tensor:
        if self.threshold_ready:
            self.threshold_c = self.momentum * self.threshold_c.to(mean_c.device) + (1 - self.momentum) * mean_c
        else:
            self.threshold_c, self.threshold_ready = mean_c.clone(), True
        return self.threshold_c

    def take_epoch_counts(self) -> Tensor:
        """Labels recalled per class since the last call, summed over ranks; resets the count."""
        counts = all_reduce_sum(self.recalled_counts_c.clone()).cpu()
        self.recalled_counts_c.zero_()
        return counts

    def state_dict(self) -> dict:
        state = {
            "threshold_c": self.threshold_c.cpu().clone(),
            "threshold_ready": self.threshold_ready,
            "recalled_counts_c": self.recalled_counts_c.cpu().clone(),
        }
        if self.recalled_nc is not None:
            state["recalled_nc"] = self.recalled_nc.clone()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.threshold_c = state["threshold_c"].clone()
        self.threshold_ready = bool(state["threshold_ready"])
        self.recalled_counts_c = state["recalled_counts_c"].clone()
        if self.recalled_nc is not None:
            self.recalled_nc = state["recalled_nc"].clone()
