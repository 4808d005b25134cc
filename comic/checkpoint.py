"""Training checkpoints: a folder per epoch with `state.pt` (everything that resumes the run) and
`best_model.pt` (the weights selected so far).

Both files hold tensors, numbers, strings and plain containers only, and every load uses
`torch.load(weights_only=True)`: a checkpoint found on a shared storage path cannot run code when it is
loaded. Anything else in a file is refused with `CheckpointError`.
"""

from __future__ import annotations

import pickle
import random
import re
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

STATE_FILE = "state.pt"
BEST_FILE = "best_model.pt"

# Keys of state.pt.
MODEL = "model"  # the training model's state_dict
OPTIMIZER = "optimizer"
SCHEDULER = "scheduler"
OBJECTIVE = "objective"  # label correctors, the loss's class distribution, the correction audit
RNG = "rng"  # one `rng_state()` per rank
PROGRESS = "progress"  # epoch, history, selection state (`comic.history.Selection`), resumes
STATE_KEYS = (MODEL, OPTIMIZER, SCHEDULER, OBJECTIVE, RNG, PROGRESS)
EMA = "ema"  # with train.ema_decay > 0: the weight average's state_dict (torch's AveragedModel)


class CheckpointError(ValueError):
    """A checkpoint file is missing, foreign or holds more than tensors and plain containers."""


def rng_state() -> dict[str, Tensor | int | float]:
    """Python's, numpy's and torch's global RNG states as tensors and numbers."""
    version, words, gauss = random.getstate()
    name, keys, position, has_gauss, cached = np.random.get_state()
    assert version == 3 and gauss is None and name == "MT19937", "an RNG state this module does not know"
    return {
        "python": torch.tensor(words, dtype=torch.int64),
        "numpy_keys": torch.from_numpy(keys.astype(np.int64)),
        "numpy_position": int(position),
        "numpy_has_gauss": int(has_gauss),
        "numpy_cached_gaussian": float(cached),
        "torch": torch.get_rng_state(),
    }


def set_rng_state(state: dict) -> None:
    random.setstate((3, tuple(int(w) for w in state["python"].tolist()), None))
    np.random.set_state(
        (
            "MT19937",
            state["numpy_keys"].numpy().astype(np.uint32),
            state["numpy_position"],
            state["numpy_has_gauss"],
            state["numpy_cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])


def save(folder: str | Path, state: dict, best_weights: dict) -> None:
    """Write `state.pt` (keys `STATE_KEYS`) and `best_model.pt` into `folder`."""
    missing = set(STATE_KEYS) - set(state)
    assert not missing, f"checkpoint state lacks {sorted(missing)}"
    folder = Path(folder)
    torch.save(state, folder / STATE_FILE)
    torch.save(best_weights, folder / BEST_FILE)


def load_tensors(path: str | Path, map_location: str | torch.device = "cpu"):
    """`torch.load(path, weights_only=True)` with errors that name the file and say what to do."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: checkpoint file not found")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        found = re.search(r"(?i:unsupported)(?: global:)? GLOBAL [\w.]+", str(err))
        if found is None:
            raise CheckpointError(
                f"{path}: refused: not a torch file of tensors and plain containers (corrupt, or a plain pickle "
                "that could run code); delete it and retrain"
            ) from None
        raise CheckpointError(
            f"{path}: refused: the file holds Python objects besides tensors and plain containers, and loading "
            f"it could run code ({found.group(0)}). Delete it and retrain; comic never writes such files"
        ) from None
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable checkpoint ({err}); delete it and retrain") from None


def load(folder: str | Path, map_location: str | torch.device = "cpu") -> tuple[dict, dict]:
    """`(state, best_weights)` of a checkpoint folder."""
    folder = Path(folder)
    state = load_tensors(folder / STATE_FILE, map_location)
    missing = set(STATE_KEYS) - set(state) if isinstance(state, dict) else set(STATE_KEYS)
    if missing:
        raise CheckpointError(f"{folder / STATE_FILE}: lacks {sorted(missing)}; not a comic checkpoint")
    return state, load_tensors(folder / BEST_FILE, "cpu")


def evaluated_weights(state: dict) -> dict:
    """The weights a checkpoint's run validates with: the weight average's when it keeps one, else the model's."""
    if EMA not in state:
        return state[MODEL]
    return {k.removeprefix("module."): v for k, v in state[EMA].items() if k != "n_averaged"}
