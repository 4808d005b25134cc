"""Files comic loads tensors from hold tensors and plain containers only: a pickle that would run code is
refused, with an error naming the file, before anything of it runs."""

import os
import pickle

import pytest
import torch

from comic import checkpoint
from comic.export import load_model_file
from comic.models import build_backbone


class Payload:
    """Unpickling this creates a marker file: what a planted checkpoint would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path, marker):
    torch.save({"model": Payload(marker), "weights": {"w": torch.zeros(1)}}, path)


def test_a_checkpoint_round_trips_with_rng_states_as_tensors(tmp_path):
    state = {key: {} for key in checkpoint.STATE_KEYS}
    state[checkpoint.RNG] = [checkpoint.rng_state()]
    checkpoint.save(tmp_path, state, {"w": torch.ones(2)})
    loaded, best = checkpoint.load(tmp_path)
    assert torch.equal(best["w"], torch.ones(2))
    assert torch.equal(loaded[checkpoint.RNG][0]["torch"], state[checkpoint.RNG][0]["torch"])


@pytest.mark.parametrize("name", [checkpoint.STATE_FILE, checkpoint.BEST_FILE])
def test_a_planted_checkpoint_file_is_refused_without_running_it(tmp_path, name):
    checkpoint.save(tmp_path, {key: {} for key in checkpoint.STATE_KEYS}, {"w": torch.ones(1)})
    plant(tmp_path / name, tmp_path / "ran")
    with pytest.raises(checkpoint.CheckpointError, match=rf"{name}: refused"):
        checkpoint.load(tmp_path)
    assert not (tmp_path / "ran").exists()


def test_a_planted_model_file_is_refused_without_running_it(tmp_path):
    plant(tmp_path / "model.pt", tmp_path / "ran")
    with pytest.raises(ValueError, match=r"model\.pt: not a comic model file: refused") as info:
        load_model_file(tmp_path / "model.pt")
    assert not (tmp_path / "ran").exists()
    message = str(info.value)  # the project's one line, not torch's advice to turn weights_only off
    assert "\n" not in message and "weights_only" not in message and "GLOBAL posix.system" in message


def test_planted_pretrained_weights_are_refused_without_running_them(tmp_path):
    with (tmp_path / "weights.pt").open("wb") as handle:
        pickle.dump(Payload(tmp_path / "ran"), handle)
    with pytest.raises(ValueError, match=r"weights\.pt: refused"):
        build_backbone("resnet18", pretrained=False, pretrained_path=str(tmp_path / "weights.pt"), norm="batch")
    assert not (tmp_path / "ran").exists()
