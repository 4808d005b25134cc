"""The training step, for COMIC and for the single-head baselines.

An `Objective` is what is optimised together with everything that learns or counts besides the weights
(label correctors, the loss's class distribution, the correction audit). It has `state_dict` /
`load_state_dict`, so a resumed run continues the same curve. Batches are dicts with `image` (B, 3, H, W),
`labels_observed` (B, C), `labels_full` (B, C, audit only, never in a loss) and `index` (B,).
"""

from __future__ import annotations

import random
from collections.abc import Mapping

import numpy as np
import torch
from torch import Tensor, nn

from comic.config import BalanceConfig, CorrectionConfig, LossConfig
from comic.device import autocast, to_device, unwrap
from comic.distributed import all_reduce_mean, all_reduce_mean_each, all_reduce_sum
from comic.losses import SPLC, LabelCorrector, build_loss, distillation_weights, htb_distillation
from comic.metrics import CorrectionAudit
from comic.models import BRANCHES, HTBModel

Batch = Mapping[str, Tensor]


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def correction_loss(loss_fn: nn.Module, logits_bc: Tensor, corrected_bc: Tensor, positives_per_rank: Tensor) -> Tensor:
    """L_rlc: the loss against the corrected labels, normalised by batch size over their positives.
    `positives_per_rank` is the corrected positives averaged over ranks, so that DDP's gradient average
    gives the global value."""
    return loss_fn(logits_bc, corrected_bc) * logits_bc.shape[0] / positives_per_rank.clamp(min=1)


