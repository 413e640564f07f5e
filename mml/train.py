"""The trainer: one run's models (and its method's auxiliary modules) trained together, epoch by epoch.

Each step loads one frame set per video, builds every model's modality from it, and asks the run's method
(`mml.methods`) for the batch's losses; the trainer owns the rest: seeds, the epoch loop, SGD with TSM's parameter
groups and the step schedule, gradient clipping, checkpoints and the store. After each epoch the trained modules and
optimiser states go to a checkpoint in the run's partial folder (`mml.checkpoint`); an interrupted run resumes from
it. All randomness derives from (seed, replica, purpose, epoch) (`mml.seeding`), so a resumed run reproduces an
uninterrupted one.

Under torchrun the same step runs spread over the ranks (see `mml.distributed`) for the methods that allow it: each
rank trains one model on one shard of every batch and builds only its model's modality.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler
from tqdm import tqdm

from mml import distributed
from mml.checkpoint import held_tensors, load_checkpoint, save_checkpoint, write_finished
from mml.data.cache import FrameSource
from mml.data.clips import ShardBatches, TrainClips, TwoViews
from mml.data.datasets import VideoDataset
from mml.distributed import Layout
from mml.errors import MMLError
from mml.execution import Execution, autocast, prepared, to_device
from mml.init_source import RunModel
from mml.methods import METHODS, Training
from mml.models.i3d import I3DResNet
from mml.models.init import param_groups
from mml.models.tsm import TSMResNet
from mml.networks import InitLoader, build_models, build_teacher
from mml.progress import EpochReporter
from mml.seeding import EPOCH_SEED, INIT_SEED, ORDER_SEED, SAMPLE_SEED, derive_seed
from mml.store import RunConfig, Store


class Outputs(nn.Module):
    """A network called for (features, logits): the one call DDP wraps (it synchronises what `forward` computes)."""

    def __init__(self, network: TSMResNet | I3DResNet) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.network.features(x)
        return features, self.network.head(features)


def build_optimizers(
    config: RunConfig, models: Sequence[nn.Module], indices: Sequence[int] | None = None
) -> list[torch.optim.SGD]:
    """SGD with TSM's parameter groups for the models of `indices` (default all); a new fc (not from a run of this
    dataset) gets lr x5 / x10."""
    specs = config.models if indices is None else [config.models[index] for index in indices]
    return [
        _sgd(config, param_groups(model, fc_lr5=not isinstance(spec.source, RunModel)))
        for model, spec in zip(models, specs, strict=True)
    ]


def _sgd(config: RunConfig, groups: list[dict]) -> torch.optim.SGD:
    """SGD over parameter groups at the recipe's lr, momentum (Nesterov's where the recipe says so) and weight decay
    (`set_learning_rate` scales them)."""
    recipe = config.recipe
    return torch.optim.SGD(
        groups, lr=recipe.lr, momentum=recipe.momentum, nesterov=recipe.nesterov, weight_decay=recipe.weight_decay
    )


def _auxiliary_optimizer(config: RunConfig, name: str, module: nn.Module) -> torch.optim.Optimizer:
    """The method's optimiser of an auxiliary module, or SGD at the recipe's settings."""
    method = METHODS[config.method]
    groups = method.auxiliary_groups(name, module)
    return method.auxiliary_optimizer(name, groups, config) or _sgd(config, groups)


def set_learning_rate(config: RunConfig, optimizers: Sequence[torch.optim.Optimizer], epoch: int) -> float:
    """Step schedule: lr * decay^(number of steps <= epoch), times each group's multipliers."""
    recipe = config.recipe
    lr = recipe.lr * recipe.lr_decay ** sum(epoch >= step for step in recipe.lr_steps)
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
            group["weight_decay"] = recipe.weight_decay * group["decay_mult"]
    return lr


def backward(losses: Sequence[torch.Tensor], layout: Layout, share: float) -> None:
    """Backpropagate this process's losses. A rank's loss is weighted by R times its shard's `share` of the batch, so
    that DDP's mean over the R replicas is the gradient of the whole batch's mean loss, even for unequal shards."""
    total = torch.stack(list(losses)).sum()
    weight = layout.replicas * share
    (total if weight == 1 else total * weight).backward()


def clip_gradients(module: nn.Module, max_norm: float) -> None:
    """Scale the gradients of `module` to a total norm of at most `max_norm` (TSM's `--clip-gradient`); 0 turns
    clipping off, as a recipe without clipping (PySlowFast's) means it, instead of zeroing every gradient."""
    if max_norm > 0:
        nn.utils.clip_grad_norm_(module.parameters(), max_norm)


