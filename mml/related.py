"""What one training step computes for the related methods trained beside ML / MML, and G-Blend's weights.

- Two views (SKD-SRL's Table II): `ce_aug` is cross-entropy on two augmented views of each clip, `self_kd` adds
  the soft-label distillation of eq. 2, `skd_srl` also SimSiam's similarity term through a projector / predictor
  (eq. 5); the model is one network, evaluated as a CE model.
- Late fusion (G-Blend's Fig. 2b/2c): the run's models are the branches of one `LateFusion` network, trained with
  the blended loss of eq. 7: the fused head alone for naive late fusion, G-Blend's weights for `gblend` (estimated
  once, Algorithm 2) and `gblend_online` (re-estimated every super-epoch, Algorithm 3).

The trainer (`mml.train`) owns the loop, checkpoints and the store; `estimate_histories` is Algorithm 1 on top of
the trainer's own epoch function, so an estimate trains exactly as the run does.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader

from mml.data.clips import TrainClips
from mml.gblend import HeadLosses, SuperEpoch, blended_loss, gblend_weights, online_schedule
from mml.models.fusion import FUSED, LateFusion, pooled_features
from mml.runs import RunConfig
from mml.skd import SimSiamHead, self_kd_loss, skd_srl_loss


def heads(config: RunConfig) -> list[str]:
    """The heads of a late-fusion run, in G-Blend's order: each modality's, then the fused one."""
    return [model.modality for model in config.models] + [FUSED]


def fusion_network(config: RunConfig, branches: Sequence[nn.Module]) -> LateFusion:
    """The late-fusion network over the run's branch models (its fused head drawn from the current torch RNG)."""
    backbones = {spec.modality: branch for spec, branch in zip(config.models, branches, strict=True)}
    return LateFusion(backbones, config.num_classes)


def auxiliary_modules(
    config: RunConfig, models: Sequence[nn.Module], fusion: LateFusion | None
) -> dict[str, nn.Module]:
    """Trained modules beside the run's models, by name: SKD-SRL's projector and predictor (`siamese`, drawn from
    the current torch RNG), a late-fusion run's fused head (`fused`); none for the other methods."""
    if config.method == "skd_srl":
        return {"siamese": SimSiamHead(models[0].fc.in_features)}
    return {FUSED: fusion.fused_head} if fusion is not None else {}


def auxiliary_groups(name: str, module: nn.Module) -> list[dict]:
    """SGD parameter groups of an auxiliary module, in the trainer's form (`lr_mult`, `decay_mult`): matrices
    decay, biases and BN do not (as TSM's groups); the fused head is a new classifier and learns x5, as TSM's new fc."""
    lr_mult = 5 if name == FUSED else 1
    matrices = [p for p in module.parameters() if p.ndim > 1]
    vectors = [p for p in module.parameters() if p.ndim <= 1]
    return [
        {"params": matrices, "lr_mult": lr_mult, "decay_mult": 1, "name": f"{name}_weight"},
        {"params": vectors, "lr_mult": lr_mult, "decay_mult": 0, "name": f"{name}_bias"},
    ]


def two_view_losses(
    config: RunConfig, net: nn.Module, siamese: nn.Module | None, views: Sequence[dict[str, Tensor]], labels: Tensor
) -> list[Tensor]:
    """The one loss of a two-view run on a batch of view pairs; `net` returns (features, logits) (`train.Outputs`).

    `ce_aug`: CE(y, p1) + CE(y, p2); `self_kd`: plus α L_KL(p1, p2; τ) (eq. 2); `skd_srl`: plus β L_sim (eq. 3-5),
    with z, v from the pooled features r of each view."""
    modality = config.models[0].modality
    (f1, p1), (f2, p2) = (net(view[modality]) for view in views)
    recipe = config.recipe
    if config.method == "ce_aug":
        return [self_kd_loss(p1, p2, labels, alpha=0.0)]
    if config.method == "self_kd":
        return [self_kd_loss(p1, p2, labels, recipe.skd_alpha, recipe.skd_tau)]
    backbone = getattr(net, "network", net)
    (z1, v1), (z2, v2) = (siamese(pooled_features(backbone, f)) for f in (f1, f2))
    return [skd_srl_loss(p1, p2, z1, z2, v1, v2, labels, recipe.skd_alpha, recipe.skd_beta, recipe.skd_tau)]


