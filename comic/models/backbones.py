"""Feature extractors by name. Random initialisation by default; nothing is ever downloaded."""

from __future__ import annotations

from pathlib import Path

import torch
import torchvision
from torch import nn

BACKBONES = ("small_cnn", "resnet18", "resnet50")


def _norm(kind: str, channels: int) -> nn.Module:
    return nn.BatchNorm2d(channels) if kind == "batch" else nn.GroupNorm(8, channels)


class SmallCNN(nn.Module):
    """Four conv-norm-ReLU stages, each halving the resolution, then global average pooling.
    For the embedded 64 px mosaics: (B, 3, H, W) -> (B, 256).

    `norm="batch"` learns the embedded benchmark far faster (GroupNorm and no normalisation stayed at the
    class-prior loss for 12 epochs, docs/training.md); `norm="group"` is per image, so a DDP step on CPU,
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


def build_backbone(name: str, *, pretrained_path: str | None, norm: str) -> tuple[nn.Module, int]:
    """`(module, feature_dim)`: the module maps (B, 3, H, W) images to (B, feature_dim) features.

    `pretrained_path` is a local torchvision state_dict for a ResNet (its `fc.*` keys are ignored);
    `norm` picks the small CNN's normalisation (ResNets keep BatchNorm).
    """
    if name == "small_cnn":
        if pretrained_path:
            raise ValueError("model.pretrained_path: small_cnn has no pretrained weights; set it to null")
        module = SmallCNN(norm=norm)
        return module, module.out_dim
    if name not in BACKBONES:
        raise ValueError(f"model.backbone: unknown backbone {name!r}; choose one of {list(BACKBONES)}")
    module = getattr(torchvision.models, name)(weights=None)
    if pretrained_path:
        _load_resnet_weights(module, Path(pretrained_path))
    feature_dim = module.fc.in_features
    module.fc = nn.Identity()
    return module, feature_dim


def _load_resnet_weights(module: nn.Module, path: Path) -> None:
    if not path.is_file():
        raise FileNotFoundError(
            f"model.pretrained_path: {path} does not exist; put a torchvision state_dict there or set it to null"
        )
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = module.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise ValueError(
            f"model.pretrained_path: {path} does not match the backbone "
            f"(missing {missing[:3]}..., unexpected {unexpected[:3]}...)"
        )