def train_run(
    config: RunConfig,
    dataset: VideoDataset,
    cache: FrameSource,
    store: Store,
    run: Execution,
    load_init: InitLoader,
    stop_after_epoch: int | None = None,
) -> Path:
    """Train and store one run (resuming its partial state if any); returns the finished run folder.

    Under torchrun every rank calls this: the ranks split the run's models and batches (`mml.distributed.layout`),
    or, when the world does not split into one part per model, rank 0 trains it alone while the others wait.

    Args:
        stop_after_epoch: stop (as if interrupted) once this many epochs are checkpointed; used by tests.
    """
    if distributed.active() and not METHODS[config.method].torchrun:
        raise MMLError(
            f"run {config.run_id}: method {config.method} trains in one process only; run it without torchrun"
        )
    layout = distributed.layout(len(config.models))
    if layout is None:
        return distributed.on_rank0(
            lambda: _train(config, dataset, cache, store, run, load_init, stop_after_epoch, Layout(len(config.models)))
        )
    return _train(config, dataset, cache, store, run, load_init, stop_after_epoch, layout)


@dataclass
class _Epochs:
    """What every training epoch of one run needs, for `run_epoch`: the clips, the trained modules with their
    optimisers, the step, and where this process stands."""

    config: RunConfig
    clips: TrainClips | TwoViews
    parts: list[tuple[nn.Module, torch.optim.Optimizer]]  # every trained module with its optimiser
    # A batch's losses (their sum is the objective) and its recorded CE terms (`Training.record_cross_entropy`).
    step: Callable[[object, torch.Tensor], tuple[list[torch.Tensor], list[torch.Tensor]]]
    layout: Layout
    run: Execution
    share: float
    partial: Path

    def train_epoch(self, epoch: int, stream: Sequence[int], desc: str) -> tuple[float, np.ndarray, np.ndarray]:
        """Train one epoch at its scheduled lr (`run_epoch`); returns the lr, the mean losses and CE terms."""
        lr = set_learning_rate(self.config, [o for _, o in self.parts], epoch)
        return lr, *self.run_epoch(epoch, stream, desc)

    def run_epoch(self, epoch: int, stream: Sequence[int], desc: str) -> tuple[np.ndarray, np.ndarray]:
        """Train one epoch (at epoch `epoch`'s clips and order) with dropout seeded from `stream`; returns the
        mean of each reported loss over the steps, and of each recorded cross-entropy term (reduced over the ranks
        once, at the end of the epoch)."""
        config, recipe, layout = self.config, self.config.recipe, self.layout
        rid = config.run_id
        self.clips.epoch = epoch
        order = torch.Generator().manual_seed(derive_seed(config.seed, config.replica, ORDER_SEED, epoch))
        drop_last = len(self.clips) >= recipe.batch_size
        batches = BatchSampler(RandomSampler(self.clips, generator=order), recipe.batch_size, drop_last)
        loader = DataLoader(
            self.clips,
            batch_sampler=ShardBatches(batches, layout.shard, layout.replicas),
            generator=order,
            num_workers=self.run.workers,
            persistent_workers=False,
            pin_memory=self.run.device.startswith("cuda"),
        )
        torch.manual_seed(derive_seed(config.seed, config.replica, *stream))
        for module, _ in self.parts:
            module.train()
        totals: float | np.ndarray = 0.0
        cross_entropy: list[torch.Tensor] = []  # each recorded CE term summed over the steps
        bar = tqdm(loader, desc=desc, leave=False, disable=not self.run.progress)
        for step, (inputs, labels) in enumerate(bar):
            with autocast(self.run):
                losses, terms = self.step(to_device(inputs, self.run.device), labels.to(self.run.device))
            values = layout.reduce(losses, self.share)
            if not all(math.isfinite(value) for value in values):
                raise MMLError(
                    f"run {rid}: non-finite loss at epoch {epoch + 1}, step {step + 1}; "
                    f"the last good checkpoint is kept in {self.partial}"
                )
            for _, optimizer in self.parts:
                optimizer.zero_grad(set_to_none=True)
            backward(losses, layout, self.share)
            for module, optimizer in self.parts:
                clip_gradients(module, recipe.grad_clip)
                optimizer.step()
            totals = totals + np.asarray(values)
            cross_entropy = [s + t for s, t in zip(cross_entropy, terms, strict=True)] if cross_entropy else terms
            bar.set_postfix(loss=" ".join(f"{v / (step + 1):.3f}" for v in np.atleast_1d(totals)))
        steps = max(len(loader), 1)
        means = np.asarray(layout.reduce(cross_entropy, self.share) if cross_entropy else [], dtype=np.float64)
        return np.atleast_1d(totals / steps), means / steps


