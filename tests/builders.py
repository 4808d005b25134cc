"""Library objects with the project defaults (`comic.config`), for tests that change one or two settings."""

import dataclasses

import torch

from comic.config import BalanceConfig, CorrectionConfig, MfmConfig, ModelConfig, Params
from comic.engine import objective_for
from comic.losses import MFM, LabelCorrector
from comic.metrics import shot_groups
from comic.models import HTBModel, build_backbone, build_model


def objective(params: Params, *, class_counts, num_samples: int):
    """`build_objective` with shot groups from `class_counts` and no co-occurrence matrix."""
    counts = torch.as_tensor(class_counts, dtype=torch.float32)
    groups = shot_groups(counts.numpy(), params.metrics.many_threshold, params.metrics.few_threshold)
    return objective_for(
        params,
        class_counts=counts,
        num_samples=num_samples,
        groups=groups.tolist(),
        cooccurrence=None,
    )


def corrector(num_classes: int, **overrides) -> LabelCorrector:
    settings = dataclasses.asdict(CorrectionConfig())
    kwargs = {k: settings[k] for k in ("tau", "margin", "class_threshold", "momentum", "persist")}
    return LabelCorrector(num_classes, **{**kwargs, "num_samples": None, **overrides})


def mfm(class_counts, **overrides) -> MFM:
    return MFM(torch.as_tensor(class_counts, dtype=torch.float32), **{**dataclasses.asdict(MfmConfig()), **overrides})


def htb(backbone: str, num_classes: int, **balance_overrides) -> HTBModel:
    """The COMIC model on `backbone` with the default balancer and `balance_overrides`."""
    balance = dataclasses.replace(BalanceConfig(), **balance_overrides)
    return build_model(ModelConfig(name="comic", backbone=backbone), balance, num_classes=num_classes)


def backbone(name: str, **overrides):
    """`(module, feature_dim, weights)` of `build_backbone` with the default model settings."""
    model = ModelConfig()
    kwargs = {"pretrained": False, "pretrained_path": model.pretrained_path, "norm": model.norm}
    return build_backbone(name, **{**kwargs, **overrides})
