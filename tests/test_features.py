"""Cached trunk features are plain arrays: a pickled features file is refused, naming the file."""

import pickle

import numpy as np
import pytest

from comic.features import FeatureDataset


class Payload:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("kind", ["object array", "plain pickle"])
def test_a_pickled_features_file_is_refused_naming_the_file(tmp_path, kind):
    path = tmp_path / "train.npy"
    if kind == "object array":
        np.save(path, np.array([Payload(tmp_path / "ran")], dtype=object), allow_pickle=True)
    else:
        path.write_bytes(pickle.dumps(Payload(tmp_path / "ran")))
    with pytest.raises(ValueError, match=r"train\.npy: refused: not a plain array of features") as info:
        FeatureDataset(tmp_path, tmp_path, "train")
    assert "dvc repro cache_features" in str(info.value) and not (tmp_path / "ran").exists()
