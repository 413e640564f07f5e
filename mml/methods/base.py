"""The interface of a training method, and what the trainer hands a method's hooks.

A method is a frozen `Method` dataclass: its traits (how many models a run trains, a teacher, single-label only,
torchrun, views per clip, evaluated heads beyond the models) and hooks that the trainer (`mml.train`), the
evaluation (`mml.evaluate`) and the GFLOPs count (`mml.report.cost`) call. A family subclasses it and overrides
what differs. A base dataclass rather than a Protocol: most methods differ from the defaults in a trait or two,
so the defaults (one model, no auxiliary modules, every video trained on, nothing before an epoch) are written
once, and each method is a plain value in `mml.methods.METHODS`.

This package imports neither `mml.spec` nor `mml.data` at run time (the spec reads its traits, and the data layer
reads the spec): what a hook needs from them, the trainer passes in `Training`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn

from mml.methods.settings import MethodSettings

if TYPE_CHECKING:
    from mml.data.clips import TrainClips
    from mml.distributed import Layout
    from mml.models.i3d import I3DResNet
    from mml.models.tsm import TSMResNet
    from mml.spec import Recipe
    from mml.store import RunConfig


@dataclass
class Training:
    """One run in training, as the method's hooks see it (built by `mml.train`)."""

    config: RunConfig
    models: list[TSMResNet | I3DResNet]  # the models this process trains (`layout.held`), as built
    nets: list[nn.Module]  # their `(features, logits)` callables (`mml.train.Outputs`, under DDP, compiled)
    teacher: TSMResNet | I3DResNet | None  # the frozen teacher of a distillation run
    auxiliary: dict[str, nn.Module]  # the method's trained modules beside the models (`Method.auxiliary`)
    layout: Layout
    device: str
    state: dict[str, Any]  # the checkpointed state: `epoch`, `history`, and a method's own entries (to metrics.json)
    parts: list[tuple[nn.Module, Any]]  # every trained module with its optimiser
    train_epoch: Callable[[int, Sequence[int], str], Any]  # (epoch, dropout seed stream, description): one epoch
    videos: int  # how many training videos the data set has (`clips` takes indices among them)
    clips: Callable[[Sequence[int], int], TrainClips]  # training clips of every modality of these videos, at a seed
    heads: dict[str, float] = field(default_factory=dict)  # late fusion: the loss weight of each head it trains
    cross_entropy: list[Tensor] = field(default_factory=list)  # the last step's `record_cross_entropy`

    def record_cross_entropy(self, terms: Sequence[Tensor]) -> None:
        """Note a step's cross-entropy (multi-label: BCE) term of each evaluated model this process trains, in model
        index order (a run's models, then its `Method.extra_heads`), apart from the rest of the objective: the trainer
        logs their epoch means as the history's `ce`, which the learning check (`mml.report.learning`) compares with
        the loss of guessing. Detached: recording changes nothing the step computes."""
        self.cross_entropy = [term.detach() for term in terms]