def head_logits(fusion: LateFusion, inputs: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Every head's logits, keyed as `heads`."""
    fused, own = fusion({modality: inputs[modality] for modality in fusion.backbones})
    return {**own, FUSED: fused}


def fusion_losses(fusion: LateFusion, inputs: Mapping[str, Tensor], labels: Tensor, weights: Mapping[str, float]):
    """The blended loss (eq. 7) of the heads with a positive weight, as a one-element list. Heads of weight 0 are
    left out, so that their parameters get no gradient at all (and no weight decay): training with the weights
    {k: 1} trains only head k's network, as Algorithm 1 asks."""
    active = {head: weight for head, weight in weights.items() if weight > 0}
    logits = head_logits(fusion, inputs)
    return [blended_loss({head: F.cross_entropy(logits[head], labels) for head in active}, active)]


@torch.no_grad()
def mean_head_losses(fusion: LateFusion, clips: TrainClips, batch: int, device: str) -> dict[str, float]:
    """Every head's cross-entropy averaged over the clips (eval mode): Algorithm 1's L^{T'} or L^V."""
    fusion.eval()
    sums: dict[str, float] = {}
    for inputs, labels in DataLoader(clips, batch_size=batch, shuffle=False):
        logits = head_logits(fusion, {m: t.to(device) for m, t in inputs.items()})
        for head, values in logits.items():
            sums[head] = sums.get(head, 0.0) + F.cross_entropy(values, labels.to(device), reduction="sum").item()
    return {head: total / len(clips) for head, total in sums.items()}


def gblend_schedule(config: RunConfig) -> list[tuple[SuperEpoch, int]]:
    """Each super-epoch of a G-Blend run with the epochs n its estimate trains for: offline G-Blend has one
    super-epoch, the whole training (Algorithm 2), online G-Blend Algorithm 3's super-epochs. An estimate trains
    `gblend_estimate_epochs` epochs, or with 0 the super-epoch's length, as the algorithms print."""
    recipe = config.recipe
    if config.method == "gblend":
        schedule = [SuperEpoch(0, recipe.epochs)]
    else:
        schedule = online_schedule(recipe.epochs, recipe.gblend_super_epoch, recipe.gblend_warmup)
    return [(s, min(recipe.gblend_estimate_epochs or s.epochs, s.epochs)) for s in schedule]


class Snapshot:
    """The weights and optimiser states of some modules, to come back to after an estimate trained them."""

    def __init__(self, modules: Sequence[nn.Module], optimizers: Sequence[torch.optim.Optimizer]) -> None:
        self.modules, self.optimizers = modules, optimizers
        self.weights = [copy.deepcopy(m.state_dict()) for m in modules]
        self.states = [copy.deepcopy(o.state_dict()) for o in optimizers]

    def restore(self) -> None:
        for module, weights in zip(self.modules, self.weights, strict=True):
            module.load_state_dict(weights)
        for optimizer, state in zip(self.optimizers, self.states, strict=True):
            optimizer.load_state_dict(copy.deepcopy(state))  # a loaded state may alias the tensors it was given


def estimate_histories(
    names: Sequence[str],
    snapshot: Snapshot,
    train_head: Callable[[str], None],
    measure: Callable[[], tuple[dict[str, float], dict[str, float]]],
) -> dict[str, HeadLosses]:
    """Algorithm 1's measurements: every head's losses on T' and V now (checkpoint N), then, for each head, after
    training that head's network alone for n epochs from checkpoint N (`train_head`); the modules are back at
    checkpoint N afterwards. `measure` returns every head's mean loss on T' and on V."""
    train_start, val_start = measure()
    histories = {}
    for name in names:
        train_head(name)
        train_end, val_end = measure()
        histories[name] = HeadLosses(train_start[name], val_start[name], train_end[name], val_end[name])
        snapshot.restore()
    return histories


def weights_from(histories: Mapping[str, HeadLosses], previous: Mapping[str, float] | None) -> tuple[dict, str]:
    """G-Blend's weights from Algorithm 1's measurements, and a note; when no head generalised (the weights are
    undefined), the previous super-epoch's weights, or equal weights for the first."""
    try:
        return gblend_weights(histories), ""
    except ValueError as err:
        fallback = dict(previous) if previous else {name: 1 / len(histories) for name in histories}
        return fallback, f"{err}; kept {'the previous' if previous else 'equal'} weights"
