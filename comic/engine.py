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

from comic.config import BalanceConfig, CorrectionConfig, LossConfig, Params
from comic.device import autocast, to_device, unwrap
from comic.distributed import all_reduce_mean, all_reduce_mean_each, all_reduce_sum
from comic.losses import (
    SPLC,
    LabelCorrector,
    bce_distillation,
    build_loss,
    distillation_weights,
    htb_distillation,
    teacher_weights,
)
from comic.metrics import GROUPS, CorrectionAudit
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


DIAGNOSE_EVERY = 10  # steps between two gradient diagnostics (the first step of an epoch is one)


class GradientProbe:
    """Epoch means of what each loss term sends to the balanced logits z_b and the balanced trunk's
    features f_b: the share of each term in the sum of the terms' gradient norms, and the net gradient
    on recalled entries (dL/dz summed over terms, times the batch size; negative raises the logit)."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}

    def add(self, name: str, value: Tensor) -> None:
        value = value.detach().double().reshape(1)
        self.sums[name] = self.sums[name] + value if name in self.sums else value

    def measure(self, terms: dict[str, Tensor], targets: dict[str, Tensor], recalled_bc: Tensor | None) -> None:
        live = {k: v for k, v in terms.items() if v.requires_grad}
        self.add("steps", torch.ones(1))
        for where, tensor in targets.items():
            if not tensor.requires_grad:  # a frozen trunk's features
                continue
            grads = {
                k: torch.autograd.grad(v, tensor, retain_graph=True, allow_unused=True)[0] for k, v in live.items()
            }
            norms = {k: g.norm() if g is not None else tensor.new_zeros(()) for k, g in grads.items()}
            total = sum(norms.values()).clamp(min=1e-12)
            for k, norm in norms.items():
                self.add(f"grad_share/{where}/{k}", norm / total)
            if where == "logits" and recalled_bc is not None:
                net = sum(g for g in grads.values() if g is not None) * len(tensor)
                self.add("recalled/net_grad_sum", (net * recalled_bc).sum())
                self.add("recalled/entries", recalled_bc.sum())

    def result(self) -> dict[str, float]:
        """Epoch means over ranks and steps; resets."""
        if not self.sums:
            return {}
        names = sorted(self.sums)
        totals = all_reduce_sum(torch.cat([self.sums[k].cpu() for k in names]))
        values = dict(zip(names, totals.tolist(), strict=True))
        self.sums = {}
        steps = values.pop("steps")
        out = {k: v / steps for k, v in values.items() if k.startswith("grad_share/")}
        entries = values.get("recalled/entries", 0.0)
        if entries:
            out["recalled/net_grad"] = values["recalled/net_grad_sum"] / entries
        return out


class Objective:
    """Loss of one training step, plus the state that learns or counts during training.

    `correctors` has one `LabelCorrector` per branch of the model (`comic.models.BRANCHES`); the audit
    follows the branch that predicts (`balanced`, or `single`). `groups_c` (0 many, 1 medium, 2 few) tells
    the teachers of `teachers: by_group` which classes to teach."""

    def __init__(
        self,
        *,
        loss_fn: nn.Module,
        correctors: dict[str, LabelCorrector],
        correction: CorrectionConfig,
        balance: BalanceConfig,
        splc_start_epoch: int,
        class_counts: Tensor,
        groups_c: Tensor,
    ):
        self.loss_fn, self.correctors = loss_fn, correctors
        self.correction_weight, self.correction_start_epoch = correction.weight, correction.start_epoch
        self.mask_recalled = correction.mask_recalled
        self.balance_weight, self.kappa_power = balance.weight, balance.kappa_power
        self.distill, self.plain_branches = balance.distill, balance.branch_logits == "plain"
        self.groups_c = groups_c if balance.teachers == "by_group" else None
        self.splc_start_epoch = splc_start_epoch
        self.base_counts = torch.as_tensor(class_counts, dtype=torch.float32)
        self.audited_branch = "balanced" if "balanced" in correctors else "single"
        self.audit = CorrectionAudit()
        self.probe = GradientProbe()
        self.steps = 0

    def to(self, device: torch.device) -> Objective:
        self.loss_fn.to(device)
        if self.groups_c is not None:
            self.groups_c = self.groups_c.to(device)
        return self

    def correcting(self, epoch: int) -> bool:
        return self.correction_weight > 0 and epoch >= self.correction_start_epoch

    def __call__(self, model: nn.Module, batches: Mapping[str, Batch], epoch: int) -> tuple[Tensor, dict]:
        """Total loss and its parts (detached 0-d tensors: reading them would wait for the device) for one
        step; `batches` has `instance` and, for COMIC, `rebalanced`."""
        diagnose = self.steps % DIAGNOSE_EVERY == 0
        self.steps += 1
        if isinstance(unwrap(model), HTBModel):
            return self._comic(model, batches["instance"], batches["rebalanced"], epoch, diagnose)
        return self._single(model, batches["instance"], epoch, diagnose)

    def _correct(self, branch: str, logits_bc: Tensor, batch: Batch, mean_c: Tensor | None = None) -> Tensor:
        corrected = self.correctors[branch](logits_bc, batch["labels_observed"], batch["index"], mean_c)
        if branch == self.audited_branch:
            self.audit.update(batch["labels_observed"], corrected, batch["labels_full"])
        return corrected

    def _main_weight(self, corrected_bc: Tensor | None, observed_bc: Tensor) -> Tensor | None:
        """With `mask_recalled`, 0 on the entries the corrector recalled: the main term stops pushing them down."""
        if corrected_bc is None or not self.mask_recalled:
            return None
        return 1 - (corrected_bc - observed_bc).clamp(min=0)

    def _single(self, model: nn.Module, batch: Batch, epoch: int, diagnose: bool) -> tuple[Tensor, dict]:
        logits = model(batch["image"]).float()
        observed = batch["labels_observed"]
        corrected = self._correct("single", logits, batch) if self.correcting(epoch) else None
        terms = {}
        if isinstance(self.loss_fn, SPLC):
            correct = epoch >= self.splc_start_epoch
            terms["main"] = self.loss_fn(logits, observed, correct=correct)
            if correct:
                self.audit.update(observed, self.loss_fn.corrected_targets(logits, observed), batch["labels_full"])
        else:
            terms["main"] = self.loss_fn(logits, observed, self._main_weight(corrected, observed))
        parts = {"loss_main": terms["main"].detach()}
        if corrected is not None:
            rlc = correction_loss(self.loss_fn, logits, corrected, all_reduce_mean(corrected.sum()))
            parts["loss_rlc"] = rlc.detach()
            terms["rlc"] = self.correction_weight * rlc
        if diagnose and logits.requires_grad:
            recalled = None if corrected is None else (corrected - observed).clamp(min=0)
            self.probe.measure(terms, {"logits": logits}, recalled)
        loss = sum(terms.values())
        parts["loss"] = loss.detach()
        return loss, parts

    def _comic(
        self, model: nn.Module, instance: Batch, rebalanced: Batch, epoch: int, diagnose: bool
    ) -> tuple[Tensor, dict]:
        out = model(instance["image"], rebalanced["image"])
        # ẑ (learning effect) for head and tail: what RLC and the teachers use, and the main loss by default.
        learned = {"head": out.head.float(), "balanced": out.balanced.float(), "tail": out.tail.float()}
        main = dict(learned)
        if self.plain_branches:
            main.update(head=out.head_plain.float(), tail=out.tail_plain.float())
        streams = {"head": instance, "balanced": instance, "tail": rebalanced}
        observed = {b: streams[b]["labels_observed"] for b in learned}
        correcting, balancing = self.correcting(epoch), self.balance_weight > 0
        corrected: dict[str, Tensor | None] = dict.fromkeys(learned)
        if correcting:
            # The three correctors' batch means averaged over ranks in one collective.
            means = {b: self.correctors[b].batch_mean(learned[b], observed[b]) for b in learned}
            known = {b: m for b, m in means.items() if m is not None}
            shared = dict(zip(known, all_reduce_mean_each(*known.values()), strict=True)) if known else {}
            corrected = {b: self._correct(b, learned[b], streams[b], shared.get(b)) for b in learned}
        branch_losses = {
            b: self.loss_fn(main[b], observed[b], self._main_weight(corrected[b], observed[b])) for b in main
        }
        parts = {f"loss_{b}": v.detach() for b, v in branch_losses.items()}
        # Positives of the corrected labels and the head and tail losses behind kappa: one collective.
        local = []
        if correcting:
            local.append(torch.stack([corrected[b].sum() for b in learned]))
        if balancing:
            local.append(torch.stack([branch_losses["head"], branch_losses["tail"]]).detach())
        reduced = all_reduce_mean_each(*local) if local else []
        terms = {"main": branch_losses["balanced"], "head": branch_losses["head"], "tail": branch_losses["tail"]}
        if correcting:
            positives = reduced.pop(0)
            rlc = {
                b: correction_loss(self.loss_fn, learned[b], corrected[b], positives[i]) for i, b in enumerate(learned)
            }
            parts["loss_rlc"] = sum(rlc.values()).detach()
            terms["rlc"] = self.correction_weight * rlc["balanced"]
            terms["rlc_branches"] = self.correction_weight * (rlc["head"] + rlc["tail"])
        if balancing:
            kappa_h, kappa_t = distillation_weights(*reduced.pop(0), self.kappa_power)
            if self.distill == "literal":
                htb = htb_distillation(
                    learned["head"], out.tail_on_instance.float(), learned["balanced"], observed["balanced"],
                    self.loss_fn, kappa_h, kappa_t,
                )  # fmt: skip
            else:
                head_c, tail_c = teacher_weights(kappa_h, kappa_t, self.groups_c)
                htb = bce_distillation(
                    learned["head"], out.tail_on_instance.float(), learned["balanced"], head_c, tail_c
                )
            parts["loss_htb"], parts["kappa_head"] = htb.detach(), kappa_h
            terms["htb"] = self.balance_weight * htb
        if diagnose:
            recalled = (
                None if corrected["balanced"] is None else (corrected["balanced"] - observed["balanced"]).clamp(min=0)
            )
            balanced_terms = {k: terms[k] for k in ("main", "rlc", "htb") if k in terms}
            targets = {"logits": learned["balanced"], "features": out.balanced_features}
            self.probe.measure(balanced_terms, targets, recalled)
        loss = sum(terms.values())
        parts["loss"] = loss.detach()
        return loss, parts

    def end_epoch(self) -> dict:
        """Refresh the loss's class distribution with this epoch's recalled labels (dynamic distribution);
        return the audit of the epoch's corrections and the gradient diagnostics; reset all three."""
        recalled = self.correctors[self.audited_branch].take_epoch_counts()
        for branch, corrector in self.correctors.items():
            if branch != self.audited_branch:
                corrector.take_epoch_counts()
        if hasattr(self.loss_fn, "set_class_counts"):
            self.loss_fn.set_class_counts(self.base_counts + recalled.float())
        counts = all_reduce_sum(torch.as_tensor(self.audit.counts()))
        self.audit.reset()
        self.audit.add_counts(counts.numpy())
        result = {f"correction/{k}": v for k, v in self.audit.result().items()}
        self.audit.reset()
        return {**result, **{f"diagnostics/{k}": v for k, v in self.probe.result().items()}}

    def state_dict(self) -> dict:
        return {
            "loss": self.loss_fn.state_dict(),
            "correctors": {b: c.state_dict() for b, c in self.correctors.items()},
            "audit": self.audit.state_dict(),
            "steps": self.steps,
        }

    def load_state_dict(self, state: dict) -> None:
        self.loss_fn.load_state_dict(state["loss"])
        for branch, corrector in self.correctors.items():
            corrector.load_state_dict(state["correctors"][branch])
        self.audit.load_state_dict(state["audit"])
        self.steps = state["steps"]


