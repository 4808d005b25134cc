"""Every loss against a float64 reference of its formula (values and gradients), and the identities
between the asymmetric-focal family."""

import dataclasses

import pytest
import torch

from comic.config import LossConfig
from comic.losses import ASL, BCE, LOSSES, SPLC, DBFocal, Focal, Hill, build_loss, head_tail_factor
from tests.builders import mfm as MFM

B, C = 7, 5


@pytest.fixture
def inputs():
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(B, C, generator=g, dtype=torch.float64) * 3).requires_grad_()
    targets = (torch.rand(B, C, generator=g) < 0.4).double()
    targets[0] = 0  # an image with no observed positive
    counts = torch.tensor([300.0, 120.0, 40.0, 9.0, 2.0], dtype=torch.float64)
    return logits, targets, counts


def reference_asymmetric(z, y, gamma_pos, gamma_neg, clip, class_weight=None, detach=True):
    p = 1 / (1 + torch.exp(-z))
    p_m = torch.clamp(p - clip, min=0) if clip > 0 else p
    w_pos, w_neg = (1 - p) ** gamma_pos, p_m**gamma_neg
    if detach:
        w_pos, w_neg = w_pos.detach(), w_neg.detach()
    loss = -(y * w_pos * torch.log(p) + (1 - y) * w_neg * torch.log(torch.clamp(1 - p_m, min=1e-8)))
    if class_weight is not None:
        loss = loss * class_weight
    return loss.sum() / z.shape[0]


def check(module_value, reference_value, logits):
    (grad_module,) = torch.autograd.grad(module_value, logits, retain_graph=True)
    (grad_reference,) = torch.autograd.grad(reference_value, logits)
    torch.testing.assert_close(module_value, reference_value, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(grad_module, grad_reference, rtol=1e-5, atol=1e-9)


def test_bce_equals_its_formula(inputs):
    z, y, _ = inputs
    p = torch.sigmoid(z)
    reference = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).sum() / B
    check(BCE()(z, y), reference, z)


def test_focal_equals_its_formula_with_gradient_through_the_weights(inputs):
    z, y, _ = inputs
    p = torch.sigmoid(z)
    reference = -(y * (1 - p) ** 2 * torch.log(p) + (1 - y) * p**2 * torch.log(1 - p)).sum() / B
    check(Focal(gamma=2.0)(z, y), reference, z)


def test_asl_equals_its_formula(inputs):
    z, y, _ = inputs
    check(ASL(gamma_pos=1.0, gamma_neg=4.0, clip=0.05)(z, y), reference_asymmetric(z, y, 1.0, 4.0, 0.05), z)


def test_mfm_equals_its_formula_with_head_tail_exponents_and_class_weights(inputs):
    z, y, n = inputs
    factor = (1 - torch.log(n / n.max())) ** (1 / 3)
    module = MFM(n, gamma_pos_pn=0.5, w_pos=0.3, gamma_neg_pn=3.0, w_neg=1.0, clip=0.05, class_weight=True).double()
    reference = reference_asymmetric(z, y, 0.5 + 0.3 * factor, 3.0 + factor, 0.05, class_weight=factor)
    check(module(z, y), reference, z)


def test_head_tail_factor_is_one_for_the_largest_class_and_grows_for_rarer_ones():
    factor = head_tail_factor(torch.tensor([1000.0, 100.0, 10.0, 1.0]), 1 / 3)
    assert factor[0] == 1
    assert torch.all(factor[1:] > factor[:-1])


def test_mfm_without_head_tail_terms_is_exactly_asl(inputs):
    z, y, n = inputs
    mfm = MFM(n, gamma_pos_pn=1.0, w_pos=0, gamma_neg_pn=4.0, w_neg=0, clip=0.05, class_weight=False)
    asl = ASL(gamma_pos=1.0, gamma_neg=4.0, clip=0.05, detach_weights=True)
    mfm_value, asl_value = mfm(z.float(), y.float()), asl(z.float(), y.float())
    assert torch.equal(mfm_value, asl_value)


def test_mfm_with_equal_exponents_and_no_clip_is_exactly_focal(inputs):
    z, y, n = inputs
    mfm = MFM(n, gamma_pos_pn=2.0, w_pos=0, gamma_neg_pn=2.0, w_neg=0, clip=0.0, class_weight=False)
    focal = Focal(gamma=2.0, detach_weights=True)
    assert torch.equal(mfm(z.float(), y.float()), focal(z.float(), y.float()))


