"""The group trainer: M models of one run trained together on the same clips (M = 1: CE; M >= 2: ML / MML).

Each step loads one frame set per video, builds every model's modality from it, and gives model i the loss
CE(p_i, y) + KL(mean of the other models' probabilities || p_i) (paper eq. 1-4) when M >= 2. The KL targets are
detached, so one backward pass of the summed losses equals a backward pass per model. After each epoch the
models and optimiser states go to a checkpoint in the run's partial folder; an interrupted run resumes from it.
All randomness derives from (seed, replica, purpose, epoch), so a resumed run reproduces an uninterrupted one.

Under torchrun the same step runs spread over the ranks (see `mml.distributed`): each rank trains one model on
one shard of every batch, builds only its model's modality, and receives the other models' detached class scores
instead of computing them; `group_step` is the one loss computation of both.

The related methods (`mml.related`: KD in `group_step`; the two-view SKD-SRL family; late fusion and G-Blend) run
through the same epoch loop (`_Epochs.run_epoch`) with their own step, in one process. Their auxiliary modules
(SKD-SRL's projector / predictor, the fused head) are checkpointed and stored beside the models, and G-Blend's
weight estimates (Algorithm 1, which trains with that same loop) are part of the checkpoint state.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler
from tqdm import tqdm

from mml import distributed, related
from mml.data.cache import FrameSource
from mml.data.clips import ShardBatches, TrainClips, TwoViews
from mml.data.datasets import VideoDataset
from mml.data.modalities import MODALITIES
from mml.distributed import Layout
from mml.errors import CheckpointError, MMLError
from mml.gblend import GBlendSplit, gblend_split
from mml.losses import binary_cross_entropy, cross_entropy, d3d_loss, kl_message, kl_to_others, mars_loss
from mml.models.convert import fit_checkpoint
from mml.models.fusion import FUSED, LateFusion
from mml.models.i3d import I3D_ARCHS, I3DResNet, build_i3d, inflate_2d_state_dict
from mml.models.init import param_groups, transfer_weights
from mml.models.tsm import TSMResNet, build_tsm
from mml.runs import RunConfig, Store, write_atomic, write_json
from mml.skd import soft_distillation
from mml.spec import LATE_FUSION, SINGLE_LABEL_ONLY, TWO_VIEWS, execution


@dataclass(frozen=True)
class Execution:
    """How and where to run: never part of a run's identity (`run.json` records the training settings).

    The speed settings default to the fp32-eager baseline; `for_device` turns them on for CUDA: bf16 autocast of
    the forward passes and losses (`precision`), channels_last weights and activations, `torch.compile` of each
    trained network, and cuDNN's autotuner. SGD uses PyTorch's multi-tensor (foreach) update on CUDA by default.
    """

    device: str = execution(default="cpu")
    workers: int = execution(default=0)  # data-loading processes during training and evaluation
    prepare_workers: int = execution(default=1)  # processes that decode videos and compute flow into the cache
    progress: bool = execution(default=True)
    precision: str = execution(default="fp32")  # "fp32", or "bf16": autocast of the forward passes and losses
    channels_last: bool = execution(default=False)
    compile: bool = execution(default=False)  # torch.compile each trained network
    cudnn_benchmark: bool = execution(default=False)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"Execution: precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")

    @classmethod
    def for_device(cls, device: str, fast: bool | None = None, **settings: object) -> Execution:
        """Settings for `device`: the fast ones on CUDA, the fp32-eager baseline elsewhere (or as `fast` says);
        `settings` override single ones, e.g. `compile=False`."""
        fast = device.startswith("cuda") if fast is None else fast
        defaults = {"precision": "bf16", "channels_last": True, "compile": True, "cudnn_benchmark": True}
        chosen = {key: value for key, value in settings.items() if value is not None}
        return cls(device=device, **({**defaults, **chosen} if fast else chosen))

    def speed_record(self) -> dict[str, object]:
        """The speed settings a run was trained with, for its `run.json`."""
        return {"precision": self.precision, "channels_last": self.channels_last, "compile": self.compile}


PRECISIONS = ("fp32", "bf16")


def autocast(run: Execution) -> contextlib.AbstractContextManager:
    """bf16 autocast on the run's device type when `run.precision` asks for it; a no-op context otherwise."""
    device_type = torch.device(run.device).type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=run.precision == "bf16")


