"""Late fusion (G-Blend's Fig. 2b/2c): the run's models are the branches of one late-fusion network, trained with
the blended loss of eq. 7 over its heads (each modality's own and the fused one). Naive late fusion trains the fused
head's loss alone; G-Blend (`mml.methods.gblend`) weights every head.

The fused head is the one auxiliary module (`fused`, stored beside the branches). A late-fusion run is evaluated per
branch, each with its own head, and then as the whole network on its fused head: model index M.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from mml.methods.base import Method, Training, parameter_groups
from mml.models.fusion import FUSED, FusedLogits, LateFusion, late_fusion
from mml.models.init import NEW_FC_LR_MULT

if TYPE_CHECKING:
    from mml.data.clips import TrainClips
    from mml.models.i3d import I3DResNet
    from mml.models.tsm import TSMResNet
    from mml.store import RunConfig


def heads(config: RunConfig) -> list[str]:
    """The heads of a late-fusion run, in G-Blend's order: each modality's, then the fused one."""
    return [model.modality for model in config.models] + [FUSED]


def fusion_network(config: RunConfig, branches: Sequence[TSMResNet | I3DResNet]) -> LateFusion:
    """The late-fusion network over the run's branch models (its fused head drawn from the current torch RNG)."""
    return LateFusion(by_modality(config, branches), config.num_classes)


def by_modality(config: RunConfig, models: Sequence[TSMResNet | I3DResNet]) -> dict[str, TSMResNet | I3DResNet]:
    """The run's models by modality: the backbones of its late-fusion network."""
    return {spec.modality: model for spec, model in zip(config.models, models, strict=True)}


def head_logits(backbones: Mapping[str, nn.Module], fused_head: nn.Module, inputs: Mapping[str, Tensor]):
    """Every head's logits, keyed as `heads`."""
    fused, own = late_fusion(backbones, fused_head, {modality: inputs[modality] for modality in backbones})
    return {**own, FUSED: fused}


def blended_loss(head_losses: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """L_blend = Σ_k w_k L_k over every head (eq. 7), whose gradient is the blended gradient Σ_k w_k ∇L_k.

    Naive late fusion is ``weights = {FUSED: 1, <each modality>: 0}``. The heads of both mappings must agree, so
    that a head missing its weight fails loudly instead of dropping out of training.
    """
    if set(head_losses) != set(weights) or not head_losses:
        raise ValueError(f"blended_loss: heads of losses {sorted(head_losses)} and weights {sorted(weights)} differ")
    return torch.stack([weights[head] * loss for head, loss in head_losses.items()]).sum()


def fusion_losses(
    backbones: Mapping[str, nn.Module],
    fused_head: nn.Module,
    inputs: Mapping[str, Tensor],
    labels: Tensor,
    weights: Mapping[str, float],
    record: Callable[[list[Tensor]], None] | None = None,
) -> list[Tensor]:
    """The blended loss (eq. 7) of the heads with a positive weight, as a one-element list. Heads of weight 0 are
    left out, so that their parameters get no gradient at all (and no weight decay): training with the weights
    {k: 1} trains only head k's network, as G-Blend's Algorithm 1 asks. `record` receives every head's own
    cross-entropy, trained or not, in the order of `heads` (`Training.record_cross_entropy`)."""
    active = {head: weight for head, weight in weights.items() if weight > 0}
    logits = head_logits(backbones, fused_head, inputs)
    if record is not None:
        record([F.cross_entropy(values.detach(), labels) for values in logits.values()])
    return [blended_loss({head: F.cross_entropy(logits[head], labels) for head in active}, active)]


@torch.no_grad()
def mean_head_losses(
    backbones: Mapping[str, nn.Module], fused_head: nn.Module, clips: TrainClips, batch: int, device: str
) -> dict[str, float]:
    """Every head's cross-entropy averaged over the clips (eval mode): G-Blend's L^{T'} or L^V."""
    for module in (*backbones.values(), fused_head):
        module.eval()
    sums: dict[str, float] = {}
    for inputs, labels in DataLoader(clips, batch_size=batch, shuffle=False):
        logits = head_logits(backbones, fused_head, {m: t.to(device) for m, t in inputs.items()})
        for head, values in logits.items():
            sums[head] = sums.get(head, 0.0) + F.cross_entropy(values, labels.to(device), reduction="sum").item()
    return {head: total / len(clips) for head, total in sums.items()}


@dataclass(frozen=True)
class LateFusionMethod(Method):
    """Naive late fusion: the fused head's loss only."""

    min_models: int = 2
    max_models: int | None = None
    single_label: bool = True
    torchrun: bool = False
    extra_heads: int = 1

    def check_models(
        self, modalities: Sequence[str], loaded: bool, inits: Sequence[str] = ()
    ) -> tuple[str, str] | None:
        if len(modalities) < 2 or len(set(modalities)) != len(modalities):
            return "models", f"method {self.name} fuses two or more distinct modalities, got {list(modalities)}"
        if loaded:
            return "checkpoints", f"a {self.name} run is trained, not loaded from checkpoint files"
        return None

    def auxiliary(self, config: RunConfig, models: Sequence[TSMResNet | I3DResNet]) -> dict[str, nn.Module]:
        return {FUSED: fusion_network(config, models).fused_head}

    def auxiliary_groups(self, name: str, module: nn.Module) -> list[dict]:
        return parameter_groups(name, module, lr_mult=NEW_FC_LR_MULT)

    def before_epoch(self, training: Training, epoch: int) -> None:
        training.heads = {FUSED: 1.0}

    def step(self, training: Training, inputs: Mapping[str, Tensor], labels: Tensor) -> list[Tensor]:
        backbones = by_modality(training.config, training.models)
        fused_head, record = training.auxiliary[FUSED], training.record_cross_entropy
        return fusion_losses(backbones, fused_head, inputs, labels, training.heads, record)

    def evaluation_heads(
        self,
        config: RunConfig,
        models: Sequence[TSMResNet | I3DResNet],
        weights: Callable[[str], dict[str, Tensor]] | None,
    ) -> list[nn.Module]:
        fused_head = self.auxiliary(config, models)[FUSED]
        if weights is not None:
            fused_head.load_state_dict(weights(FUSED))
        return [FusedLogits(by_modality(config, models), fused_head)]


LATE_FUSION = LateFusionMethod("late_fusion", trains_model_heads=False)
