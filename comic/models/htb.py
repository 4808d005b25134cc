"""The three-branch head-tail balanced model of COMIC (docs/method.md, Balance)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from comic.distributed import all_reduce_mean
from comic.models.backbones import build_backbone
from comic.models.heads import AdditiveAttention, CosineClassifier, MovingVector, learning_effect

HTB_BRANCHES = ("head", "balanced", "tail")


@dataclass
class HTBOutput:
    """Logits (B, C) of each branch. `head` and `balanced` are on the instance-sampled images, `tail` on
    the re-balanced images; `tail_on_instance` is the tail view of the instance images (no gradient),
    the second teacher of the distillation. In evaluation every field is on the same images."""

    head: Tensor
    balanced: Tensor
    tail: Tensor
    tail_on_instance: Tensor


class HTBModel(nn.Module):
    """Head, balanced and tail branches, each a backbone (or a shared trunk plus a per-branch neck) and a
    cosine classifier. Head and tail logits are the learning-effect views of their features; the balanced
    features are fused with the head and tail features (detached) by additive attention:
    f_b <- f_b + Attn(f_b, [f_h, f_t]). Prediction is sigmoid of the balanced logits.

    Training forward: `model(x_instance, x_rebalanced)`; evaluation: `model(x)` (or `predict(x)`).
    """

    def __init__(
        self,
        backbone: str,
        num_classes: int,
        *,
        pretrained_path: str | None,
        norm: str,
        shared_backbone: bool,
        rho: float,
        eta: float,
        momentum: float,
        alpha: float,
    ):
        super().__init__()
        self.shared_backbone, self.alpha = shared_backbone, alpha
        if shared_backbone:
            self.trunk, dim = build_backbone(backbone, pretrained_path=pretrained_path, norm=norm)
            self.necks = nn.ModuleDict(
                {b: nn.Sequential(nn.Linear(dim, dim), nn.LayerNorm(dim), nn.ReLU()) for b in HTB_BRANCHES}
            )
        else:
            built = {b: build_backbone(backbone, pretrained_path=pretrained_path, norm=norm) for b in HTB_BRANCHES}
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

    def forward(self, images_bchw: Tensor, rebalanced_bchw: Tensor | None = None) -> HTBOutput:
        head, balanced, tail_instance, tail_rebalanced = self._features(images_bchw, rebalanced_bchw)
        if self.training:
            tail = tail_instance if tail_rebalanced is None else tail_rebalanced
            views = (head, balanced, tail)  # one collective for the three moving vectors
            means = all_reduce_mean(torch.stack([view.detach().float().mean(dim=0) for view in views]))
            for branch, mean_d in zip(HTB_BRANCHES, means, strict=True):
                self.moving[branch].update(mean_d)
        keys_bkd = torch.stack([head.detach(), tail_instance.detach()], dim=1)
        fused = balanced + self.fusion(balanced, keys_bkd)
        tail_teacher = self._tail_logits(tail_instance)
        return HTBOutput(
            head=self._head_logits(head),
            balanced=self.classifiers["balanced"](fused),
            tail=tail_teacher if tail_rebalanced is None else self._tail_logits(tail_rebalanced),
            tail_on_instance=tail_teacher.detach(),
        )

    def predict(self, images_bchw: Tensor) -> Tensor:
        """Logits (B, C) used for prediction: the balanced branch after fusion."""
        return self.forward(images_bchw).balanced


class SingleHeadModel(nn.Module):
    """Backbone + linear classifier, the model of every baseline."""

    def __init__(self, backbone: str, num_classes: int, *, pretrained_path: str | None, norm: str):
        super().__init__()
        self.backbone, dim = build_backbone(backbone, pretrained_path=pretrained_path, norm=norm)
        self.classifier = nn.Linear(dim, num_classes)

    def forward(self, images_bchw: Tensor) -> Tensor:
        return self.classifier(self.backbone(images_bchw))

    def predict(self, images_bchw: Tensor) -> Tensor:
        return self.forward(images_bchw)
