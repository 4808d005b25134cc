"""The three-branch head-tail balanced model of COMIC (docs/method.md, Balance)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from comic.distributed import all_reduce_mean
from comic.models.heads import AdditiveAttention, CosineClassifier, MovingVector, learning_effect

HTB_BRANCHES = ("head", "balanced", "tail")


@dataclass
class HTBOutput:
    """Logits (B, C) of each branch in training. `head*`, `balanced` are on the instance-sampled images,
    `tail*` on the re-balanced images; `*_plain` are the plain cosine logits z, the others the
    learning-effect logits ẑ (`balanced` is after fusion). `tail_on_instance` is ẑ_t of the instance images
    (no gradient), the second teacher; `balanced_features` is f_b before fusion (for the diagnostics)."""

    head: Tensor
    head_plain: Tensor
    balanced: Tensor
    balanced_features: Tensor
    tail: Tensor
    tail_plain: Tensor
    tail_on_instance: Tensor


# The prediction rules by name (`HTBModel.rule_logits`); `mean` averages the three sigmoids.
HTB_RULES = ("balanced", "unfused", "head", "tail", "mean")


class HTBModel(nn.Module):
    """Head, balanced and tail branches, each a trunk from `make_trunk` (or one shared trunk plus a per-branch
    neck) and a cosine classifier. Head and tail logits come plain (z) and as learning-effect views (ẑ) of their
    features; the balanced features are fused with the head and tail features (detached) by additive
    attention: f_b <- f_b + Attn(f_b, [f_h, f_t]). `branch_logits` says which of z, ẑ the head and tail
    branches predict with (what their main loss trains); `prediction` is the rule `predict` returns.

    Training forward: `model(x_instance, x_rebalanced)`; evaluation: `rule_logits(x)` or `predict(x)`.
    """

    def __init__(
        self,
        make_trunk: Callable[[], tuple[nn.Module, int]],
        num_classes: int,
        *,
        shared_backbone: bool,
        rho: float,
        eta: float,
        momentum: float,
        alpha: float,
        branch_logits: str,
        prediction: str,
    ):
        super().__init__()
        if branch_logits not in ("learning_effect", "plain"):
            raise ValueError(f"balance.branch_logits: {branch_logits!r} is not learning_effect or plain")
        if prediction not in HTB_RULES:
            raise ValueError(f"balance.prediction: {prediction!r} is not one of {list(HTB_RULES)}")
        self.shared_backbone, self.alpha = shared_backbone, alpha
        self.branch_logits, self.prediction = branch_logits, prediction
        if shared_backbone:
            self.trunk, dim = make_trunk()
            self.necks = nn.ModuleDict(
                {b: nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim), nn.ReLU()) for b in HTB_BRANCHES}
            )
        else:
            built = {b: make_trunk() for b in HTB_BRANCHES}
            self.backbones = nn.ModuleDict({b: module for b, (module, _) in built.items()})
            dim = built["head"][1]
        self.classifiers = nn.ModuleDict(
            {b: CosineClassifier(dim, num_classes, rho=rho, eta=eta) for b in HTB_BRANCHES}
        )
        self.moving = nn.ModuleDict({b: MovingVector(dim, momentum=momentum) for b in HTB_BRANCHES})
        self.fusion = AdditiveAttention(dim)

    def _features(self, images_bchw: Tensor, rebalanced_bchw: Tensor | None) -> tuple[Tensor, ...]:
        """(f_head, f_balanced, f_tail on instance images, f_tail on re-balanced images or None)."""
        if self.shared_backbone:
            stacked = images_bchw if rebalanced_bchw is None else torch.cat([images_bchw, rebalanced_bchw])
            trunk = self.trunk(stacked)
            instance, rebalanced = trunk[: len(images_bchw)], trunk[len(images_bchw) :]
            tail_instance = self.necks["tail"](instance)
            tail_rebalanced = None if rebalanced_bchw is None else self.necks["tail"](rebalanced)
            return self.necks["head"](instance), self.necks["balanced"](instance), tail_instance, tail_rebalanced
        head = self.backbones["head"](images_bchw)
        balanced = self.backbones["balanced"](images_bchw)
        if rebalanced_bchw is None:
            return head, balanced, self.backbones["tail"](images_bchw), None
        with torch.no_grad():  # a teacher view only: the tail branch learns from its own stream
            tail_instance = self.backbones["tail"](images_bchw)
        return head, balanced, tail_instance, self.backbones["tail"](rebalanced_bchw)

    def _head_logits(self, features_bd: Tensor) -> Tensor:
        return self.classifiers["head"].project(learning_effect(features_bd, self.moving["head"].vector, -1.0))

    def _tail_logits(self, features_bd: Tensor) -> Tensor:
        return self.classifiers["tail"].project(learning_effect(features_bd, self.moving["tail"].vector, self.alpha))

    def _fused(self, balanced_bd: Tensor, head_bd: Tensor, tail_bd: Tensor) -> Tensor:
        return balanced_bd + self.fusion(balanced_bd, torch.stack([head_bd.detach(), tail_bd.detach()], dim=1))

    def forward(self, images_bchw: Tensor, rebalanced_bchw: Tensor) -> HTBOutput:
        head, balanced, tail_instance, tail = self._features(images_bchw, rebalanced_bchw)
        if self.training:
            branches = (head, balanced, tail)  # one collective for the three moving vectors
            means = all_reduce_mean(torch.stack([f.detach().float().mean(dim=0) for f in branches]))
            for branch, mean_d in zip(HTB_BRANCHES, means, strict=True):
                self.moving[branch].update(mean_d)
        return HTBOutput(
            head=self._head_logits(head),
            head_plain=self.classifiers["head"](head),
            balanced=self.classifiers["balanced"](self._fused(balanced, head, tail_instance)),
            balanced_features=balanced,
            tail=self._tail_logits(tail),
            tail_plain=self.classifiers["tail"](tail),
            tail_on_instance=self._tail_logits(tail_instance).detach(),
        )

    def rule_logits(self, images_bchw: Tensor) -> dict[str, Tensor]:
        """Logits (B, C) of every prediction rule of `HTB_RULES` on the same images (no state changes)."""
        head, balanced, tail, _ = self._features(images_bchw, None)
        learning_effect_logits = self.branch_logits == "learning_effect"
        out = {
            "balanced": self.classifiers["balanced"](self._fused(balanced, head, tail)),
            "unfused": self.classifiers["balanced"](balanced),
            "head": self._head_logits(head) if learning_effect_logits else self.classifiers["head"](head),
            "tail": self._tail_logits(tail) if learning_effect_logits else self.classifiers["tail"](tail),
        }
        mean = torch.stack([torch.sigmoid(out[b].float()) for b in ("head", "balanced", "tail")]).mean(dim=0)
        out["mean"] = torch.logit(mean, eps=1e-6)
        return out

    def predict(self, images_bchw: Tensor) -> Tensor:
        """Logits (B, C) of the prediction rule `self.prediction` (the paper: the fused balanced branch)."""
        return self.rule_logits(images_bchw)[self.prediction]


class SingleHeadModel(nn.Module):
    """Backbone + classifier, the model of every baseline: a biased linear layer (`linear`), or the cosine
    classifier of COMIC's branches (`cosine`), so that COMIC without HTB removes HTB alone."""

    def __init__(
        self,
        make_trunk: Callable[[], tuple[nn.Module, int]],
        num_classes: int,
        *,
        classifier: str,
        rho: float,
        eta: float,
    ):
        super().__init__()
        self.backbone, dim = make_trunk()
        if classifier == "linear":
            self.classifier: nn.Module = nn.Linear(dim, num_classes)
        elif classifier == "cosine":
            self.classifier = CosineClassifier(dim, num_classes, rho=rho, eta=eta)
        else:
            raise ValueError(f"model.classifier: {classifier!r} is not linear or cosine")

    def forward(self, images_bchw: Tensor) -> Tensor:
        return self.classifier(self.backbone(images_bchw))

    def rule_logits(self, images_bchw: Tensor) -> dict[str, Tensor]:
        return {"single": self.forward(images_bchw)}

    def predict(self, images_bchw: Tensor) -> Tensor:
        return self.forward(images_bchw)
