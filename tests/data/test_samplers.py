import numpy as np
import pytest

from comic.data.samplers import ClassAwareSampler, InstanceSampler


@pytest.mark.parametrize("num_samples,replicas", [(10, 3), (9, 3), (5, 4), (2, 4)])
def test_instance_shares_are_disjoint_equal_and_cover_every_sample(num_samples, replicas):
    samplers = [InstanceSampler(num_samples, seed=0, num_replicas=replicas, rank=r) for r in range(replicas)]
    shares = [list(s) for s in samplers]
    assert len({len(share) for share in shares}) == 1 and len(shares[0]) == len(samplers[0])
    real = [share[: s.num_real()] for share, s in zip(shares, samplers, strict=True)]
    assert sorted(sum(real, [])) == list(range(num_samples))  # padding dropped: each sample once
    assert sum(len(share) for share in shares) - num_samples == samplers[0].padding


def test_instance_order_depends_on_seed_and_epoch_only():
    a, b = InstanceSampler(50, seed=1), InstanceSampler(50, seed=1)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b) and sorted(a) == list(range(50))
    assert list(InstanceSampler(50, seed=1, shuffle=False)) == list(range(50))


def test_drop_last_cuts_the_tail_instead_of_padding():
    sampler = InstanceSampler(10, seed=0, num_replicas=3, rank=0, drop_last=True)
    assert len(sampler) == 3 and sampler.padding == 0 and sampler.total_size == 9


def test_class_aware_sampling_draws_classes_uniformly_and_never_unlabelled_images():
    labels = np.zeros((1000, 4))
    labels[:900, 0] = 1  # a head class
    labels[900:950, 1] = 1
    labels[950:960, 2] = 1  # a tail class; class 3 has no observed positive, rows 960+ have none
    sampler = ClassAwareSampler(labels, seed=0, num_samples=30000)
    drawn = np.asarray(list(sampler))
    assert drawn.max() < 960
    share = labels[drawn, :3].sum(axis=0) / len(drawn)
    np.testing.assert_allclose(share, 1 / 3, atol=0.02)
    assert len(np.unique(drawn[labels[drawn, 2] == 1])) == 10  # every tail image is reached


def test_class_aware_shares_are_equal_and_deterministic_per_epoch():
    labels = np.eye(5)[np.arange(23) % 5]
    samplers = [ClassAwareSampler(labels, seed=3, num_replicas=2, rank=r) for r in range(2)]
    first = [list(s) for s in samplers]
    assert len(first[0]) == len(first[1]) == 12 and samplers[0].padding == 1
    assert first == [list(s) for s in samplers]
    for s in samplers:
        s.set_epoch(1)
    assert first != [list(s) for s in samplers]


def test_a_rank_outside_the_replicas_is_an_error():
    with pytest.raises(ValueError, match="rank"):
        InstanceSampler(10, seed=0, num_replicas=2, rank=2)