def _train(
    config: RunConfig,
    dataset: VideoDataset,
    cache: FrameSource,
    store: Store,
    run: Execution,
    load_init: InitLoader,
    stop_after_epoch: int | None,
    layout: Layout,
) -> Path:
    """`train_run` of the models `layout.held` on shard `layout.shard` of every batch; rank 0 writes the store."""
    rid, method = config.run_id, METHODS[config.method]
    if method.single_label and dataset.multilabel:
        raise MMLError(f"run {rid}: method {config.method} is single-label, the data set is multi-label")
    partial = store.begin(rid) if layout.lead else store.partial_dir(rid)
    checkpoint = partial / "checkpoint.safetensors"
    resume = layout.share(checkpoint.is_file())
    device = torch.device(run.device)
    torch.backends.cudnn.benchmark = run.cudnn_benchmark and device.type == "cuda"  # PyTorch's process-wide switch
    models = [prepared(model, run) for model in build_models(config, load_init, layout.held)]
    teacher = prepared(build_teacher(config, load_init), run) if config.teacher else None
    optimizers = build_optimizers(config, models, layout.held)
    torch.manual_seed(derive_seed(config.seed, config.replica, INIT_SEED, len(config.models)))  # auxiliary init
    auxiliary = {name: m.to(device) for name, m in method.auxiliary(config, models).items()}
    extra_optimizers = {name: _auxiliary_optimizer(config, name, m) for name, m in auxiliary.items()}
    modules: dict[int | str, tuple[nn.Module, torch.optim.Optimizer]] = dict(zip(layout.held, zip(models, optimizers)))
    modules.update({name: (auxiliary[name], extra_optimizers[name]) for name in auxiliary})
    state: dict[str, Any] = (
        load_checkpoint(checkpoint, rid, modules) if resume else {"run_id": rid, "epoch": 0, "history": []}
    )
    nets = layout.wrap([Outputs(model) for model in models])
    if run.compile:
        # torch.compile of a module returns a module (an OptimizedModule); its stub says only Callable.
        nets = [cast(nn.Module, torch.compile(net)) for net in nets]
    extra_modalities = [config.teacher.modality] if config.teacher else []
    extra_modalities += method.extra_inputs(config)  # read beside the models' modalities: a teacher's, a policy's
    modalities = [m.modality for m in config.models]
    indices = method.training_videos(config, len(dataset.train))
    clips = TrainClips(
        dataset.train if indices is None else [dataset.train[i] for i in indices],
        cache,
        modalities + extra_modalities,
        config.recipe,
        derive_seed(config.seed, config.replica, SAMPLE_SEED),
        config.num_classes,
        build=[config.models[index].modality for index in layout.held] + extra_modalities,
        regions=method.regions(config),
    )
    recipe = config.recipe
    batch = min(recipe.batch_size, len(clips))  # every step's batch (a last, smaller one is dropped)
    share = len(range(layout.shard, batch, layout.replicas)) / batch
    if share == 0:
        raise MMLError(f"run {rid}: a batch of {batch} clips cannot feed {layout.replicas} replicas of each model")

    parts = list(modules.values())
    data = TwoViews(clips) if method.views == 2 else clips

    def step(inputs: object, labels: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        training.cross_entropy = []
        return method.step(training, inputs, labels), training.cross_entropy

    epochs = _Epochs(config, data, parts, step, layout, run, share, partial)
    training = Training(
        config=config,
        models=models,
        nets=nets,
        teacher=teacher,
        auxiliary=auxiliary,
        layout=layout,
        device=run.device,
        state=state,
        parts=parts,
        train_epoch=epochs.train_epoch,
        videos=len(dataset.train),
        clips=lambda part, seed: TrainClips(
            [dataset.train[i] for i in part], cache, modalities, recipe, seed, config.num_classes
        ),
    )
    epoch_clips = len(data) - len(data) % batch  # the clips an epoch trains: a last, smaller batch is dropped
    with EpochReporter(partial, rid, recipe.epochs, resumed_from=state["epoch"]) as reporter:
        for epoch in range(state["epoch"], recipe.epochs):
            if stop_after_epoch is not None and epoch >= stop_after_epoch:
                return partial
            epoch_start = time.monotonic()
            method.before_epoch(training, epoch)
            desc = f"{rid} epoch {epoch + 1}/{recipe.epochs}"
            lr, losses, cross_entropy = epochs.train_epoch(epoch, (EPOCH_SEED, epoch, *layout.stream), desc)
            state["epoch"] = epoch + 1
            state["history"].append(
                {"epoch": epoch + 1, "lr": lr, "loss": losses.tolist(), "ce": cross_entropy.tolist()}
            )
            tensors = layout.gather(held_tensors(layout, modules))
            if layout.lead:
                save_checkpoint(checkpoint, tensors, state)
                reporter.report(epoch + 1, losses.tolist(), lr, epoch_clips, time.monotonic() - epoch_start)
    tensors = layout.gather(held_tensors(layout, {index: (module, None) for index, (module, _) in modules.items()}))
    if layout.lead:
        write_finished(partial, config, tensors, [*range(len(config.models)), *auxiliary], state, run, layout.world)
        store.finish(rid)
    layout.barrier()  # the run is in the store before any rank goes on (to evaluate it, or to start from it)
    return store.run_dir(rid)