def build_objective(
    *,
    model_name: str,
    loss: LossConfig,
    correction: CorrectionConfig,
    balance: BalanceConfig,
    class_counts: Tensor,
    num_samples: int,
    groups: list[str],
    cooccurrence: Tensor | None,
) -> Objective:
    """The objective of `model_name`'s branches with the loss, corrector and balancer settings; `groups`
    are the classes' shot groups, `cooccurrence` the observed training co-occurrence counts (C, C)."""
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
        loss_fn=build_loss(loss, class_counts=counts, num_samples=num_samples, cooccurrence=cooccurrence),
        correctors=correctors,
        correction=correction,
        balance=balance,
        splc_start_epoch=loss.splc.start_epoch,
        class_counts=counts,
        groups_c=torch.tensor([GROUPS.index(g) for g in groups]),
    )


def objective_for(params: Params, *, class_counts: Tensor, num_samples: int, groups: list[str], cooccurrence=None):
    """`build_objective` with the model, loss, correction and balance sections of `params`."""
    return build_objective(
        model_name=params.model.name,
        loss=params.loss,
        correction=params.correction,
        balance=params.balance,
        class_counts=class_counts,
        num_samples=num_samples,
        groups=groups,
        cooccurrence=cooccurrence,
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


# The authors' step schedule: learning rates drop x0.1 at this fraction of training, by parameter group.
STEP_AT = {"head": 0.6, "balanced": 0.3, "tail": 0.3, "trunk": 0.3, "heads": 0.45}


def parameter_groups(model: nn.Module) -> dict[str, list[nn.Parameter]]:
    """Trainable parameters by group: the trunk of each branch (`head`, `balanced`, `tail`, or the shared
    `trunk`; a single head's backbone is `trunk`) and `heads` (classifiers, fusion)."""
    groups: dict[str, list[nn.Parameter]] = {}
    for name, parameter in unwrap(model).named_parameters():
        if not parameter.requires_grad:
            continue
        parts = name.split(".")
        if parts[0] in ("classifiers", "classifier", "fusion"):
            group = "heads"
        elif parts[0] in ("backbones", "necks"):
            group = parts[1]
        else:
            group = "trunk"
        groups.setdefault(group, []).append(parameter)
    return groups


def build_optimizer(
    model: nn.Module, *, lr: float, weight_decay: float, classifier_lr_scale: float, backbone_lr_scale: float = 1.0
) -> torch.optim.Optimizer:
    """Adam over `parameter_groups`: classifiers and fusion at `classifier_lr_scale` x lr, trunks (with their
    necks) at `backbone_lr_scale` x lr; frozen parameters are left out. The fused kernel on every device: one
    pass over each tensor's weights, gradients and moments instead of several (on the CPU:
    docs/studies/tuning-pretrained.md)."""
    groups = parameter_groups(model)
    param_groups = [
        {"params": params, "name": name, "lr": lr * (classifier_lr_scale if name == "heads" else backbone_lr_scale)}
        for name, params in groups.items()
    ]
    return torch.optim.Adam(param_groups, lr=lr, weight_decay=weight_decay, fused=True)


def build_scheduler(optimizer: torch.optim.Optimizer, *, schedule: str, epochs: int):
    """Stepped once per epoch: cosine annealing to 0 over `epochs`, or the authors' per-group steps."""
    if schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
    if schedule != "authors_step":
        raise ValueError(f"train.schedule: {schedule!r} is not cosine or authors_step")
    steps = [round(STEP_AT[group["name"]] * epochs) for group in optimizer.param_groups]
    factors = [lambda epoch, at=at: 0.1 if epoch >= at else 1.0 for at in steps]
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factors)
