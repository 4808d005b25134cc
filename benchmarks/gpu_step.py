"""Training throughput of COMIC on one GPU, against a plain torchvision ResNet-50 step, on synthetic data.

Self-contained: needs only torch, torchvision, numpy, pyyaml and the `comic` package (config, engine, models,
losses, metrics, distributed; none of them imports Ray, MLflow, DVC, pandas or albumentations). From the
repository root, without installing anything:

    PYTHONPATH=. python benchmarks/gpu_step.py --out results.json

Configurations, each measured in the same run (warm-up steps first, then timed steps with CUDA events):

1. `torchvision_resnet50` (the reference): torchvision ResNet-50 (fc -> classes), BCE-with-logits,
   bf16 autocast, channels_last, Adam, `--batch` images per step.
2. `comic_three_backbones`: HTBModel, three ResNet-50 backbones, the full COMIC objective (MFM + RLC + HTB
   distillation) through `comic.engine.train_step` (channels_last; bf16 autocast on CUDA), `--batch`
   images per stream (instance and re-balanced stream).
3. `comic_shared_trunk`: the same with one shared trunk and three necks.
4. `authors_recipe`: the authors' code: three frozen ResNet-50 backbones (no gradient, eval mode), fp32,
   `--authors-batch` images per stream.
5. `ddp_one_gpu` (`--ddp`, on by default): `comic_shared_trunk` wrapped in DistributedDataParallel in a
   one-process group (NCCL on CUDA, gloo on the CPU), to show the wrapper's overhead on one GPU.

Counting rule: the reference counts its batch; a COMIC step counts 3 streams x batch images (head and balanced
branches on the instance batch, tail branch on the re-balanced batch), although its backbones see more
(`backbone_images_per_step` in the JSON). Synthetic batches live on the device already (no host-to-device copy
is timed). An out-of-memory or any other failure is recorded for that configuration and the next one runs;
the JSON is rewritten after every configuration, so a run cut short keeps what it measured.

CPU smoke test: `--device cpu --backbone small_cnn --image-size 32 --batch 4 --steps 2 --warmup 1`.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
import torchvision
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from comic.config import BalanceConfig, ModelConfig, Params, flatten, override
from comic.device import autocast
from comic.engine import Objective, build_optimizer, objective_for, seed_everything, train_step
from comic.metrics import shot_groups
from comic.models import FrozenTrunk, HTBModel, build_model, trunk_factory

DEFAULT_CONFIGS = (
    "torchvision_resnet50",
    "comic_three_backbones",
    "comic_shared_trunk",
    "authors_recipe",
    "ddp_one_gpu",
)
# torch.compile'd variants, on request (`--configs`): compiling takes minutes of warm-up.
CONFIGS = (*DEFAULT_CONFIGS, "torchvision_resnet50_compiled", "comic_three_backbones_compiled")
REFERENCE = "torchvision_resnet50"
COUNTING_RULE = (
    "images/s counts images per optimisation step: the reference counts its batch; a COMIC step counts "
    "3 streams x batch-per-stream (head and balanced on the instance batch, tail on the re-balanced batch). "
    "The backbones see more than that: three-backbone COMIC runs 4 x batch images through backbones "
    "(the tail backbone also views the instance batch, without gradient), the shared trunk 2 x batch; "
    "see backbone_images_per_step."
)
NUM_SAMPLES = 10_000  # size of the pretend training set (class counts and sample indices)
MISSING_RATE = 0.4  # fraction of positives hidden from the observed labels
DATA_SETS = 2  # distinct synthetic batches, used in turn


def log(message: str) -> None:
    print(message, flush=True)


# -------------------------------------------------------------------------------------------- data
def long_tailed_counts(num_classes: int, num_samples: int = NUM_SAMPLES) -> torch.Tensor:
    """Exponentially decaying class counts, from num_samples / 5 down to 10 (a 1:200 imbalance)."""
    head, tail = num_samples / 5, 10.0
    ranks = np.arange(num_classes) / max(num_classes - 1, 1)
    return torch.as_tensor(np.round(head * (tail / head) ** ranks), dtype=torch.float32)


def make_batch(
    size: int, image_size: int, positive_rate_c: torch.Tensor, device: torch.device
) -> dict[str, torch.Tensor]:
    """Random normal images and random multi-labels (each class positive with its own rate), with
    MISSING_RATE of the positives hidden from `labels_observed`."""
    images = torch.randn(size, 3, image_size, image_size, device=device).contiguous(memory_format=torch.channels_last)
    rate = positive_rate_c.to(device).expand(size, -1)
    full = torch.bernoulli(rate)
    observed = full * (torch.rand_like(full) >= MISSING_RATE).float()
    index = torch.randint(0, NUM_SAMPLES, (size,), device=device)
    return {"image": images, "labels_observed": observed, "labels_full": full, "index": index}


def cycle(items: list[Any]) -> Iterator[Any]:
    while True:
        yield from items


# ------------------------------------------------------------------------------------------ setups
@dataclass
class Setup:
    """What a configuration needs to be timed: one training step and how many images it counts."""

    step: Callable[[], None]
    images_per_step: int
    batch_per_stream: int
    backbone_images_per_step: int
    info: dict[str, Any] = field(default_factory=dict)
    cleanup: Callable[[], None] = lambda: None


def comic_params(args: argparse.Namespace, *, shared: bool, batch: int) -> Params:
    return override(
        Params(),
        {
            "model.name": "comic",
            "model.backbone": args.backbone,
            "balance.shared_backbone": shared,
            "data.image_size": args.image_size,
            "train.batch_size": batch,
            "train.use_gpu": args.device.startswith("cuda"),
            "correction.start_epoch": 0,  # the timed steps are epoch 0: the full objective, correction included
        },
    )


def setup_reference(args: argparse.Namespace, device: torch.device, compiled: bool = False) -> Setup:
    cuda = device.type == "cuda"
    if args.backbone.startswith("resnet"):
        model: nn.Module = getattr(torchvision.models, args.backbone)(weights=None, num_classes=args.classes)
        described = f"torchvision.models.{args.backbone}(weights=None, num_classes={args.classes})"
    else:
        model = build_model(
            ModelConfig(name="single", backbone=args.backbone), BalanceConfig(), num_classes=args.classes
        )
        described = f"SingleHeadModel({args.backbone}) + Linear (no torchvision {args.backbone})"
    model = model.to(device, memory_format=torch.channels_last)
    params = Params()
    optimizer = build_optimizer(
        model, lr=params.train.lr, weight_decay=params.train.weight_decay, classifier_lr_scale=1.0
    )
    rate = long_tailed_counts(args.classes) / NUM_SAMPLES
    data = cycle([make_batch(args.batch, args.image_size, rate, device) for _ in range(DATA_SETS)])
    amp = cuda and args.amp
    model.train()
    forward = torch.compile(model) if compiled else model

    def step() -> None:
        batch = next(data)
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, amp):
            logits = forward(batch["image"])
        loss = F.binary_cross_entropy_with_logits(logits.float(), batch["labels_observed"])
        loss.backward()
        optimizer.step()

    info = {
        "model": described,
        "loss": "binary_cross_entropy_with_logits",
        "optimizer": "Adam",
        "amp_bf16": amp,
        "torch_compile": compiled,
    }
    return Setup(step, args.batch, args.batch, args.batch, info)


@dataclass
class ComicParts:
    """A COMIC model on the device, its objective and synthetic batches for `comic.engine.train_step`."""

    model: nn.Module
    objective: Objective
    params: Params
    data: Iterator[dict[str, dict[str, torch.Tensor]]]
    amp: bool
    info: dict[str, Any]

    def step_for(self, model: nn.Module, device: torch.device) -> Callable[[], None]:
        """One `train_step` of `model` (this model, or a wrapper of it) with a fresh Adam optimizer."""
        p = self.params.train
        optimizer = build_optimizer(
            model, lr=p.lr, weight_decay=p.weight_decay, classifier_lr_scale=p.classifier_lr_scale
        )

        def step() -> None:
            train_step(model, self.objective, optimizer, next(self.data), epoch=0, device=device, amp=self.amp)

        return step


def comic_parts(
    args: argparse.Namespace, device: torch.device, *, shared: bool, batch: int, amp: bool, frozen: bool = False
) -> ComicParts:
    cuda = device.type == "cuda"
    params = comic_params(args, shared=shared, batch=batch)
    if frozen:
        # The authors' recipe: three frozen trunks (comic's own option shares one; this row times theirs).
        b, make_trunk = params.balance, trunk_factory(params.model)

        def frozen_trunk() -> tuple[nn.Module, int]:
            module, dim = make_trunk()
            return FrozenTrunk(module), dim

        model: nn.Module = HTBModel(
            frozen_trunk,
            args.classes,
            shared_backbone=False,
            rho=b.rho,
            eta=b.eta,
            momentum=b.momentum,
            alpha=b.alpha,
            branch_logits=b.branch_logits,
            prediction="balanced",
        )
    else:
        model = build_model(params.model, params.balance, num_classes=args.classes)
    model = model.to(device, memory_format=torch.channels_last)
    counts = long_tailed_counts(args.classes)
    objective = objective_for(
        params,
        class_counts=counts,
        num_samples=NUM_SAMPLES,
        groups=shot_groups(counts.numpy(), params.metrics.many_threshold, params.metrics.few_threshold).tolist(),
        cooccurrence=None,
    ).to(device)
    instance_rate = counts / NUM_SAMPLES
    rebalanced_rate = torch.full_like(instance_rate, float(instance_rate.mean()))  # class-aware sampling: flat
    batches = [
        {
            "instance": make_batch(batch, args.image_size, instance_rate, device),
            "rebalanced": make_batch(batch, args.image_size, rebalanced_rate, device),
        }
        for _ in range(DATA_SETS)
    ]
    use_amp = cuda and amp
    info = {
        "model": f"{type(model).__name__}({args.backbone}, shared_backbone={shared})",
        "loss": f"Objective: {params.loss.name} + RLC (weight {params.correction.weight}, "
        f"class_threshold {params.correction.class_threshold}) + HTB distillation (weight {params.balance.weight})",
        "step": "comic.engine.train_step",
        "optimizer": "Adam (comic.engine.build_optimizer)",
        "amp_bf16": use_amp,
        "frozen_backbones": frozen,
        "trainable_parameters": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "parameters": sum(p.numel() for p in model.parameters()),
    }
    return ComicParts(model, objective, params, cycle(batches), use_amp, info)


def setup_comic(args: argparse.Namespace, device: torch.device, *, shared: bool, compiled: bool = False) -> Setup:
    parts = comic_parts(args, device, shared=shared, batch=args.batch, amp=args.amp)
    backbone_images = (2 if shared else 4) * args.batch
    model = torch.compile(parts.model) if compiled else parts.model
    info = {**parts.info, "torch_compile": compiled}
    return Setup(parts.step_for(model, device), 3 * args.batch, args.batch, backbone_images, info)


def setup_authors(args: argparse.Namespace, device: torch.device) -> Setup:
    batch = args.authors_batch
    parts = comic_parts(args, device, shared=False, batch=batch, amp=False, frozen=True)
    return Setup(parts.step_for(parts.model, device), 3 * batch, batch, 4 * batch, parts.info)


def setup_ddp(args: argparse.Namespace, device: torch.device) -> Setup:
    cuda = device.type == "cuda"
    backend = "nccl" if cuda else "gloo"
    if dist.is_initialized():
        raise RuntimeError("a process group is already initialised")
    store_dir = tempfile.mkdtemp(prefix="bench_gpu_store_")
    dist.init_process_group(
        backend,
        init_method=f"file://{os.path.join(store_dir, 'store')}",
        rank=0,
        world_size=1,
        timeout=timedelta(seconds=120),
    )

    def cleanup() -> None:
        if dist.is_initialized():
            dist.destroy_process_group()
        shutil.rmtree(store_dir, ignore_errors=True)

    try:
        parts = comic_parts(args, device, shared=True, batch=args.batch, amp=args.amp)
        wrapped = DistributedDataParallel(parts.model, device_ids=[device.index or 0] if cuda else None)
        step = parts.step_for(wrapped, device)
    except BaseException:
        cleanup()
        raise
    info = {**parts.info, "ddp_backend": backend, "world_size": 1, "wrapper": "DistributedDataParallel (defaults)"}
    return Setup(step, 3 * args.batch, args.batch, 2 * args.batch, info, cleanup)


SETUPS: dict[str, Callable[[argparse.Namespace, torch.device], Setup]] = {
    "torchvision_resnet50": setup_reference,
    "comic_three_backbones": lambda a, d: setup_comic(a, d, shared=False),
    "comic_shared_trunk": lambda a, d: setup_comic(a, d, shared=True),
    "authors_recipe": setup_authors,
    "ddp_one_gpu": setup_ddp,
    "torchvision_resnet50_compiled": lambda a, d: setup_reference(a, d, compiled=True),
    "comic_three_backbones_compiled": lambda a, d: setup_comic(a, d, shared=False, compiled=True),
}


# ------------------------------------------------------------------------------------------ timing
def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(step: Callable[[], None], *, warmup: int, steps: int, device: torch.device) -> dict[str, Any]:
    """Warm-up steps (wall clock, includes cuDNN autotuning), then `steps` timed steps: CUDA events around
    each step on a GPU, the host clock on the CPU. Throughput uses the whole timed span."""
    start = time.perf_counter()
    for _ in range(warmup):
        step()
    synchronize(device)
    warmup_s = time.perf_counter() - start
    if device.type == "cuda":
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(steps)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(steps)]
        for begin, end in zip(starts, ends, strict=True):
            begin.record()
            step()
            end.record()
        torch.cuda.synchronize(device)
        step_ms = [begin.elapsed_time(end) for begin, end in zip(starts, ends, strict=True)]
        total_ms = starts[0].elapsed_time(ends[-1])
    else:
        step_ms = []
        for _ in range(steps):
            begin = time.perf_counter()
            step()
            step_ms.append((time.perf_counter() - begin) * 1e3)
        total_ms = sum(step_ms)
    return {
        "warmup_s": warmup_s,
        "total_ms": total_ms,
        "ms_per_step_mean": total_ms / steps,
        "ms_per_step_median": statistics.median(step_ms),
        "ms_per_step_min": min(step_ms),
        "ms_per_step_max": max(step_ms),
        "step_ms": step_ms,
    }


def host_syncs(step: Callable[[], None]) -> int:
    """How many times one step makes the host wait for the GPU (torch's sync debug mode, CUDA only)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    return sum("synchroniz" in str(w.message) for w in caught)


def free_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def is_oom(err: BaseException) -> bool:
    oom_types = tuple({getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError), torch.cuda.OutOfMemoryError})
    text = str(err)
    return isinstance(err, oom_types) or "out of memory" in text or "ALLOC_FAILED" in text


