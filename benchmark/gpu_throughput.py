"""Training throughput of TSM-R50 8x224 at batch 32, as `mml.train` trains it, in one run.

For each setting (fp32 eager, the baseline; bf16 autocast + channels_last, eager; the same under torch.compile,
the trainer's default on CUDA) and each group (one RGB model; an RGB+Flow ML pair, one clip
feeding both), it reports clips/s (pairs/s for the pair) and peak device memory, on synthetic input already on the
device and end to end from a JPEG frame + flow cache through the project's `TrainClips` and a DataLoader, and the
achieved TFLOP/s from the training FLOPs per clip counted by `torch.utils.flop_counter`. Beside them: plain
torchvision ResNet-50 image training at the same images per step (batch x segments) in the best setting, as the
ceiling, in images/s and its clip equivalent (images/s / segments). Each group's step in each setting is built
(and compiled) once and timed on both inputs; the rows the issue's three targets compare come first
(`row_order`); from the cache, at least `--workers` steps warm up and four times as many are timed. `--json`
writes every figure and the target ratios (`target_ratios`) as JSON, after each row.

The training step is the trainer's: `mml.networks.network`, `mml.methods.mutual.group_step` (CE plus the mutual
KL term), `backward`, gradient clipping and SGD with TSM's parameter groups, under the trainer's own speed settings
(`mml.execution.Execution`, `prepared`, `autocast`).

    python benchmark/gpu_throughput.py --device cuda                 # the real figures (a few minutes)
    python benchmark/gpu_throughput.py --device cpu --tiny --steps 1 # a smoke run: tiny TSM, 32 px, batch 2
    python benchmark/gpu_throughput.py --device cuda --warmup 3 --steps 10 --videos-per-class 2 --json out.json
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision
from torch import nn
from torch.utils.data import DataLoader, RandomSampler
from torch.utils.flop_counter import FlopCounterMode

from mml.data.cache import prepare
from mml.data.clips import TrainClips
from mml.data.datasets import open_dataset
from mml.data.flow_backend import FlowBackend
from mml.data.modalities import MODALITIES
from mml.data.synthetic import SyntheticConfig, ensure_sthv2
from mml.distributed import Layout
from mml.execution import Execution, autocast, prepared
from mml.methods.mutual import group_step
from mml.networks import network
from mml.spec import DatasetConfig, Recipe
from mml.store import ModelConfig, RunConfig
from mml.train import Outputs, backward, build_optimizers

# The trainer's speed settings (`mml.execution.Execution`, device set per run): the fp32-eager baseline, bf16 autocast
# with channels_last, and the trainer's CUDA default, which adds torch.compile.
SETTINGS = {
    "fp32-eager": Execution(),
    "bf16-cl-eager": Execution(precision="bf16", channels_last=True),
    "bf16-cl-compile": Execution(precision="bf16", channels_last=True, compile=True),
}
DEFAULT = "bf16-cl-compile"  # the trainer's CUDA default
GROUPS = {"one": ("RGB",), "pair": ("RGB", "Flow")}
INPUTS = ("synthetic", "cache")


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: the rate of row `numerator` over that of row `denominator` (each a (group,
    setting, input) triple) is at least `at_least`."""

    name: str
    numerator: tuple[str, str, str]
    denominator: tuple[str, str, str]
    at_least: float


TARGETS = (
    Target(
        "default / fp32 eager (one model, synthetic)",
        ("one", DEFAULT, "synthetic"),
        ("one", "fp32-eager", "synthetic"),
        4.0,
    ),
    Target("pair / one model (default, synthetic)", ("pair", DEFAULT, "synthetic"), ("one", DEFAULT, "synthetic"), 0.5),
    Target(
        "end to end / synthetic (one model, default)", ("one", DEFAULT, "cache"), ("one", DEFAULT, "synthetic"), 0.85
    ),
)


def target_ratios(rows: list[dict]) -> list[dict]:
    """Each target's ratio from the measured `rows` (dicts with group, setting, input, clips_per_second) and whether
    it is met; a target whose rows were not both measured has ratio and met None."""
    rates = {(row["group"], row["setting"], row["input"]): row["clips_per_second"] for row in rows}
    ratios = []
    for target in TARGETS:
        numerator, denominator = rates.get(target.numerator), rates.get(target.denominator)
        ratio = numerator / denominator if numerator is not None and denominator else None
        ratios.append(
            {
                "name": target.name,
                "ratio": ratio,
                "at_least": target.at_least,
                "met": None if ratio is None else ratio >= target.at_least,
            }
        )
    return ratios