def prepared(network: nn.Module, run: Execution) -> nn.Module:
    """A network (moved to the device) in the run's memory format: channels_last (channels_last_3d for 3D convs)."""
    network = network.to(run.device)
    if run.channels_last:
        three_d = any(isinstance(module, nn.Conv3d) for module in network.modules())
        network = network.to(memory_format=torch.channels_last_3d if three_d else torch.channels_last)
    return network


def derive_seed(*parts: int) -> int:
    """A 63-bit seed from integer parts (stable across processes and machines, unlike `hash`)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint64)[0] >> np.uint64(1))


# Purposes of derived seeds, so that each random stream is independent of the others.
_INIT_SEED, _EPOCH_SEED, _ORDER_SEED, _SAMPLE_SEED, _SPLIT_SEED, _ESTIMATE_SEED = 1, 2, 3, 4, 5, 6


def network(config: RunConfig, modality: str) -> TSMResNet | I3DResNet:
    """A fresh network of the run's backbone for `modality` (uses the current torch RNG state)."""
    channels = MODALITIES[modality].channels
    if config.arch in I3D_ARCHS:
        return build_i3d(
            config.arch, in_channels=channels, num_classes=config.num_classes, dropout=config.recipe.dropout
        )
    return build_tsm(
        config.arch,
        in_channels=channels,
        num_classes=config.num_classes,
        segments=config.recipe.segments,
        dropout=config.recipe.dropout,
    )


def new_model(config: RunConfig, index: int) -> TSMResNet | I3DResNet:
    """Model `index` of a run, freshly initialised (uses the current torch RNG state)."""
    return network(config, config.models[index].modality)


def stored_models(store: Store, config: RunConfig) -> list[TSMResNet]:
    """The trained models of a finished run, loaded from the store."""
    models = []
    for index in range(len(config.models)):
        model = new_model(config, index)
        model.load_state_dict(load_file(str(store.run_dir(config.run_id) / f"model{index}.safetensors")))
        models.append(model)
    return models


def stored_fusion(store: Store, config: RunConfig) -> LateFusion:
    """The late-fusion network of a finished late-fusion run: its stored branches and fused head."""
    fusion = related.fusion_network(config, stored_models(store, config))
    fusion.fused_head.load_state_dict(load_file(str(store.run_dir(config.run_id) / f"{FUSED}.safetensors")))
    return fusion


def build_models(
    config: RunConfig,
    load_init: Callable[[str, str], dict[str, torch.Tensor]],
    indices: Sequence[int] | None = None,
) -> list[TSMResNet]:
    """Build and initialise the run's models (those of `indices`, default all; each as in the whole group).

    Args:
        config: the run.
        load_init: returns the state dict named by a model's `init` string (a stored run's model or ImageNet
            weights) given (init, arch).
        indices: which models.
    """
    models = []
    for index in range(len(config.models)) if indices is None else indices:
        spec = config.models[index]
        torch.manual_seed(derive_seed(config.seed, config.replica, _INIT_SEED, index))
        model = new_model(config, index)
        if spec.init_kind != "random":
            state = load_init(spec.init, config.arch)
            if isinstance(model, I3DResNet) and state["conv1.weight"].ndim == 4:
                state = inflate_2d_state_dict(state, model)  # ImageNet's 2D weights into the 3D network
            # The fc of a model trained on this dataset is kept (the original MML stage 2); ImageNet's is not.
            transfer_weights(model, state, keep_fc=spec.init_kind == "run", origin=spec.init)
        models.append(model)
    return models


