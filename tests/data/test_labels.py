import numpy as np

from comic.data.labels import SceneModel, longtail_subsample, pareto_targets


def test_generated_images_have_one_to_six_labels_about_two_on_average():
    rows = SceneModel(20, np.random.default_rng(0)).sample(5000, np.random.default_rng(1))
    per_image = rows.sum(axis=1)
    assert per_image.min() == 1 and per_image.max() == 6
    assert 1.8 < per_image.mean() < 2.2


def test_generated_labels_co_occur_more_than_independent_classes_would():
    rows = SceneModel(20, np.random.default_rng(0)).sample(20000, np.random.default_rng(1)).astype(float)
    p_c = rows.mean(axis=0)
    lift_cc = (rows.T @ rows / len(rows)) / np.outer(p_c, p_c)
    off_diagonal = lift_cc[~np.eye(20, dtype=bool)]
    assert off_diagonal.max() > 3  # scene-mates
    assert off_diagonal.min() < 0.5  # classes of different scenes


def test_must_contain_only_returns_rows_with_that_class():
    rows = SceneModel(20, np.random.default_rng(0)).sample(50, np.random.default_rng(1), must_contain=7)
    assert rows[:, 7].all()


def test_pareto_targets_fall_from_max_to_near_min():
    targets = pareto_targets(20, 1000, 4, alpha=6.0)
    assert targets[0] == 1000 and np.all(np.diff(targets) <= 0)
    assert 4 <= targets[-1] < 10


def test_longtail_subsampling_gives_a_few_hundred_down_to_under_ten():
    model = SceneModel(20, np.random.default_rng([0, 0]), max_labels=9)
    rows = model.sample(12000, np.random.default_rng([0, 1]))
    subset = longtail_subsample(rows, pareto_targets(20, 1000, 4, 6.0), np.random.default_rng([0, 2]))
    counts = np.sort(rows[subset].sum(axis=0))[::-1]
    assert 300 <= counts[0] <= 1000
    assert counts[-1] < 10
    assert len(subset) == len(np.unique(subset))