@dataclass(frozen=True)
class Scale:
    """The workload: backbone, frames, crop, batch, classes, and the synthetic videos the frame cache holds."""

    arch: str
    segments: int
    size: int
    batch: int
    classes: int
    video_height: int
    video_width: int
    videos_per_class: int


FULL = Scale("tsm_r50", 8, 224, 32, 10, 256, 340, 8)
TINY = Scale("tsm_tiny", 2, 32, 2, 2, 48, 64, 2)


def run_config(scale: Scale, modalities: tuple[str, ...]) -> RunConfig:
    """A training run of `modalities` (CE for one model, ML for several) at `scale`, with the paper's recipe."""
    recipe = Recipe(
        segments=scale.segments,
        short_side=scale.video_height,
        input_size=scale.size,
        batch_size=scale.batch,
        epochs=1,
        lr=0.01,
        lr_steps=(),
    )
    return RunConfig(
        method="ml" if len(modalities) > 1 else "ce",
        models=tuple(ModelConfig(modality, "random") for modality in modalities),
        arch=scale.arch,
        recipe=recipe,
        dataset="benchmark",
        num_classes=scale.classes,
        seed=0,
    )


def training_step(config: RunConfig, setting: Execution) -> Callable[[dict, torch.Tensor], None]:
    """One optimiser step of every model of the group on a batch, as `mml.train` takes it, under `setting`."""
    models = [prepared(network(config, model.modality), setting) for model in config.models]
    optimizers = build_optimizers(config, models)
    nets = [Outputs(model) for model in models]
    if setting.compile:
        nets = [torch.compile(net) for net in nets]
    layout = Layout(len(models))

    def step(inputs: dict[str, torch.Tensor], labels: torch.Tensor) -> None:
        with autocast(setting):
            losses = group_step(config, nets, inputs, labels, layout)
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
        backward(losses, layout, 1.0)
        for model, optimizer in zip(models, optimizers):
            nn.utils.clip_grad_norm_(model.parameters(), config.recipe.grad_clip)
            optimizer.step()

    return step


def synthetic_batches(config: RunConfig, device: torch.device) -> Iterator[tuple[dict, torch.Tensor]]:
    """The same random batch, already on the device, forever."""
    recipe, generator = config.recipe, torch.Generator().manual_seed(0)
    inputs = {
        model.modality: torch.randn(
            recipe.batch_size,
            recipe.segments * MODALITIES[model.modality].channels,
            recipe.input_size,
            recipe.input_size,
            generator=generator,
        ).to(device)
        for model in config.models
    }
    labels = torch.randint(config.num_classes, (recipe.batch_size,), generator=generator).to(device)
    return itertools.repeat((inputs, labels))


def cached_batches(
    config: RunConfig, clips: TrainClips, device: torch.device, workers: int
) -> Iterator[tuple[dict, torch.Tensor]]:
    """Batches read from the frame cache by `TrainClips` in `workers` processes, moved to the device, forever."""
    loader = DataLoader(
        clips,
        batch_size=config.recipe.batch_size,
        sampler=RandomSampler(clips, replacement=True, num_samples=10**9),
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=workers > 0,
        prefetch_factor=4 if workers > 0 else None,
    )
    for inputs, labels in loader:
        yield {m: t.to(device, non_blocking=True) for m, t in inputs.items()}, labels.to(device, non_blocking=True)


def frame_cache(scale: Scale, folder: Path, flow: FlowBackend, workers: int):
    """A synthetic Something-Something-v2 data set at the scale's frame size, its frames and flow cached."""
    config = SyntheticConfig(
        num_classes=scale.classes,
        train_per_class=scale.videos_per_class,
        val_per_class=1,
        frames=16,
        min_frames=12,
        height=scale.video_height,
        width=scale.video_width,
    )
    dataset = open_dataset(DatasetConfig(kind="sthv2"), ensure_sthv2(folder / "data", config, False), folder)
    source = dataset.frame_source(folder / "cache", scale.video_height, flow)
    prepare(source, dataset.train, True, workers, progress=False)
    return dataset, source