def build_optimizers(
    config: RunConfig, models: list[TSMResNet], indices: Sequence[int] | None = None
) -> list[torch.optim.SGD]:
    """SGD with TSM's parameter groups for the models of `indices` (default all); a new fc (not from a run of this
    dataset) gets lr x5 / x10."""
    specs = config.models if indices is None else [config.models[index] for index in indices]
    return [
        _sgd(config, param_groups(model, fc_lr5=spec.init_kind != "run"))
        for model, spec in zip(models, specs, strict=True)
    ]


def set_learning_rate(config: RunConfig, optimizers: list[torch.optim.SGD], epoch: int) -> float:
    """Step schedule: lr * decay^(number of steps <= epoch), times each group's multipliers."""
    recipe = config.recipe
    lr = recipe.lr * recipe.lr_decay ** sum(epoch >= step for step in recipe.lr_steps)
    for optimizer in optimizers:
        for group in optimizer.param_groups:
            group["lr"] = lr * group["lr_mult"]
            group["weight_decay"] = recipe.weight_decay * group["decay_mult"]
    return lr


def build_teacher(config: RunConfig, load_init: Callable[[str, str], dict[str, torch.Tensor]]) -> TSMResNet:
    """The frozen teacher of a MARS / D3D run, in eval mode, loaded from the run it names."""
    teacher = network(config, config.teacher.modality)
    transfer_weights(teacher, load_init(config.teacher.init, config.arch), keep_fc=True, origin=config.teacher.init)
    return teacher.requires_grad_(False).eval()


class Outputs(nn.Module):
    """A network called for (features, logits): the one call DDP wraps (it synchronises what `forward` computes)."""

    def __init__(self, network: TSMResNet | I3DResNet) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.network.features(x)
        return features, self.network.head(features)


def group_step(
    config: RunConfig,
    models: Sequence[nn.Module],
    teacher: TSMResNet | None,
    inputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    layout: Layout | None = None,
) -> list[torch.Tensor]:
    """The loss of each model this process trains, on one batch (on a rank: on its shard of the batch).

    CE for every model (BCE for multi-label targets); plus the mutual KL term when the group has two or more
    models (ML / MML), its target built from the other models' `kl_message`s, computed here in one process or
    received from the peer ranks; plus, for a MARS / D3D / KD student, the weighted distance to the frozen
    teacher's features / logits (KD: the τ² KL of softened logits) on the same clip. With BCE the extra terms are
    divided by the number of classes, so that they
    keep the magnitude of the classification loss (paper Appendix 2).

    Args:
        models: the `Outputs` of the models of `layout.held` (every model of the run without a layout), possibly
            under DDP.
        layout: where this process stands in the run; None: one process trains every model.
    """
    layout = layout or Layout(len(config.models))
    outputs = [net(inputs[config.models[index].modality]) for index, net in zip(layout.held, models, strict=True)]
    features, logits = [f for f, _ in outputs], [z for _, z in outputs]
    multilabel = labels.is_floating_point()
    scale = 1 / config.num_classes if multilabel else 1.0
    losses = [(binary_cross_entropy if multilabel else cross_entropy)(output, labels) for output in logits]
    if len(config.models) >= 2:
        form = config.recipe.kl_form
        messages = layout.exchange([kl_message(z, form) for z in logits])
        losses = [
            loss + scale * kl_to_others(z, [m for j, m in enumerate(messages) if j != index], form)
            for index, z, loss in zip(layout.held, logits, losses)
        ]
    if teacher is not None:
        with torch.no_grad():
            teacher_features = teacher.features(inputs[config.teacher.modality])
            teacher_logits = teacher.head(teacher_features)
        if config.method == "mars":
            extra = config.recipe.mars_weight * mars_loss(features[0], teacher_features)
        elif config.method == "d3d":
            extra = config.recipe.d3d_weight * d3d_loss(logits[0], teacher_logits)
        else:  # kd: Hinton et al.'s soft term
            extra = config.recipe.kd_alpha * soft_distillation(logits[0], teacher_logits, config.recipe.kd_tau)
        losses[0] = losses[0] + scale * extra
    return losses


