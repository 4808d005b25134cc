"""Losses by short name, the label corrector and the head-tail distillation.

`build_loss(config, class_counts=..., num_samples=...)` builds the loss `config.name` from its own section
of `params.yaml` (`loss.<name>`); class statistics come from the training data.
"""

from __future__ import annotations

import dataclasses

from torch import Tensor, nn

from comic.config import LossConfig
from comic.losses.balance import bce_distillation, distillation_weights, htb_distillation, teacher_weights
from comic.losses.correction import LabelCorrector
from comic.losses.db_focal import DBFocal
from comic.losses.focal import ASL, BCE, MFM, Focal, asymmetric_focal_terms, head_tail_factor
from comic.losses.missing import SPLC, Hill

LOSSES: dict[str, type[nn.Module]] = {
    "bce": BCE,
    "focal": Focal,
    "asl": ASL,
    "db_focal": DBFocal,
    "hill": Hill,
    "splc": SPLC,
    "mfm": MFM,
}
# Settings in a loss's params section that belong to the training schedule, not to the module.
_SCHEDULE_KEYS = {"splc": {"start_epoch"}}


def build_loss(
    config: LossConfig, *, class_counts: Tensor, num_samples: int, cooccurrence: Tensor | None = None
) -> nn.Module:
    """The loss `config.name` with its hyperparameters from `config.<name>`; `cooccurrence` (C, C) is the
    observed training co-occurrence matrix, which MFM's optional prior reads."""
    if config.name not in LOSSES:
        raise ValueError(f"loss.name: unknown loss {config.name!r}; choose one of {sorted(LOSSES)}")
    section = getattr(config, config.name, None)
    kwargs = dataclasses.asdict(section) if section is not None else {}
    for key in _SCHEDULE_KEYS.get(config.name, ()):
        kwargs.pop(key)
    if config.name in ("mfm", "db_focal"):
        kwargs["class_counts"] = class_counts
    if config.name == "mfm":
        kwargs["cooccurrence"] = cooccurrence
    if config.name == "db_focal":
        kwargs["num_samples"] = num_samples
    return LOSSES[config.name](**kwargs)


__all__ = [
    "ASL",
    "BCE",
    "DBFocal",
    "Focal",
    "Hill",
    "LOSSES",
    "LabelCorrector",
    "MFM",
    "SPLC",
    "asymmetric_focal_terms",
    "bce_distillation",
    "build_loss",
    "distillation_weights",
    "head_tail_factor",
    "htb_distillation",
    "teacher_weights",
]
