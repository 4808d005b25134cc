"""HTB parts: cosine classifier, learning-effect logits, distillation weights, teachers, shared trunk."""

import dataclasses

import pytest
import torch

from comic.config import BalanceConfig, ModelConfig
from comic.device import to_device
from comic.losses import distillation_weights, htb_distillation
from comic.models import CosineClassifier, build_model, learning_effect
from tests.builders import backbone as build_backbone
from tests.builders import htb as HTBModel
from tests.builders import mfm as MFM


def test_cosine_classifier_equals_its_formula_in_float64():
    torch.manual_seed(0)
    head = CosineClassifier(8, 5, rho=16.0, eta=1 / 32).double()
    f = torch.randn(4, 8, dtype=torch.float64)
    w = head.weight.detach()
    reference = 16.0 * (f / f.norm(dim=1, keepdim=True)) @ (w / (w.norm(dim=1, keepdim=True) + 1 / 32)).t()
    torch.testing.assert_close(head(f), reference)


def test_head_and_tail_learning_effect_logits_follow_the_formula():
    torch.manual_seed(1)
    f, e = torch.randn(4, 8, dtype=torch.float64), torch.randn(8, dtype=torch.float64)
    f_hat, e_hat = f / f.norm(dim=1, keepdim=True), e / e.norm()
    c = (f_hat @ e_hat).unsqueeze(1)
    torch.testing.assert_close(learning_effect(f, e, -1.0), f_hat - c * e_hat)
    torch.testing.assert_close(learning_effect(f, e, 2.0), f_hat + 2.0 * c * e_hat)
    head_view = learning_effect(f, e, -1.0)
    torch.testing.assert_close(head_view @ e_hat, torch.zeros(4, dtype=torch.float64), atol=1e-12, rtol=0)


def test_a_zero_moving_vector_leaves_the_normalised_features_unchanged():
    f = torch.randn(3, 6)
    torch.testing.assert_close(learning_effect(f, torch.zeros(6), 2.0), f / f.norm(dim=1, keepdim=True))


def test_distillation_weights_sum_to_one_and_favour_the_branch_with_the_larger_loss():
    kappa_h, kappa_t = distillation_weights(torch.tensor(3.0), torch.tensor(1.0), power=2.0)
    torch.testing.assert_close(kappa_h + kappa_t, torch.tensor(1.0))
    torch.testing.assert_close(kappa_h, torch.tensor(0.9))


def test_distillation_sends_no_gradient_into_the_teachers():
    torch.manual_seed(2)
    head, tail, balanced = (torch.randn(4, 5, requires_grad=True) for _ in range(3))
    head_loss, tail_loss = (head**2).mean(), (tail**2).mean()
    kappa_h, kappa_t = distillation_weights(head_loss, tail_loss, 2.0)
    loss = htb_distillation(head, tail, balanced, torch.ones(4, 5), MFM(torch.ones(5) * 10), kappa_h, kappa_t)
    head_grad, tail_grad, balanced_grad = torch.autograd.grad(loss, [head, tail, balanced], allow_unused=True)
    assert head_grad is None and tail_grad is None
    assert balanced_grad.abs().sum() > 0


def test_distillation_equals_the_paper_formula_in_float64():
    torch.manual_seed(3)
    head, tail, balanced = (torch.randn(4, 5, dtype=torch.float64) for _ in range(3))
    targets = (torch.rand(4, 5) < 0.5).double()
    mfm = MFM(torch.arange(1.0, 6.0) * 10).double()
    kh, kt = torch.tensor(0.3, dtype=torch.float64), torch.tensor(0.7, dtype=torch.float64)
    phi = lambda z: torch.exp(z) / torch.exp(z).sum(1, keepdim=True)  # noqa: E731
    reference = kh * mfm(phi(head) * phi(balanced), targets) + kt * mfm(phi(tail) * phi(balanced), targets)
    torch.testing.assert_close(htb_distillation(head, tail, balanced, targets, mfm, kh, kt), reference)