def test_mfm_with_all_zero_is_exactly_bce(inputs):
    z, y, n = inputs
    mfm = MFM(n, gamma_pos_pn=0, w_pos=0, gamma_neg_pn=0, w_neg=0, clip=0.0, class_weight=False)
    zf = z.detach().float().requires_grad_()
    zb = z.detach().float().requires_grad_()
    mfm_value, bce_value = mfm(zf, y.float()), BCE()(zb, y.float())
    assert torch.equal(mfm_value, bce_value)
    mfm_value.backward()
    bce_value.backward()
    assert torch.equal(zf.grad, zb.grad)


def test_mfm_rejects_a_negative_exponent_below_the_positive_one():
    with pytest.raises(ValueError, match="gamma_neg_pn"):
        MFM(torch.ones(3), gamma_pos_pn=2.0, gamma_neg_pn=1.0)


def test_db_focal_equals_its_formula(inputs):
    z, y, n = inputs
    num_samples = 500
    alpha, beta, mu, init_bias, lam, gamma, balance = 0.1, 10.0, 0.2, 0.05, 2.0, 2.0, 2.0
    freq_inv = 1 / n
    repeat = (y * freq_inv).sum(1, keepdim=True)
    weight = alpha + torch.sigmoid(beta * (freq_inv / repeat - mu))
    weight = torch.where(repeat > 0, weight, torch.full_like(weight, alpha + 1))
    bias = -init_bias * torch.log(num_samples / n - 1) / lam
    shifted = z + bias
    z_reg = torch.where(y > 0, shifted, lam * shifted)
    w_reg = torch.where(y > 0, weight, weight / lam)
    p = torch.sigmoid(z_reg)
    bce = -(y * torch.log(p) + (1 - y) * torch.log(1 - p))
    reference = (balance * (1 - torch.exp(-bce)) ** gamma * w_reg * bce).sum() / B
    module = DBFocal(
        n, num_samples, alpha=alpha, beta=beta, mu=mu, init_bias=init_bias, neg_scale=lam, gamma=gamma, balance=balance
    ).double()
    check(module(z, y), reference, z)


def test_db_focal_needs_more_samples_than_any_class_count():
    with pytest.raises(ValueError, match="num_samples"):
        build_loss(LossConfig(name="db_focal"), class_counts=torch.tensor([10.0, 5.0]), num_samples=10)


def test_hill_equals_its_formula(inputs):
    z, y, _ = inputs
    p_m, p = torch.sigmoid(z - 1.0), torch.sigmoid(z)
    reference = (-y * (1 - p_m) ** 2 * torch.log(p_m) + (1 - y) * (1.5 - p) * p**2).sum() / B
    check(Hill(lamb=1.5, margin=1.0, gamma=2.0)(z, y), reference, z)


def test_splc_equals_its_formula_with_corrected_labels(inputs):
    z, y, _ = inputs
    shifted = z - 1.0 * y
    p = torch.sigmoid(shifted)
    y_hat = torch.where(p.detach() > 0.6, torch.ones_like(y), y)
    pt = (1 - p) * y_hat + p * (1 - y_hat)
    reference = (pt**2 * -(y_hat * torch.log(p) + (1 - y_hat) * torch.log(1 - p))).sum() / B
    check(SPLC(tau=0.6, margin=1.0, gamma=2.0)(z, y), reference, z)
    assert (y_hat > y).any(), "the fixture should exercise at least one correction"


def test_splc_without_correction_is_margin_focal_on_observed_labels(inputs):
    z, y, _ = inputs
    shifted = z - y
    p = torch.sigmoid(shifted)
    pt = (1 - p) * y + p * (1 - y)
    reference = (pt**2 * -(y * torch.log(p) + (1 - y) * torch.log(1 - p))).sum() / B
    check(SPLC(tau=0.6, margin=1.0, gamma=2.0)(z, y, correct=False), reference, z)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_registered_loss_builds_from_params_and_gives_a_finite_scalar(name, inputs):
    z, y, n = inputs
    config = dataclasses.replace(LossConfig(), name=name)
    loss = build_loss(config, class_counts=n.float(), num_samples=1000)(z.float(), y.float())
    assert loss.ndim == 0 and torch.isfinite(loss)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_every_loss_is_lower_for_confident_correct_predictions(name, inputs):
    _, y, n = inputs
    loss = build_loss(dataclasses.replace(LossConfig(), name=name), class_counts=n.float(), num_samples=1000)
    good, bad = (y.float() * 2 - 1) * 6, (1 - y.float() * 2) * 6
    assert loss(good, y.float()) < loss(bad, y.float())


