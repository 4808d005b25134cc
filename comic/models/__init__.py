"""Models by name: `comic` (three-branch HTB) and `single` (one head, for the baselines)."""

from __future__ import annotations

from torch import nn

from comic.config import BalanceConfig, ModelConfig
from comic.models.backbones import BACKBONES, build_backbone
from comic.models.heads import AdditiveAttention, CosineClassifier, MovingVector, learning_effect
from comic.models.htb import HTB_BRANCHES, HTB_VIEWS, HTBModel, HTBOutput, SingleHeadModel

# The branches of each model, by `model.name`: one label corrector and one loss per branch.
BRANCHES = {"comic": HTB_BRANCHES, "single": ("single",)}


def build_model(model: ModelConfig, balance: BalanceConfig, *, num_classes: int) -> nn.Module:
    if model.name == "single":
        return SingleHeadModel(
            model.backbone,
            num_classes,
            pretrained_path=model.pretrained_path,
            norm=model.norm,
            classifier=model.classifier,
            rho=balance.rho,
            eta=balance.eta,
        )
    if model.name == "comic":
        return HTBModel(
            model.backbone,
            num_classes,
            pretrained_path=model.pretrained_path,
            norm=model.norm,
            shared_backbone=balance.shared_backbone,
            rho=balance.rho,
            eta=balance.eta,
            momentum=balance.momentum,
            alpha=balance.alpha,
            branch_logits=balance.branch_logits,
            prediction="balanced" if balance.prediction == "auto" else balance.prediction,
        )
    raise ValueError(f"model.name: unknown model {model.name!r}; choose comic or single")


__all__ = [
    "BACKBONES",
    "BRANCHES",
    "AdditiveAttention",
    "CosineClassifier",
    "HTB_VIEWS",
    "HTBModel",
    "HTBOutput",
    "MovingVector",
    "SingleHeadModel",
    "build_backbone",
    "build_model",
    "learning_effect",
]