class Objective:
    """Loss of one training step, plus the state that learns or counts during training.

    `correctors` has one `LabelCorrector` per branch of the model (`comic.models.BRANCHES`); the audit
    follows the branch that predicts (`balanced`, or `single`)."""

    def __init__(
        self,
        *,
        loss_fn: nn.Module,
        correctors: dict[str, LabelCorrector],
        correction_weight: float,
        correction_start_epoch: int,
        balance_weight: float,
        kappa_power: float,
        splc_start_epoch: int,
        class_counts: Tensor,
    ):
        self.loss_fn, self.correctors = loss_fn, correctors
        self.correction_weight, self.correction_start_epoch = correction_weight, correction_start_epoch
        self.balance_weight, self.kappa_power = balance_weight, kappa_power
        self.splc_start_epoch = splc_start_epoch
        self.base_counts = torch.as_tensor(class_counts, dtype=torch.float32)
        self.audited_branch = "balanced" if "balanced" in correctors else "single"
        self.audit = CorrectionAudit()

    def to(self, device: torch.device) -> Objective:
        self.loss_fn.to(device)
        return self

    def correcting(self, epoch: int) -> bool:
        return self.correction_weight > 0 and epoch >= self.correction_start_epoch

    def __call__(self, model: nn.Module, batches: Mapping[str, Batch], epoch: int) -> tuple[Tensor, dict]:
        """Total loss and its parts (detached 0-d tensors: reading them would wait for the device) for one
        step; `batches` has `instance` and, for COMIC, `rebalanced`."""
        if isinstance(unwrap(model), HTBModel):
            return self._comic(model, batches["instance"], batches["rebalanced"], epoch)
        return self._single(model, batches["instance"], epoch)

    def _correct(self, branch: str, logits_bc: Tensor, batch: Batch, mean_c: Tensor | None = None) -> Tensor:
        corrected = self.correctors[branch](logits_bc, batch["labels_observed"], batch["index"], mean_c)
        if branch == self.audited_branch:
            self.audit.update(batch["labels_observed"], corrected, batch["labels_full"])
        return corrected

    def _single(self, model: nn.Module, batch: Batch, epoch: int) -> tuple[Tensor, dict]:
        logits = model(batch["image"]).float()
        observed = batch["labels_observed"]
        if isinstance(self.loss_fn, SPLC):
            correct = epoch >= self.splc_start_epoch
            loss = self.loss_fn(logits, observed, correct=correct)
            if correct:
                corrected = self.loss_fn.corrected_targets(logits, observed)
                self.audit.update(observed, corrected, batch["labels_full"])
        else:
            loss = self.loss_fn(logits, observed)
        parts = {"loss_main": loss.detach()}
        if self.correcting(epoch):
            corrected = self._correct("single", logits, batch)
            rlc = correction_loss(self.loss_fn, logits, corrected, all_reduce_mean(corrected.sum()))
            parts["loss_rlc"] = rlc.detach()
            loss = loss + self.correction_weight * rlc
        parts["loss"] = loss.detach()
        return loss, parts

    def _comic(self, model: nn.Module, instance: Batch, rebalanced: Batch, epoch: int) -> tuple[Tensor, dict]:
        out = model(instance["image"], rebalanced["image"])
        logits = {"head": out.head.float(), "balanced": out.balanced.float(), "tail": out.tail.float()}
        streams = {"head": instance, "balanced": instance, "tail": rebalanced}
        branch_losses = {b: self.loss_fn(logits[b], streams[b]["labels_observed"]) for b in logits}
        loss = sum(branch_losses.values())
        parts = {f"loss_{b}": v.detach() for b, v in branch_losses.items()}
        correcting, balancing = self.correcting(epoch), self.balance_weight > 0
        # The step's statistics averaged over ranks in one collective: the correctors' batch means and the
        # head and tail losses behind kappa (each small all-reduce costs up to milliseconds over gloo).
        local = {}
        if correcting:
            means = {b: self.correctors[b].batch_mean(logits[b], streams[b]["labels_observed"]) for b in logits}
            local.update({b: m for b, m in means.items() if m is not None})
        if balancing:
            local["kappa"] = torch.stack([branch_losses["head"], branch_losses["tail"]]).detach()
        shared = dict(zip(local, all_reduce_mean_each(*local.values()), strict=True)) if local else {}
        if correcting:
            corrected = {b: self._correct(b, logits[b], streams[b], shared.get(b)) for b in logits}
            positives = all_reduce_mean(torch.stack([corrected[b].sum() for b in logits]))
            rlc = sum(
                correction_loss(self.loss_fn, logits[b], corrected[b], positives[i]) for i, b in enumerate(logits)
            )
            parts["loss_rlc"] = rlc.detach()
            loss = loss + self.correction_weight * rlc
        if balancing:
            kappa_h, kappa_t = distillation_weights(*shared["kappa"], self.kappa_power)
            htb = htb_distillation(
                logits["head"],
                out.tail_on_instance.float(),
                logits["balanced"],
                instance["labels_observed"],
                self.loss_fn,
                kappa_h,
                kappa_t,
            )
            parts["loss_htb"], parts["kappa_head"] = htb.detach(), kappa_h
            loss = loss + self.balance_weight * htb
        parts["loss"] = loss.detach()
        return loss, parts

    def end_epoch(self) -> dict:
        """Refresh the loss's class distribution with this epoch's recalled labels (dynamic distribution)
        and return the audit of the epoch's corrections; resets both counts."""
        recalled = self.correctors[self.audited_branch].take_epoch_counts()
        for branch, corrector in self.correctors.items():
            if branch != self.audited_branch:
                corrector.take_epoch_counts()
        if hasattr(self.loss_fn, "set_class_counts"):
            self.loss_fn.set_class_counts(self.base_counts + recalled.float())
        counts = all_reduce_sum(torch.as_tensor(self.audit.counts()))
        self.audit.reset()
        self.audit.add_counts(counts.numpy())
        audit = self.audit.result()
        self.audit.reset()
        return audit

    def state_dict(self) -> dict:
        return {
            "loss": self.loss_fn.state_dict(),
            "correctors": {b: c.state_dict() for b, c in self.correctors.items()},
            "audit": self.audit.state_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.loss_fn.load_state_dict(state["loss"])
        for branch, corrector in self.correctors.items():
            corrector.load_state_dict(state["correctors"][branch])
        self.audit.load_state_dict(state["audit"])


def build_objective(
    *,
    model_name: str,
    loss: LossConfig,
    correction: CorrectionConfig,
    balance: BalanceConfig,
    class_counts: Tensor,
    num_samples: int,
) -> Objective:
    """The objective of `model_name`'s branches with the loss, corrector and balancer settings."""
    counts = torch.as_tensor(class_counts, dtype=torch.float32)
    correctors = {
        branch: LabelCorrector(
            len(counts),
            tau=correction.tau,
            margin=correction.margin,
            class_threshold=correction.class_threshold,
            momentum=correction.momentum,
            persist=correction.persist,
            num_samples=num_samples,
        )
        for branch in BRANCHES[model_name]
    }
    return Objective(
        loss_fn=build_loss(loss, class_counts=counts, num_samples=num_samples),
        correctors=correctors,
        correction_weight=correction.weight,
        correction_start_epoch=correction.start_epoch,
        balance_weight=balance.weight,
        kappa_power=balance.kappa_power,
        splc_start_epoch=loss.splc.start_epoch,
        class_counts=counts,
    )


def train_step(
    model: nn.Module,
    objective: Objective,
    optimizer: torch.optim.Optimizer,
    batches: Mapping[str, Batch],
    *,
    epoch: int,
    device: torch.device,
    amp: bool,
) -> dict:
    """One optimisation step; returns the loss parts as detached 0-d tensors on the device. Nothing in the
    step waits for the device; `loss_table` reads an epoch's parts at once and checks them."""
    model.train()
    batches = {k: to_device(v, device) for k, v in batches.items()}
    optimizer.zero_grad(set_to_none=True)
    with autocast(device, amp):
        loss, parts = objective(model, batches, epoch)
    loss.backward()
    optimizer.step()
    return parts


def loss_table(steps: list[Mapping[str, Tensor]], epoch: int) -> tuple[list[str], Tensor]:
    """The part names and a (steps, parts) float64 CPU table of `train_step`'s returns, read from the device
    in one go. A non-finite loss raises FloatingPointError naming its first step: the training loop calls
    this before it checkpoints an epoch, so a diverged state is never saved."""
    keys = sorted(steps[0])
    table = torch.stack([torch.stack([step[k].double() for k in keys]) for step in steps]).cpu()
    bad = (~torch.isfinite(table[:, keys.index("loss")])).nonzero()
    if len(bad):
        first = int(bad[0, 0])
        values = dict(zip(keys, table[first].tolist(), strict=True))
        raise FloatingPointError(
            f"non-finite loss at epoch {epoch}, step {first}: {values}; lower train.lr or check the data"
        )
    return keys, table


def build_optimizer(model: nn.Module, *, lr: float, weight_decay: float) -> torch.optim.Optimizer:
    """Adam; on CUDA the fused kernel (one launch for all parameters instead of a few per tensor)."""
    fused = next(model.parameters()).is_cuda
    return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay, fused=fused or None)