def timed(
    step: Callable[[dict, torch.Tensor], None],
    batches: Iterator[tuple[dict, torch.Tensor]],
    warmup: int,
    steps: int,
    device: torch.device,
) -> tuple[float, float | None]:
    """(seconds per step over `steps` steps after `warmup` ones, peak device memory in GiB or None on the CPU)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for inputs, labels in itertools.islice(batches, warmup):
        step(inputs, labels)
    _synchronize(device)
    started = time.perf_counter()
    for inputs, labels in itertools.islice(batches, steps):
        step(inputs, labels)
    _synchronize(device)
    seconds = (time.perf_counter() - started) / steps
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return seconds, peak


def training_flops(config: RunConfig, device: torch.device) -> float:
    """FLOPs of one fp32 training step (forward and backward) of the group per clip of the batch."""
    step = training_step(config, Execution(device=str(device)))
    inputs, labels = next(synthetic_batches(config, device))
    with FlopCounterMode(display=False) as counter:
        step(inputs, labels)
    return counter.get_total_flops() / config.recipe.batch_size


def resnet50_ceiling(scale: Scale, setting: Execution, device: torch.device, warmup: int, steps: int) -> float:
    """Images/s of torchvision ResNet-50 image training (CE, SGD) at batch x segments images under `setting`."""
    model = prepared(torchvision.models.resnet50(num_classes=scale.classes), setting)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    forward = torch.compile(model) if setting.compile else model
    images = scale.batch * scale.segments
    generator = torch.Generator().manual_seed(0)
    batch = torch.randn(images, 3, scale.size, scale.size, generator=generator).to(device)
    labels = torch.randint(scale.classes, (images,), generator=generator).to(device)

    def step(inputs: torch.Tensor, targets: torch.Tensor) -> None:
        with autocast(setting):
            loss = nn.functional.cross_entropy(forward(inputs), targets)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    seconds, _ = timed(step, itertools.repeat((batch, labels)), warmup, steps, device)
    return images / seconds


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _names(value: str, known: dict | tuple) -> list[str]:
    names = value.split(",")
    unknown = [name for name in names if name not in known]
    if unknown:
        raise SystemExit(f"gpu_throughput: unknown {', '.join(unknown)}; known: {', '.join(known)}")
    return names


def row_order(groups: list[str], settings: list[str], inputs: list[str]) -> list[tuple[str, str, str]]:
    """Every (group, setting, input) asked for, those that the targets compare first (in `TARGETS`' order), so that
    a run stopped early (a timeout) has measured the ratios before the other rows."""
    asked = list(itertools.product(groups, settings, inputs))
    first = [key for target in TARGETS for key in (target.denominator, target.numerator) if key in asked]
    return list(dict.fromkeys(first + asked))


def measure(args: argparse.Namespace, scale: Scale) -> dict:
    """Every row of the table (printed as it is measured), the ResNet-50 ceiling and the target ratios; with `--json`
    the file is rewritten after each row, so that it holds what was measured even if the run is stopped.

    The steps of every group and setting stay alive until the ceiling is timed (each compiles once), so a row's peak
    memory includes the weights, gradients and momentum of the networks measured before it (about 0.3 GiB per
    ResNet-50)."""
    device = torch.device(args.device)
    settings, groups = _names(args.settings, SETTINGS), _names(args.groups, GROUPS)
    inputs = _names(args.inputs, INPUTS)
    torch.backends.cudnn.benchmark = True
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"{scale.arch} {scale.segments}x{scale.size}, batch {scale.batch}, on {name}, torch {torch.__version__}")
    print("| group | setting | input | clips/s (pairs/s) | peak GiB | GFLOP/clip | TFLOP/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    rows: list[dict] = []
    results = {
        "device": name,
        "torch": torch.__version__,
        "scale": dataclasses.asdict(scale),
        "warmup": args.warmup,
        "steps": args.steps,
        "workers": args.workers,
        "rows": rows,
        "resnet50": None,
        "ratios": target_ratios(rows),
    }
    configs = {group: run_config(scale, GROUPS[group]) for group in groups}
    flops, steps = {}, {}  # per group; per (group, setting): each step is built (and compiled) once
    with tempfile.TemporaryDirectory() as temporary:
        folder = args.cache_dir or Path(temporary)
        if "cache" in inputs:
            flow = FlowBackend("torch", args.device) if device.type == "cuda" else FlowBackend()
            dataset, source = frame_cache(scale, folder, flow, args.workers)
        for group, setting_name, input_name in row_order(groups, settings, inputs):
            config = configs[group]
            if group not in flops:
                flops[group] = training_flops(config, device)
            if (group, setting_name) not in steps:
                setting = dataclasses.replace(SETTINGS[setting_name], device=args.device)
                steps[group, setting_name] = training_step(config, setting)
            warmup, count = args.warmup, args.steps
            if input_name == "synthetic":
                batches = synthetic_batches(config, device)
            else:
                modalities = [m.modality for m in config.models]
                clips = TrainClips(dataset.train, source, modalities, config.recipe, 0, config.num_classes)
                batches = cached_batches(config, clips, device, args.workers)
                # The workers deliver their first batches together: drain that wave untimed, and time several
                # waves, lest a few steps served from the queue stand for the loader's rate.
                warmup, count = max(warmup, args.workers), max(count, 4 * args.workers)
            seconds, peak = timed(steps[group, setting_name], batches, warmup, count, device)
            row = {
                "group": group,
                "setting": setting_name,
                "input": input_name,
                "warmup": warmup,
                "timed_steps": count,
                "clips_per_second": scale.batch / seconds,
                "peak_gib": peak,
                "gflop_per_clip": flops[group] / 1e9,
                "tflops": flops[group] * scale.batch / seconds / 1e12,
            }
            rows.append(row)
            results["ratios"] = target_ratios(rows)
            _write(args.json, results)
            memory = f"{peak:.1f}" if peak is not None else "n/a"
            print(
                f"| {group} | {setting_name} | {input_name} | {row['clips_per_second']:.2f} | {memory} | "
                f"{row['gflop_per_clip']:.3g} | {row['tflops']:.3g} |",
                flush=True,
            )
    steps.clear()
    best = settings[-1]
    images = resnet50_ceiling(
        scale, dataclasses.replace(SETTINGS[best], device=args.device), device, args.warmup, args.steps
    )
    results["resnet50"] = {
        "setting": best,
        "images": scale.batch * scale.segments,
        "size": scale.size,
        "images_per_second": images,
        "clip_equivalents_per_second": images / scale.segments,
    }
    _write(args.json, results)
    print(
        f"torchvision ResNet-50 image training, {best}, {scale.batch * scale.segments} images of {scale.size} px: "
        f"{images:.1f} images/s = {images / scale.segments:.2f} clip equivalents/s"
    )
    for ratio in results["ratios"]:
        value = "not measured" if ratio["ratio"] is None else f"{ratio['ratio']:.2f}"
        verdict = "" if ratio["met"] is None else (" met" if ratio["met"] else " missed")
        print(f"target {ratio['name']} >= {ratio['at_least']}: {value}{verdict}")
    return results


def _write(path: Path | None, results: dict) -> None:
    """`results` as JSON at `path`, replaced whole (a run stopped while writing leaves the previous version)."""
    if path is not None:
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(results, indent=1) + "\n")
        os.replace(temporary, path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--tiny", action="store_true", help="tiny TSM at 32 px, batch 2, 2 segments (smoke test)")
    parser.add_argument("--settings", default=",".join(SETTINGS), help=f"comma-separated, of {', '.join(SETTINGS)}")
    parser.add_argument("--groups", default=",".join(GROUPS), help="comma-separated, of one, pair")
    parser.add_argument("--inputs", default=",".join(INPUTS), help="comma-separated, of synthetic, cache")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation happens here)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps")
    parser.add_argument("--workers", type=int, default=8, help="DataLoader processes for the cache input")
    parser.add_argument("--cache-dir", type=Path, help="keep the synthetic data set and its cache here (reused)")
    parser.add_argument(
        "--videos-per-class", type=int, help="training videos per class in the frame cache (default: the scale's)"
    )
    parser.add_argument(
        "--json", type=Path, help="also write every figure and the target ratios to this file (after each row)"
    )
    args = parser.parse_args(argv)
    scale = TINY if args.tiny else FULL
    if args.videos_per_class is not None:
        scale = dataclasses.replace(scale, videos_per_class=args.videos_per_class)
    measure(args, scale)


if __name__ == "__main__":
    main()