def run_config(name: str, args: argparse.Namespace, device: torch.device) -> dict[str, Any]:
    """Build, warm up and time one configuration; failures become a status, never an exception."""
    seed_everything(args.seed)
    free_memory(device)
    result: dict[str, Any] = {"status": "ok"}
    setup: Setup | None = None
    begin = time.perf_counter()
    try:
        setup = SETUPS[name](args, device)
        result.update(
            images_per_step=setup.images_per_step,
            batch_per_stream=setup.batch_per_stream,
            backbone_images_per_step=setup.backbone_images_per_step,
            **setup.info,
        )
        timing = measure(setup.step, warmup=args.warmup, steps=args.steps, device=device)
        result.update(timing)
        if device.type == "cuda":
            result["host_syncs_per_step"] = host_syncs(setup.step)
        result["images_per_s"] = setup.images_per_step * args.steps / (timing["total_ms"] / 1e3)
        result["backbone_images_per_s"] = setup.backbone_images_per_step * args.steps / (timing["total_ms"] / 1e3)
    except Exception as err:  # one failing configuration must not stop the others
        result["status"] = "oom" if is_oom(err) else "error"
        result["error"] = f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}"
        result["traceback"] = traceback.format_exc()[-4000:]
        del err
    finally:
        if setup is not None:
            try:
                setup.cleanup()
            except Exception as err:
                result.setdefault("cleanup_error", f"{type(err).__name__}: {err}")
        setup = None
    if device.type == "cuda":
        try:
            result["peak_memory_allocated_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
            result["peak_memory_reserved_gib"] = torch.cuda.max_memory_reserved(device) / 2**30
        except Exception as err:  # a broken context must not hide the results so far
            result["memory_error"] = f"{type(err).__name__}: {err}"
    result["wall_s"] = time.perf_counter() - begin
    try:
        free_memory(device)
    except Exception as err:
        result.setdefault("cleanup_error", f"{type(err).__name__}: {err}")
    return result


# ----------------------------------------------------------------------------------------- reports
def add_ratios(results: dict[str, dict[str, Any]]) -> None:
    reference = results.get(REFERENCE, {}).get("images_per_s")
    for result in results.values():
        speed = result.get("images_per_s")
        result["ratio_to_reference"] = speed / reference if speed and reference else None


def markdown_table(results: dict[str, dict[str, Any]]) -> str:
    def number(value: Any, fmt: str) -> str:
        return format(value, fmt) if isinstance(value, int | float) else "-"

    rows = [
        "| config | status | batch/stream | images/step | ms/step (median) | images/s | vs reference | peak mem GiB "
        "| host syncs/step |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        rows.append(
            f"| {name} | {r.get('status', '-')} | {r.get('batch_per_stream', '-')} | {r.get('images_per_step', '-')} "
            f"| {number(r.get('ms_per_step_median'), '.1f')} | {number(r.get('images_per_s'), '.1f')} "
            f"| {number(r.get('ratio_to_reference'), '.3f')} | {number(r.get('peak_memory_allocated_gib'), '.2f')} "
            f"| {r.get('host_syncs_per_step', '-')} |"
        )
    return "\n".join(rows)


def environment(device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "device": str(device),
        "card": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": np.__version__,
        "python": sys.version.split()[0],
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env.update(
            total_memory_gib=props.total_memory / 2**30,
            multiprocessors=props.multi_processor_count,
            compute_capability=f"{props.major}.{props.minor}",
        )
    return env


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench_gpu.json"), help="JSON results file")
    parser.add_argument("--device", default="cuda", help="cuda, cuda:N or cpu")
    parser.add_argument("--backbone", default="resnet50", choices=("resnet50", "resnet18", "small_cnn"))
    parser.add_argument("--batch", type=int, default=128, help="reference batch, and COMIC batch per stream")
    parser.add_argument("--authors-batch", type=int, default=32, help="authors_recipe batch per stream")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--steps", type=int, default=15, help="timed steps per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before timing")
    parser.add_argument("--amp", action=argparse.BooleanOptionalAction, default=True, help="bf16 autocast on CUDA")
    parser.add_argument("--ddp", action=argparse.BooleanOptionalAction, default=True, help="run ddp_one_gpu")
    parser.add_argument(
        "--configs", default=",".join(DEFAULT_CONFIGS), help=f"comma-separated, run in this order: {', '.join(CONFIGS)}"
    )
    parser.add_argument(
        "--max-seconds", type=float, default=360.0, help="skip the configurations not started after this long"
    )
    parser.add_argument(
        "--config-timeout",
        type=float,
        default=150.0,
        help="a configuration still running after this long (a hang) ends the run, results so far kept",
    )
    parser.add_argument(
        "--hard-seconds", type=float, default=540.0, help="end the run after this long whatever is running"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    for name in ("batch", "authors_batch", "image_size", "classes", "steps"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        parser.error("--warmup must be >= 0")
    unknown = sorted(set(args.configs.split(",")) - set(CONFIGS))
    if unknown:
        parser.error(f"--configs: unknown {unknown}; choose from {list(CONFIGS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    device = torch.device(args.device)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            log(f"--device {args.device}: CUDA is not available here; use --device cpu for a smoke test")
            return 2
        # set_device needs an index: torch.device("cuda") has none
        device = torch.device("cuda", device.index if device.index is not None else torch.cuda.current_device())
        torch.cuda.set_device(device)
    torch.backends.cudnn.benchmark = True
    selected = [c for c in CONFIGS if c in args.configs.split(",") and (c != "ddp_one_gpu" or args.ddp)]
    report: dict[str, Any] = {
        **environment(device),
        "settings": {
            "backbone": args.backbone,
            "batch": args.batch,
            "authors_batch": args.authors_batch,
            "image_size": args.image_size,
            "classes": args.classes,
            "steps": args.steps,
            "warmup": args.warmup,
            "amp_bf16": args.amp and device.type == "cuda",
            "channels_last": True,
            "ddp": args.ddp,
            "seed": args.seed,
            "configs": selected,
            "max_seconds": args.max_seconds,
            "config_timeout": args.config_timeout,
            "hard_seconds": args.hard_seconds,
            "data": f"synthetic, resident on {device.type}: N(0,1) images, {DATA_SETS} batches used in turn; "
            f"multi-labels with long-tailed class rates (counts {NUM_SAMPLES / 5:.0f}..10 of {NUM_SAMPLES}), "
            f"{MISSING_RATE:.0%} of positives hidden",
            "comic_params": flatten(comic_params(args, shared=False, batch=args.batch)),
        },
        "counting_rule": COUNTING_RULE,
        "timing": "CUDA events around each timed step after warm-up (host clock on the CPU); "
        "images/s over the whole timed span; peak memory reset before each configuration",
        "results": {},
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)

    def save() -> None:
        add_ratios(report["results"])
        report["elapsed_s"] = time.perf_counter() - started
        args.out.write_text(json.dumps(report, indent=2, default=str) + "\n")

    def finish() -> None:
        save()
        log("")
        log(markdown_table(report["results"]))
        log("")
        log(COUNTING_RULE)
        log(f"wrote {args.out} ({report['elapsed_s']:.0f} s)")

    def give_up(name: str, limit: float) -> None:
        """Watchdog thread: a configuration hung (a stuck NCCL init, a wedged kernel); keep what was measured."""
        report["results"][name] = {"status": "timeout", "error": f"no result after {limit:.0f} s; run ended"}
        for later in selected[selected.index(name) + 1 :]:
            report["results"].setdefault(later, {"status": "skipped", "error": f"run ended by {name}'s timeout"})
        log(f"    TIMEOUT: {name} still running after {limit:.0f} s; ending the run")
        finish()
        sys.stdout.flush()
        os._exit(3)

    log(f"bench_gpu: {report['card']} | torch {torch.__version__} | {args.backbone} {args.image_size}px")
    log(f"configs: {', '.join(selected)} | warmup {args.warmup} + {args.steps} timed steps each")
    for number, name in enumerate(selected, 1):
        elapsed = time.perf_counter() - started
        if elapsed > args.max_seconds:
            report["results"][name] = {"status": "skipped", "error": f"time budget {args.max_seconds:.0f} s spent"}
            log(f"[{number}/{len(selected)}] {name}: skipped (time budget spent after {elapsed:.0f} s)")
            save()
            continue
        log(f"[{number}/{len(selected)}] {name} ... (t={elapsed:.0f} s)")
        limit = max(1.0, min(args.config_timeout, args.hard_seconds - elapsed))
        watchdog = threading.Timer(limit, give_up, args=(name, limit))
        watchdog.daemon = True
        watchdog.start()
        try:
            result = run_config(name, args, device)
        finally:
            watchdog.cancel()
        report["results"][name] = result
        save()
        if result["status"] == "ok":
            peak = result.get("peak_memory_allocated_gib")
            log(
                f"    {result['images_per_s']:.1f} images/s, {result['ms_per_step_median']:.1f} ms/step median, "
                f"warmup {result['warmup_s']:.1f} s" + (f", peak {peak:.2f} GiB" if peak is not None else "")
            )
        else:
            log(f"    {result['status'].upper()}: {result['error']}")
    finish()
    return 0 if any(r.get("status") == "ok" for r in report["results"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