def backward(losses: Sequence[torch.Tensor], layout: Layout, share: float) -> None:
    """Backpropagate this process's losses. A rank's loss is weighted by R times its shard's `share` of the batch, so
    that DDP's mean over the R replicas is the gradient of the whole batch's mean loss, even for unequal shards."""
    total = torch.stack(list(losses)).sum()
    weight = layout.replicas * share
    (total if weight == 1 else total * weight).backward()


def _module_tensors(
    name: str, optimizer_name: str, module: nn.Module, optimizer: torch.optim.SGD | None
) -> dict[str, torch.Tensor]:
    """A module's weights (`<name>.<key>`) and, with its optimizer, momentum buffers (`<optimizer_name>.<n>`)."""
    tensors = {f"{name}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    if optimizer is not None:
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        for number, parameter in enumerate(parameters):
            buffer = optimizer.state.get(parameter, {}).get("momentum_buffer")
            if buffer is not None:
                tensors[f"{optimizer_name}.{number}"] = buffer.detach().cpu().contiguous()
    return tensors


def _checkpoint_names(index: int | str) -> tuple[str, str]:
    """Checkpoint key prefixes of model `index` (`model<i>`, `optimizer<i>`) or of an auxiliary module by name."""
    return (f"model{index}", f"optimizer{index}") if isinstance(index, int) else (index, f"optimizer_{index}")


def _load_checkpoint(path: Path, rid: str, modules: dict[int | str, tuple[nn.Module, torch.optim.SGD]]) -> dict:
    """Load the models (by index) and auxiliary modules (by name), with their optimisers, from a run's checkpoint;
    returns its state."""
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        state = json.loads(handle.metadata()["state"])
    if state.get("run_id") != rid:
        raise CheckpointError(f"{path}: belongs to run {state.get('run_id')}, not {rid}")
    tensors = load_file(str(path))
    for index, (model, optimizer) in modules.items():
        name, optimizer_name = _checkpoint_names(index)
        prefix = f"{name}."
        model.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        for number, parameter in enumerate(parameters):
            buffer = tensors.get(f"{optimizer_name}.{number}")
            if buffer is not None:
                optimizer.state[parameter]["momentum_buffer"] = buffer.to(parameter.device)
    return state


def train_run(
    config: RunConfig,
    dataset: VideoDataset,
    cache: FrameSource,
    store: Store,
    run: Execution,
    load_init: Callable[[str, str], dict[str, torch.Tensor]],
    stop_after_epoch: int | None = None,
) -> Path:
    """Train and store one run (resuming its partial state if any); returns the finished run folder.

    Under torchrun every rank calls this: the ranks split the run's models and batches (`mml.distributed.layout`),
    or, when the world does not split into one part per model, rank 0 trains it alone while the others wait.

    Args:
        stop_after_epoch: stop (as if interrupted) once this many epochs are checkpointed; used by tests.
    """
    if distributed.active() and config.method in (*TWO_VIEWS, *LATE_FUSION):
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
    parts: list[tuple[nn.Module, torch.optim.SGD]]  # every trained module with its optimiser
    step: Callable[[object, torch.Tensor], list[torch.Tensor]]  # a batch's losses, their sum being the objective
    layout: Layout
    run: Execution
    share: float
    partial: Path

    def run_epoch(self, epoch: int, stream: Sequence[int], desc: str) -> np.ndarray:
        """Train one epoch (at epoch `epoch`'s lr, clips and order) with dropout seeded from `stream`; returns the
        mean of each reported loss over the steps."""
        config, recipe, layout = self.config, self.config.recipe, self.layout
        rid = config.run_id
        self.clips.epoch = epoch
        order = torch.Generator().manual_seed(derive_seed(config.seed, config.replica, _ORDER_SEED, epoch))
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
        totals = 0.0
        bar = tqdm(loader, desc=desc, leave=False, disable=not self.run.progress)
        for step, (inputs, labels) in enumerate(bar):
            with autocast(self.run):
                losses = self.step(to_device(inputs, self.run.device), labels.to(self.run.device))
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
                nn.utils.clip_grad_norm_(module.parameters(), recipe.grad_clip)
                optimizer.step()
            totals = totals + np.asarray(values)
            bar.set_postfix(loss=" ".join(f"{v / (step + 1):.3f}" for v in np.atleast_1d(totals)))
        return np.atleast_1d(totals / max(len(loader), 1))


def to_device(inputs: object, device: str) -> object:
    """Input tensors moved to `device`: a tensor, a dict per modality, or a pair of dicts (two views)."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device, non_blocking=True)
    if isinstance(inputs, dict):
        return {modality: tensor.to(device, non_blocking=True) for modality, tensor in inputs.items()}
    return tuple(to_device(part, device) for part in inputs)


def _train(
    config: RunConfig,
    dataset: VideoDataset,
    cache: FrameSource,
    store: Store,
    run: Execution,
    load_init: Callable[[str, str], dict[str, torch.Tensor]],
    stop_after_epoch: int | None,
    layout: Layout,
) -> Path:
    """`train_run` of the models `layout.held` on shard `layout.shard` of every batch; rank 0 writes the store."""
    rid = config.run_id
    if config.method in SINGLE_LABEL_ONLY and dataset.multilabel:
        raise MMLError(f"run {rid}: method {config.method} is single-label, the data set is multi-label")
    partial = store.begin(rid) if layout.lead else store.partial_dir(rid)
    checkpoint = partial / "checkpoint.safetensors"
    resume = layout.share(checkpoint.is_file())
    device = torch.device(run.device)
    torch.backends.cudnn.benchmark = run.cudnn_benchmark and device.type == "cuda"  # PyTorch's process-wide switch
    models = [prepared(model, run) for model in build_models(config, load_init, layout.held)]
    teacher = prepared(build_teacher(config, load_init), run) if config.teacher else None
    optimizers = build_optimizers(config, models, layout.held)
    torch.manual_seed(derive_seed(config.seed, config.replica, _INIT_SEED, len(config.models)))  # auxiliary init
    fusion = related.fusion_network(config, models).to(device) if config.method in LATE_FUSION else None
    auxiliary = {name: m.to(device) for name, m in related.auxiliary_modules(config, models, fusion).items()}
    extra_optimizers = {name: _sgd(config, related.auxiliary_groups(name, m)) for name, m in auxiliary.items()}
    state = {"run_id": rid, "epoch": 0, "history": []}
    if resume:
        modules: dict[int | str, tuple[nn.Module, torch.optim.SGD]] = dict(zip(layout.held, zip(models, optimizers)))
        modules.update({name: (auxiliary[name], extra_optimizers[name]) for name in auxiliary})
        state = _load_checkpoint(checkpoint, rid, modules)
    nets = layout.wrap([Outputs(model) for model in models])
    if run.compile:
        nets = [torch.compile(net) for net in nets]
    teacher_modality = [config.teacher.modality] if config.teacher else []
    records = dataset.train
    split = None
    if config.method in ("gblend", "gblend_online"):
        seed = derive_seed(config.seed, config.replica, _SPLIT_SEED)
        split = gblend_split(len(records), holdout_fraction=config.recipe.gblend_holdout, seed=seed)
        records = [dataset.train[i] for i in split.train]  # T: V is held out of training (G-Blend §2.4)
    clips = TrainClips(
        records,
        cache,
        [m.modality for m in config.models] + teacher_modality,
        config.recipe,
        derive_seed(config.seed, config.replica, _SAMPLE_SEED),
        config.num_classes,
        build=[config.models[index].modality for index in layout.held] + teacher_modality,
    )
    recipe = config.recipe
    batch = min(recipe.batch_size, len(clips))  # every step's batch (a last, smaller one is dropped)
    share = len(range(layout.shard, batch, layout.replicas)) / batch
    if share == 0:
        raise MMLError(f"run {rid}: a batch of {batch} clips cannot feed {layout.replicas} replicas of each model")
    blend: dict[str, float] = {FUSED: 1.0}  # the heads' loss weights; naive late fusion: the fused head's only

    def step(inputs: object, labels: torch.Tensor) -> list[torch.Tensor]:
        if config.method in TWO_VIEWS:
            return related.two_view_losses(config, nets[0], auxiliary.get("siamese"), inputs, labels)
        if fusion is not None:
            return related.fusion_losses(fusion, inputs, labels, blend)
        return group_step(config, nets, teacher, inputs, labels, layout)

    parts = list(zip(models, optimizers)) + [(auxiliary[n], extra_optimizers[n]) for n in auxiliary]
    data = TwoViews(clips) if config.method in TWO_VIEWS else clips
    epochs = _Epochs(config, data, parts, step, layout, run, share, partial)
    for epoch in range(state["epoch"], recipe.epochs):
        if stop_after_epoch is not None and epoch >= stop_after_epoch:
            return partial
        if split is not None:
            estimated = _gblend_weights(config, state, epoch, epochs, fusion, blend, split, dataset, cache, run)
            blend.clear()
            blend.update(estimated)
        lr = set_learning_rate(config, [o for _, o in parts], epoch)
        desc = f"{rid} epoch {epoch + 1}/{recipe.epochs}"
        losses = epochs.run_epoch(epoch, (_EPOCH_SEED, epoch, *layout.stream), desc)
        state["epoch"] = epoch + 1
        state["history"].append({"epoch": epoch + 1, "lr": lr, "loss": losses.tolist()})
        tensors = layout.gather(_held_tensors(layout, models, optimizers, auxiliary, extra_optimizers))
        if layout.lead:
            write_atomic(checkpoint, save(tensors, metadata={"state": json.dumps(state)}))
    tensors = layout.gather(_held_tensors(layout, models, None, auxiliary, None))
    if layout.lead:
        for index in [*range(len(config.models)), *auxiliary]:
            name, _ = _checkpoint_names(index)
            weights_of = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(f"{name}.")}
            write_atomic(partial / f"{name}.safetensors", save(weights_of))
        write_json(partial / "metrics.json", {key: state[key] for key in ("history", "gblend") if key in state})
        record = {"run_id": rid, "config": dataclasses.asdict(config), **provenance(), "world_size": layout.world}
        record["execution"] = run.speed_record()
        write_json(partial / "run.json", record)
        store.finish(rid)
    layout.barrier()  # the run is in the store before any rank goes on (to evaluate it, or to start from it)
    return store.run_dir(rid)


def _sgd(config: RunConfig, groups: list[dict]) -> torch.optim.SGD:
    """SGD over parameter groups at the recipe's lr, momentum and weight decay (`set_learning_rate` scales them)."""
    recipe = config.recipe
    return torch.optim.SGD(groups, lr=recipe.lr, momentum=recipe.momentum, weight_decay=recipe.weight_decay)


def _gblend_weights(
    config: RunConfig,
    state: dict,
    epoch: int,
    epochs: _Epochs,
    fusion: nn.Module,
    blend: dict[str, float],
    split: GBlendSplit,
    dataset: VideoDataset,
    cache: FrameSource,
    run: Execution,
) -> dict[str, float]:
    """The G-Blend weights epoch `epoch` trains with: estimated (Algorithm 1) at the start of each super-epoch and
    kept in the run's state, so that a resumed run trains with the weights it estimated before the interruption.

    The estimate trains each head's network alone (`blend` set to {head: 1}) for n epochs on T with the run's own
    epoch function (`epochs`), measures every head's loss on T' and V before and after, and puts the modules and
    optimisers back as they were."""
    estimates = state.setdefault("gblend", [])
    started = [item for item in related.gblend_schedule(config) if item[0].start <= epoch]
    super_epoch, length = max(started, key=lambda item: item[0].start)
    done = [e for e in estimates if e["start"] == super_epoch.start]
    if done:
        return done[0]["weights"]
    recipe, names = config.recipe, related.heads(config)
    seed = derive_seed(config.seed, config.replica, _ESTIMATE_SEED)
    modalities = [m.modality for m in config.models]
    measured = []
    for part in (split.train_subset, split.holdout):
        clips = TrainClips([dataset.train[i] for i in part], cache, modalities, recipe, seed, config.num_classes)
        clips.epoch = super_epoch.start  # the same clips at checkpoints N and N + n
        measured.append(clips)

    def measure() -> tuple[dict[str, float], dict[str, float]]:
        train_subset, holdout = measured
        return (
            related.mean_head_losses(fusion, train_subset, recipe.batch_size, run.device),
            related.mean_head_losses(fusion, holdout, recipe.batch_size, run.device),
        )

    def train_head(name: str) -> None:
        blend.clear()
        blend[name] = 1.0
        for offset in range(length):
            at = super_epoch.start + offset
            set_learning_rate(config, [o for _, o in epochs.parts], at)
            desc = f"{config.run_id} G-Blend estimate: {name} head, epoch {at + 1}"
            epochs.run_epoch(at, (_ESTIMATE_SEED, super_epoch.start, names.index(name), offset), desc)

    snapshot = related.Snapshot([m for m, _ in epochs.parts], [o for _, o in epochs.parts])
    histories = related.estimate_histories(names, snapshot, train_head, measure)
    weights, note = related.weights_from(histories, estimates[-1]["weights"] if estimates else None)
    losses = {name: dataclasses.astuple(history) for name, history in histories.items()}
    estimates.append({"start": super_epoch.start, "epochs": length, "weights": weights, "losses": losses, "note": note})
    return weights


def _held_tensors(
    layout: Layout,
    models: Sequence[nn.Module],
    optimizers: Sequence[torch.optim.SGD] | None,
    auxiliary: dict[str, nn.Module],
    auxiliary_optimizers: dict[str, torch.optim.SGD] | None,
) -> dict[str, torch.Tensor]:
    """The tensors of this process's models and auxiliary modules (and optimisers), from shard 0 only: replicas
    are identical."""
    tensors: dict[str, torch.Tensor] = {}
    if layout.shard == 0:
        held = [
            (index, model, optimizers[position] if optimizers else None)
            for position, (index, model) in enumerate(zip(layout.held, models, strict=True))
        ]
        held += [
            (name, module, auxiliary_optimizers[name] if auxiliary_optimizers else None)
            for name, module in auxiliary.items()
        ]
        for index, module, optimizer in held:
            tensors.update(_module_tensors(*_checkpoint_names(index), module, optimizer))
    return tensors


def import_run(config: RunConfig, files: Sequence[Path], store: Store) -> Path:
    """Store a run whose models are loaded from weight files (ours, torchvision's or the original TSM / MML code's)
    instead of trained; a file that does not fit its model is refused with the keys and shapes at fault."""
    rid = config.run_id
    partial = store.begin(rid, force=True)
    for index, path in enumerate(files):
        model = new_model(config, index)
        weights = {k: v.contiguous() for k, v in fit_checkpoint(Path(path), model).items()}
        write_atomic(partial / f"model{index}.safetensors", save(weights))
    write_json(partial / "metrics.json", {"history": [], "loaded_from": [str(path) for path in files]})
    write_json(partial / "run.json", {"run_id": rid, "config": dataclasses.asdict(config), **provenance()})
    return store.finish(rid)


def provenance() -> dict[str, str]:
    """What produced a run, recorded beside it and never part of its identity: versions and git commit."""
    import subprocess

    import mml

    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, cwd=Path(__file__).parent, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], capture_output=True, text=True, cwd=Path(__file__).parent, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit, dirty = "unknown", ""
    return {
        "mml": mml.__version__,
        "torch": torch.__version__,
        "git_commit": commit + ("-dirty" if dirty else ""),
    }