def factor(counts):
    return (1 - torch.log(counts / counts.max())) ** (1 / 3)


# The paper's head-tail factor (off by default): the references below keep it in, so they test it as well.
HEAD_TAIL = {"w_neg": 1.0, "class_weight": True}


def test_mfm_with_the_cooccurrence_prior_equals_the_authors_formula(inputs):
    z, y, n = inputs
    cooccurrence = torch.tensor([[5, 2, 0, 0, 1], [2, 4, 0, 0, 0], [0, 0, 3, 1, 0], [0, 0, 1, 2, 0], [1, 0, 0, 0, 2]])
    a = (y @ (cooccurrence > 0).double()) > 0  # a_k > 0: co-occurs with a positive of image k
    p = torch.sigmoid(z)
    xs_neg = torch.clamp(1 - p + 0.05, max=1)
    xs_neg = torch.where(a, torch.clamp(1.2 * xs_neg, max=1), xs_neg)  # the authors' 1.2 on co-occurring negatives
    gamma_neg = 3 + factor(n)
    w = factor(n)
    neg = -((1 - xs_neg) ** gamma_neg).detach() * torch.log(torch.clamp(xs_neg, min=1e-8))
    reference = (w * (y * -torch.log(p) + (1 - y) * neg)).sum() / B
    module = MFM(n, cooccurrence_scale=1.2, cooccurrence=cooccurrence.double(), **HEAD_TAIL).double()
    check(module(z, y), reference, z)


def test_mfm_with_hill_negatives_equals_its_formula(inputs):
    z, y, n = inputs
    p = torch.sigmoid(z)
    reference = (factor(n) * (y * -torch.log(p) + (1 - y) * (1.5 - p) * p**2)).sum() / B
    check(MFM(n, negative="hill", hill_lamb=1.5, **HEAD_TAIL).double()(z, y), reference, z)


def test_mfm_rejection_drops_exactly_the_largest_negative_terms(inputs):
    z, y, n = inputs
    keep_all = MFM(n, **HEAD_TAIL).double()
    p = torch.sigmoid(z)
    p_m = torch.clamp(p - 0.05, min=0)
    neg = -(p_m.detach() ** (3 + factor(n))) * torch.log(1 - p_m)
    values = neg[y < 0.5]
    k = int(0.25 * values.numel())
    cutoff = torch.topk(values.detach(), k).values[-1]
    dropped = (y < 0.5) & (neg.detach() >= cutoff)
    reference = (factor(n) * (y * -torch.log(p) + (1 - y) * neg) * (~dropped)).sum() / B
    check(MFM(n, reject_fraction=0.25, **HEAD_TAIL).double()(z, y), reference, z)
    assert keep_all(z, y) > MFM(n, reject_fraction=0.25, **HEAD_TAIL).double()(z, y)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_a_zero_entry_weight_removes_that_entry_from_every_loss(name, inputs):
    z, y, n = inputs
    loss = build_loss(dataclasses.replace(LossConfig(), name=name), class_counts=n.float(), num_samples=1000).double()
    weight = torch.ones_like(y)
    weight[1, 2] = 0
    (grad,) = torch.autograd.grad(loss(z, y, weight), z)
    assert grad[1, 2] == 0 and grad[1, 3] != 0


def test_bce_distillation_equals_its_formula_and_sends_nothing_into_the_teachers():
    from comic.losses import bce_distillation, teacher_weights

    g = torch.Generator().manual_seed(4)
    head, tail, balanced = (torch.randn(B, C, generator=g, dtype=torch.float64, requires_grad=True) for _ in range(3))
    groups = torch.tensor([0, 0, 1, 2, 2])
    w_h, w_t = teacher_weights(torch.tensor(0.3), torch.tensor(0.7), groups)
    torch.testing.assert_close(w_h, torch.tensor([1.0, 1.0, 0.3, 0.0, 0.0]))
    torch.testing.assert_close(w_t, torch.tensor([0.0, 0.0, 0.7, 1.0, 1.0]))
    p_b = torch.sigmoid(balanced)

    def bce(q):
        return -(q * torch.log(p_b) + (1 - q) * torch.log(1 - p_b))

    reference = (w_h * bce(torch.sigmoid(head).detach()) + w_t * bce(torch.sigmoid(tail).detach())).sum() / B
    value = bce_distillation(head, tail, balanced, w_h.double(), w_t.double())
    torch.testing.assert_close(value, reference)
    grads = torch.autograd.grad(value, [head, tail, balanced], allow_unused=True)
    assert grads[0] is None and grads[1] is None and grads[2].abs().sum() > 0
