"""Where a 2-rank CPU DDP epoch spends its time: the loader against the train step, per rank, under plain
torch.multiprocessing or under Ray Train; and the latency of gloo all-reduces by size.

    PYTHONPATH=. .venv/bin/python benchmarks/profile_ddp.py loop --launcher torch --epochs 2
    PYTHONPATH=. .venv/bin/python benchmarks/profile_ddp.py loop --launcher ray --epochs 2 [--omp 2]
    PYTHONPATH=. .venv/bin/python benchmarks/profile_ddp.py allreduce
    PYTHONPATH=. .venv/bin/python benchmarks/profile_ddp.py ops [--steps 10]

`loop` trains the default params (`comic.training.train`) on 2 ranks of one core each and prints, per rank,
the loop's images/s per epoch and the seconds spent waiting for the loader and inside `train_step`.
`--omp N` exports OMP_NUM_THREADS=N to the workers first, as a user's shell might; under Ray each worker
then resets it to its CPU share, unless `--keep-env` (how the train loop behaved before that fix).
`allreduce` prints the median and 90th percentile of one gloo all-reduce between 2 processes for a few
tensor sizes. `ops` runs `torch.profiler` over a few training steps of one process at one thread (after a
warm-up of 5 steps) and prints the share of the step's CPU time spent in convolution, forward and backward,
and the operators that take the most.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def timed_train(data: str, params: dict) -> str:
    """Train with the loader and the step timed; returns one line of results."""
    import comic.training as training
    from comic.config import Params, from_dict

    spent = {"loader_s": 0.0, "step_s": 0.0}
    step, batches = training.train_step, training._batches

    def timed_step(*args, **kwargs):
        begin = time.perf_counter()
        parts = step(*args, **kwargs)
        spent["step_s"] += time.perf_counter() - begin
        return parts

    def timed_batches(*args, **kwargs):
        source = batches(*args, **kwargs)
        while True:
            begin = time.perf_counter()
            item = next(source, None)
            spent["loader_s"] += time.perf_counter() - begin
            if item is None:
                return
            yield item

    training.train_step, training._batches = timed_step, timed_batches
    with tempfile.TemporaryDirectory() as folder:
        reporter = training.LocalReporter(Path(folder))
        training.train(from_dict(Params, params), data, reporter)
    rates = [round(row["train/images_per_s"]) for row in reporter.history]
    threads = torch.get_num_threads()
    return f"images/s per epoch {rates}, torch threads {threads}, " + ", ".join(
        f"{k} {v:.1f}" for k, v in spent.items()
    )


def _torch_rank(rank: int, store: str, data: str, params: dict) -> None:
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        print(f"rank {rank}: {timed_train(data, params)}", flush=True)
    finally:
        dist.destroy_process_group()


def _ray_rank(config: dict) -> None:
    import ray.train

    from comic.ray_train import use_assigned_cpus

    if not config["keep_env"]:
        use_assigned_cpus()
    rank = ray.train.get_context().get_world_rank()
    print(f"rank {rank}: {timed_train(config['data'], config['params'])}", flush=True)


def loop(args: argparse.Namespace) -> None:
    from comic.config import load_params, override, to_dict

    data = str(Path(args.data).resolve())
    params = to_dict(override(load_params(), {"train.epochs": args.epochs, "model.name": args.model}))
    if args.omp:
        os.environ["OMP_NUM_THREADS"] = str(args.omp)
    if args.launcher == "torch":
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        with tempfile.TemporaryDirectory() as folder:
            mp.spawn(_torch_rank, args=(f"{folder}/store", data, params), nprocs=2)
        return
    import ray
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    from comic.ray_train import init_ray

    init_ray(num_cpus=2)
    try:
        with tempfile.TemporaryDirectory() as folder:
            TorchTrainer(
                _ray_rank,
                train_loop_config={"data": data, "params": params, "keep_env": args.keep_env},
                scaling_config=ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
                run_config=RunConfig(name="profile-ddp", storage_path=folder),
            ).fit()
    finally:
        ray.shutdown()


def _allreduce_rank(rank: int, store: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        for size in (1, 64, 1_000, 3_666_592):  # the last: COMIC's gradients (small CNN x 3)
            tensor, times = torch.randn(size), []
            for _ in range(5):
                dist.all_reduce(tensor)
            for _ in range(100):
                dist.barrier()
                begin = time.perf_counter()
                dist.all_reduce(tensor)
                times.append(time.perf_counter() - begin)
            times.sort()
            if rank == 0:
                print(f"{size:>9} floats: median {times[50] * 1e3:.2f} ms, p90 {times[90] * 1e3:.2f} ms", flush=True)
    finally:
        dist.destroy_process_group()


def allreduce(_: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as folder:
        mp.spawn(_allreduce_rank, args=(f"{folder}/store",), nprocs=2)


class _Profiled(Exception):
    """Raised from inside the training loop once the profiled steps are done."""


def ops(args: argparse.Namespace) -> None:
    import comic.training as training
    from comic.config import load_params, override

    torch.set_num_threads(1)
    params = override(load_params(), {"model.name": args.model, "train.epochs": 1})
    step, calls = training.train_step, []
    warmup = 5

    def profiled_step(*step_args, **kwargs):
        calls.append(None)
        if len(calls) <= warmup:
            return step(*step_args, **kwargs)
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as profiler:
            parts = step(*step_args, **kwargs)
        profiles.append(profiler.key_averages())
        if len(profiles) == args.steps:
            raise _Profiled
        return parts

    profiles: list = []
    training.train_step = profiled_step
    with tempfile.TemporaryDirectory() as folder:
        try:
            training.train(params, str(Path(args.data).resolve()), training.LocalReporter(Path(folder)))
        except _Profiled:
            pass
    self_us: dict[str, float] = {}
    for averages in profiles:
        for event in averages:
            self_us[event.key] = self_us.get(event.key, 0.0) + event.self_cpu_time_total
    total = sum(self_us.values())
    forward = sum(v for k, v in self_us.items() if "convolution" in k and "backward" not in k)
    backward = sum(v for k, v in self_us.items() if "convolution_backward" in k)
    print(
        f"{args.model}, {args.steps} steps at 1 thread: {total / 1e3 / args.steps:.0f} ms a step; convolution "
        f"{(forward + backward) / total:.0%} of it (forward {forward / total:.0%}, backward {backward / total:.0%})"
    )
    for name, value in sorted(self_us.items(), key=lambda item: -item[1])[:8]:
        print(f"  {value / total:6.1%}  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    loop_parser = commands.add_parser("loop", help="time the loader and the step per rank")
    loop_parser.add_argument("--launcher", choices=["torch", "ray"], default="torch")
    loop_parser.add_argument("--data", default="data/plt")
    loop_parser.add_argument("--epochs", type=int, default=2)
    loop_parser.add_argument("--model", choices=["comic", "single"], default="comic")
    loop_parser.add_argument("--omp", type=int, default=0, help="export OMP_NUM_THREADS=N first")
    loop_parser.add_argument(
        "--keep-env", action="store_true", help="ray: keep the inherited OMP_NUM_THREADS (the behaviour before the fix)"
    )
    loop_parser.set_defaults(run=loop)
    commands.add_parser("allreduce", help="gloo all-reduce latency by size").set_defaults(run=allreduce)
    ops_parser = commands.add_parser("ops", help="torch.profiler: the share of convolution in a training step")
    ops_parser.add_argument("--data", default="data/plt")
    ops_parser.add_argument("--steps", type=int, default=10)
    ops_parser.add_argument("--model", choices=["comic", "single"], default="comic")
    ops_parser.set_defaults(run=ops)
    args = parser.parse_args()
    args.run(args)


if __name__ == "__main__":
    main()
