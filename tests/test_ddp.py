"""A DDP step over 2 CPU ranks (gloo) equals the single-process step on the same global batch."""

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from comic.config import Params, override
from comic.engine import seed_everything, train_step
from comic.models import build_model
from tests.builders import objective as objective_for

NUM_CLASSES, GLOBAL_BATCH = 5, 16
# GroupNorm: BatchNorm statistics are per rank under DDP (SyncBatchNorm exists only on GPUs), which would
# hide the arithmetic this test checks.
UPDATES = {"model.name": "comic", "model.norm": "group", "correction.start_epoch": 0}


def global_batches():
    g = torch.Generator().manual_seed(0)
    full = (torch.rand(2, GLOBAL_BATCH, NUM_CLASSES, generator=g) < 0.4).float()
    observed = full * (torch.rand(2, GLOBAL_BATCH, NUM_CLASSES, generator=g) > 0.3)
    images = torch.randn(2, GLOBAL_BATCH, 3, 16, 16, generator=g)
    return {
        stream: {
            "image": images[i],
            "labels_observed": observed[i],
            "labels_full": full[i],
            "index": torch.arange(GLOBAL_BATCH),
        }
        for i, stream in enumerate(("instance", "rebalanced"))
    }


def one_step(batches, wrap=lambda m: m):
    seed_everything(0)
    params = override(Params(), UPDATES)
    model = build_model(params.model, params.balance, num_classes=NUM_CLASSES)
    counts = torch.tensor([40.0, 20.0, 9.0, 4.0, 2.0])
    objective = objective_for(params, class_counts=counts, num_samples=GLOBAL_BATCH)
    # SGD, not the training's Adam: Adam's m / sqrt(v) turns float noise in a near-zero gradient into a full
    # lr-sized step, which would test rounding rather than the DDP arithmetic.
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    for epoch in range(2):  # two steps: the second sees the corrector's and moving vectors' state
        train_step(wrap(model), objective, optimizer, batches, epoch=epoch, device=torch.device("cpu"), amp=False)
    return model


def _rank_main(rank, world, store_path, out_path):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store_path}", rank=rank, world_size=world)
    try:
        per_rank = GLOBAL_BATCH // world
        batches = {
            stream: {k: v[rank * per_rank : (rank + 1) * per_rank] for k, v in batch.items()}
            for stream, batch in global_batches().items()
        }
        model = one_step(batches, wrap=lambda m: torch.nn.parallel.DistributedDataParallel(m))
        if rank == 0:
            torch.save(model.state_dict(), out_path)
    finally:
        dist.destroy_process_group()


@pytest.mark.timeout(180)
def test_two_gloo_ranks_give_the_same_parameters_as_one_process_with_the_same_global_batch(tmp_path):
    reference = one_step(global_batches()).state_dict()
    out_path = tmp_path / "ddp.pt"
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    mp.spawn(_rank_main, args=(2, str(tmp_path / "store"), str(out_path)), nprocs=2, join=True)
    distributed = torch.load(out_path, weights_only=True)
    assert reference.keys() == distributed.keys()
    for key in reference:
        torch.testing.assert_close(distributed[key], reference[key], rtol=1e-5, atol=1e-5, msg=key)


@pytest.mark.timeout(60)
def test_a_comic_step_makes_three_small_all_reduces_besides_the_gradients(tmp_path, monkeypatch):
    """Moving vectors, then correctors' batch means with the kappa losses, then corrected positives: each
    small all-reduce costs up to milliseconds over gloo, so a step must not make one per statistic."""
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        calls = []
        real = dist.all_reduce
        monkeypatch.setattr(dist, "all_reduce", lambda tensor, *a, **k: calls.append(tensor.numel()) or real(tensor))
        one_step(global_batches())  # two steps, no DDP wrapper: only the objective's and the model's reductions
    finally:
        dist.destroy_process_group()
    assert len(calls) == 2 * 3, calls