@dataclass(frozen=True)
class Method:
    """What sets a training method apart. Hooks with a default here are the common case (CE-like methods)."""

    name: str
    min_models: int = 1
    max_models: int | None = 1  # None: any number from `min_models`
    teacher: bool = False  # a frozen teacher model (distillation)
    single_label: bool = False  # softmax methods: not for the multi-label setup
    torchrun: bool = True  # may train spread over torchrun's ranks (else in one process only)
    views: int = 1  # augmented views of each training clip the step sees (2: `mml.data.clips.TwoViews`)
    extra_heads: int = 0  # evaluated heads beyond the models (late fusion's fused head: model index M)
    trains_model_heads: bool = True  # whether each model's own classifier head is trained (naive late fusion: no)
    settings: type[MethodSettings] | None = None  # the family's own settings (`mml.methods.settings`)
    reads: tuple[str, ...] = ()  # those of `settings` this method reads: they enter its runs' ids

    def __post_init__(self) -> None:
        known = self.settings.names() if self.settings else ()
        unknown = [name for name in self.reads if name not in known]
        if unknown:
            raise ValueError(f"method {self.name} reads {', '.join(unknown)}, not settings of its family")

    def check_models(
        self, modalities: Sequence[str], loaded: bool, inits: Sequence[str] = ()
    ) -> tuple[str, str] | None:
        """(spec key, reason) when a spec run of this method may not have these models (or be loaded from
        checkpoint files, `loaded`, or start from `inits`, the models' init strings); None when it may."""
        count = len(modalities)
        if self.max_models == 1 and count != 1:
            return "models", f"method {self.name} trains exactly one model, got {count}"
        if count < self.min_models:
            return "models", f"method {self.name} trains two or more models, got {count}"
        return None

    def training_recipe(self, recipe: Recipe) -> Recipe:
        """The recipe a run of this method trains with, given its spec's (AdaMML: as many epochs as its stages)."""
        return recipe

    def check_recipe(self, config: RunConfig) -> tuple[str, str] | None:
        """(recipe key, reason) when a run of this method cannot train with this recipe; None when it can."""
        return None

    def regions(self, config: RunConfig) -> int:
        """Equal parts of a video that give one training clip each (`mml.data.clips.TrainClips`); 1: one clip."""
        return 1

    def extra_inputs(self, config: RunConfig) -> list[str]:
        """Modalities the method's own modules read beside its models' (an AdaMML policy's RGBDiff)."""
        return []

    def auxiliary_optimizer(self, name: str, groups: list[dict], config: RunConfig) -> torch.optim.Optimizer | None:
        """The optimiser of an auxiliary module over its `auxiliary_groups`; None: the trainer's SGD."""
        return None

    def auxiliary(self, config: RunConfig, models: Sequence[TSMResNet | I3DResNet]) -> dict[str, nn.Module]:
        """Modules trained (and stored) beside the run's models, by name, drawn from the current torch RNG."""
        return {}

    def auxiliary_groups(self, name: str, module: nn.Module) -> list[dict]:
        """SGD parameter groups of an auxiliary module in the trainer's form (`lr_mult`, `decay_mult`)."""
        return parameter_groups(name, module, lr_mult=1)

    def training_videos(self, config: RunConfig, count: int) -> list[int] | None:
        """Indices of the training videos the run trains on; None: all `count` of them."""
        return None

    def before_epoch(self, training: Training, epoch: int) -> None:
        """Called before each training epoch (G-Blend estimates its loss weights here)."""

    def step(self, training: Training, inputs: Any, labels: Tensor) -> list[Tensor]:
        """The losses of one batch (their sum is the objective): one per model this process trains, or one."""
        raise NotImplementedError(f"method {self.name} defines no training step")

    def head_views(self, config: RunConfig, views: Any) -> Any:
        """The test views (a `mml.spec.ViewProtocol`) the `extra_heads` are evaluated on under protocol `views`."""
        return views

    def evaluation_heads(
        self,
        config: RunConfig,
        models: Sequence[TSMResNet | I3DResNet],
        weights: Callable[[str], dict[str, Tensor]] | None,
    ) -> list[nn.Module]:
        """The `extra_heads` networks evaluated after the models (model indices M, M + 1, ...), each called on a
        dict of every model's modality clips, built over `models` with the auxiliary modules' stored `weights`
        (by name; None: freshly initialised, for the GFLOPs count)."""
        return []


def parameter_groups(name: str, module: nn.Module, lr_mult: int) -> list[dict]:
    """SGD parameter groups of an auxiliary module: matrices decay, biases and BN do not (as TSM's groups)."""
    matrices = [p for p in module.parameters() if p.ndim > 1]
    vectors = [p for p in module.parameters() if p.ndim <= 1]
    return [
        {"params": matrices, "lr_mult": lr_mult, "decay_mult": 1, "name": f"{name}_weight"},
        {"params": vectors, "lr_mult": lr_mult, "decay_mult": 0, "name": f"{name}_bias"},
    ]