@pytest.mark.parametrize("shared", [False, True])
def test_htb_model_gives_logits_for_every_branch_and_updates_moving_vectors_only_in_training(shared):
    torch.manual_seed(4)
    balance = dataclasses.replace(BalanceConfig(), shared_backbone=shared)
    model = build_model(ModelConfig(name="comic"), balance, num_classes=5)
    out = model(torch.randn(6, 3, 32, 32), torch.randn(6, 3, 32, 32))
    logits = {k: v for k, v in vars(out).items() if k != "balanced_features"}
    assert all(t.shape == (6, 5) for t in logits.values()) and out.balanced_features.shape[0] == 6
    assert not out.tail_on_instance.requires_grad
    moved = model.moving["head"].vector.clone()
    assert moved.abs().sum() > 0
    model.eval()
    assert model.predict(torch.randn(2, 3, 32, 32)).shape == (2, 5)
    torch.testing.assert_close(model.moving["head"].vector, moved)


def test_shared_backbone_builds_one_trunk_and_separate_backbones_build_three():
    shared = HTBModel("small_cnn", 5, shared_backbone=True)
    separate = HTBModel("small_cnn", 5, shared_backbone=False)
    assert hasattr(shared, "trunk") and not hasattr(shared, "backbones")
    assert len(separate.backbones) == 3 and not hasattr(separate, "trunk")
    count = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731
    trunk = count(shared.trunk)
    assert count(separate) > 2 * trunk + count(separate.classifiers)


def test_every_branch_gets_a_gradient_from_a_training_step():
    torch.manual_seed(5)
    model = HTBModel("small_cnn", 4)
    out = model(torch.randn(4, 3, 32, 32), torch.randn(4, 3, 32, 32))
    (out.head.sum() + out.balanced.sum() + out.tail.sum()).backward()
    assert all(p.grad is not None for name, p in model.named_parameters()), "unused parameters break DDP"


@pytest.mark.parametrize("name,dim", [("small_cnn", 256), ("resnet18", 512), ("efficientnet_lite0", 1280)])
def test_backbones_map_images_to_features_without_downloading(name, dim):
    module, feature_dim, weights = build_backbone(name)
    assert feature_dim == dim and weights.source == "random"
    assert module(torch.randn(2, 3, 64, 64)).shape == (2, dim)


def test_pretrained_weights_load_from_a_local_file_and_a_missing_file_is_a_clear_error(tmp_path):
    source, _, _ = build_backbone("resnet18")
    path = tmp_path / "r18.pt"
    torch.save(source.state_dict(), path)
    loaded, _, weights = build_backbone("resnet18", pretrained_path=str(path))
    torch.testing.assert_close(loaded.conv1.weight, source.conv1.weight)
    assert weights.source == f"file:{path}" and len(weights.sha256) == 64
    with pytest.raises(FileNotFoundError, match="pretrained_path"):
        build_backbone("resnet18", pretrained_path=str(tmp_path / "absent.pt"))


def test_rule_logits_give_every_prediction_rule_and_mean_averages_the_three_sigmoids():
    torch.manual_seed(6)
    model = build_model(ModelConfig(name="comic"), BalanceConfig(), num_classes=4).eval()
    images = torch.randn(3, 3, 32, 32)
    rules = model.rule_logits(images)
    assert set(rules) == {"balanced", "unfused", "head", "tail", "mean"}
    mean = (torch.sigmoid(rules["head"]) + torch.sigmoid(rules["balanced"]) + torch.sigmoid(rules["tail"])) / 3
    torch.testing.assert_close(torch.sigmoid(rules["mean"]), mean, rtol=1e-4, atol=1e-6)
    model.prediction = "mean"
    torch.testing.assert_close(model.predict(images), rules["mean"])


def test_the_single_head_ablation_can_keep_the_cosine_classifier():
    balance = BalanceConfig()
    cosine = build_model(ModelConfig(name="single", classifier="cosine"), balance, num_classes=5)
    assert isinstance(cosine.classifier, CosineClassifier) and cosine.classifier.rho == balance.rho
    linear = build_model(ModelConfig(name="single"), balance, num_classes=5)
    assert isinstance(linear.classifier, torch.nn.Linear)


def test_models_and_image_batches_are_channels_last_and_cached_features_pass_through():
    model = build_model(ModelConfig(), BalanceConfig(), num_classes=5)
    convs = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    images = to_device({"image": torch.randn(2, 3, 16, 16)}, torch.device("cpu"))["image"]
    assert images.is_contiguous(memory_format=torch.channels_last)
    features = torch.randn(2, 8)
    assert torch.equal(to_device({"image": features}, torch.device("cpu"))["image"], features)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}  # a model file's contiguous tensors
    model.load_state_dict(state)
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
