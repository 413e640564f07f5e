"""Gradient-Blending (Wang, Tran & Feiszli, CVPR 2020, "What Makes Training Multi-Modal Classification Networks
Hard?"): §2.2-2.4 and Algorithms 1-3 on a late-fusion run (`mml.methods.late_fusion`).

A late-fusion network (``mml.models.fusion.LateFusion``, the paper's Fig. 2c) has one head per modality and one
fused head. Algorithm 1 (``GB_Estimate``) trains, from the checkpoint at epoch N, each head's network for n epochs
on the training part of the data, measures each one's loss on a subset T' of that training part and on a held-out
part V of the training set, and turns the changes in those losses into one loss weight per head
(``gblend_weights``); training then minimises the blended loss of eq. 7 (``blended_loss``). Offline G-Blend
(Algorithm 2, `gblend`) estimates once; online G-Blend (Algorithm 3, `gblend_online`) re-estimates at the start of
every super-epoch (``online_schedule``). ``gblend_split`` draws T' and V.

An estimate trains with the run's own epoch function (`Training.train_epoch`), so it trains exactly as the run
does; the estimates are part of the run's checkpointed state, so a resumed run trains with the weights it
estimated before the interruption.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch
from torch import nn

from mml.methods.base import Training
from mml.methods.late_fusion import LateFusionMethod, by_modality, heads, mean_head_losses
from mml.methods.settings import MethodSettings
from mml.models.fusion import FUSED
from mml.seeding import ESTIMATE_SEED, SPLIT_SEED, derive_seed

if TYPE_CHECKING:
    from mml.store import RunConfig


@dataclass(frozen=True)
class HeadLosses:
    """One head's average losses on T' and V at checkpoints N and N + n (Algorithm 1's measurements).

    V stands in for the target distribution (the paper's L^V ≈ L^*, §2.4). Attributes are named after the
    paper's symbols: ``train_start`` is L^{T'}_N, ``val_end`` is L^V_{N+n}, and so on.
    """

    train_start: float
    val_start: float
    train_end: float
    val_end: float

    def __post_init__(self) -> None:
        """Reject non-finite losses, which would silently poison every weight through the normaliser."""
        values = (self.train_start, self.val_start, self.train_end, self.val_end)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"HeadLosses needs finite losses, got {values}")

    @property
    def delta_overfitting(self) -> float:
        """ΔO = O_{N+n} − O_N with O_N = L^V_N − L^{T'}_N, the train/validation gap (§2.2, Fig. 3)."""
        return (self.val_end - self.train_end) - (self.val_start - self.train_start)

    @property
    def delta_generalization(self) -> float:
        """ΔG = L^V_N − L^V_{N+n}, the gain on the validation loss (the denominator of eq. 3)."""
        return self.val_start - self.val_end


def overfitting_to_generalization_ratio(losses: HeadLosses) -> float:
    """OGR = |ΔO / ΔG| between checkpoints N and N + n (eq. 3); ``math.inf`` when ΔG = 0 (nothing generalised)."""
    gain = losses.delta_generalization
    return math.inf if gain == 0 else abs(losses.delta_overfitting / gain)


def gblend_weights(histories: Mapping[str, HeadLosses]) -> dict[str, float]:
    """G-Blend loss weights w_k = ΔG_k / (Z ΔO_k²), normalised to sum to 1 (Algorithm 1's last line, eq. 6).

    Eq. 6 prints Z = Σ_k ΔG_k / (2 ΔO_k²); the factor 2 contradicts Proposition 1's constraint Σ_k w_k = 1, which
    we follow: Z = Σ_k ΔG_k / ΔO_k². The sign of ΔO does not matter (it is squared). The paper is silent on two
    degenerate cases; our choices:

    - ΔG_k <= 0 (the head's validation loss did not improve): weight 0. Proposition 1 allows w_k < 0, but a
      negative loss weight would train that head to increase its loss.
    - ΔO_k = 0 with ΔG_k > 0: the limit ΔO_k → 0 of the formula, i.e. all weight goes to such heads, shared in
      proportion to their ΔG_k.

    Args:
        histories: Each head's losses (modality names and the fused head, e.g. ``mml.models.fusion.FUSED``).

    Returns:
        The weight of each head, in the order of ``histories``.

    Raises:
        ValueError: No heads, or no head generalised (every ΔG_k <= 0), so that no weighting is defined; the
            caller decides what to train with then (e.g. the previous super-epoch's weights).
    """
    if not histories:
        raise ValueError("gblend_weights needs at least one head")
    gains = {head: max(losses.delta_generalization, 0.0) for head, losses in histories.items()}
    if not any(gains.values()):
        raise ValueError(f"G-Blend weights undefined: no head's validation loss decreased ({dict(histories)})")
    flat = {head: gain for head, gain in gains.items() if gain > 0 and histories[head].delta_overfitting == 0}
    if flat:
        raw = {head: flat.get(head, 0.0) for head in histories}
    else:
        raw = {head: gain / histories[head].delta_overfitting ** 2 if gain > 0 else 0.0 for head, gain in gains.items()}
    total = sum(raw.values())
    return {head: value / total for head, value in raw.items()}


class SuperEpoch(NamedTuple):
    """A stretch of training with one set of G-Blend weights, estimated at ``start`` over ``epochs`` epochs."""

    start: int
    epochs: int


def online_schedule(total_epochs: int, super_epoch: int, warmup: int | None = None) -> list[SuperEpoch]:
    """The super-epochs of online G-Blend (Algorithm 3): each one starts with a weight estimate, then trains.

    Algorithm 3 re-estimates every n epochs (super-epochs N_i = i·n); §3.2 uses a longer first super-epoch
    ("an initial super-epoch size of 10 (for warmup), and a super-epoch size of 5 thereafter", re-estimating at
    epochs 0, 10, 15, ..., 40 of 45), which ``warmup`` gives. Algorithm 3 passes ``N_i + n`` as Algorithm 1's
    "# of epochs"; we read it as n, the super-epoch's length, since Algorithm 1 trains from φ^{N_i} for that many
    epochs. When the lengths do not divide ``total_epochs`` (Algorithm 3 assumes they do), the last super-epoch is
    shortened to end at ``total_epochs``. Offline G-Blend (Algorithm 2) is ``online_schedule(N, N)``: one
    estimate over the whole training.
    """
    if total_epochs < 1 or super_epoch < 1 or (warmup is not None and warmup < 1):
        raise ValueError(
            f"online_schedule needs positive lengths, got total_epochs={total_epochs}, "
            f"super_epoch={super_epoch}, warmup={warmup}"
        )
    schedule = []
    start = 0
    length = super_epoch if warmup is None else warmup
    while start < total_epochs:
        schedule.append(SuperEpoch(start, min(length, total_epochs - start)))
        start += length
        length = super_epoch
    return schedule


class GBlendSplit(NamedTuple):
    """Indices into a training set: ``train`` to train on (T without V), ``train_subset`` T' ⊆ ``train`` to
    measure the training loss on, and ``holdout`` V, held out of training to stand in for the target distribution.
    """

    train: list[int]
    train_subset: list[int]
    holdout: list[int]


def gblend_split(
    num_examples: int, *, holdout_fraction: float, seed: int, train_subset_size: int | None = None
) -> GBlendSplit:
    """Split a training set for G-Blend (§2.4, "we hold out a subset V of the training set", "a subset of training
    set T' to measure train loss"), deterministically from ``seed``.

    The paper holds out 8% (Kinetics, mini-Sports) or 13% (mini-AudioSet) and does not give |T'|; by default T'
    has as many examples as V, so that both losses are averages over equally many clips. Each index list is sorted.

    Args:
        num_examples: Size of the training set (>= 2).
        holdout_fraction: Fraction held out as V, in (0, 1); rounded to a count and kept in [1, num_examples - 1].
        seed: Seed of the draw (numpy's ``SeedSequence``: stable across machines and versions).
        train_subset_size: |T'|; defaults to |V|, capped at the training part's size.
    """
    if num_examples < 2:
        raise ValueError(f"gblend_split needs at least 2 examples, got {num_examples}")
    if not 0 < holdout_fraction < 1:
        raise ValueError(f"gblend_split: holdout_fraction must be in (0, 1), got {holdout_fraction}")
    held = min(max(round(holdout_fraction * num_examples), 1), num_examples - 1)
    subset = held if train_subset_size is None else train_subset_size
    if subset < 1:
        raise ValueError(f"gblend_split: train_subset_size must be positive, got {train_subset_size}")
    rng = np.random.default_rng(np.random.SeedSequence(seed))
    order = rng.permutation(num_examples)
    train = np.sort(order[held:])
    train_subset = np.sort(rng.choice(train, size=min(subset, len(train)), replace=False))
    return GBlendSplit(train.tolist(), train_subset.tolist(), np.sort(order[:held]).tolist())


@dataclass(frozen=True)
class GBlendSettings(MethodSettings):
    """The held-out fraction V of the training videos (8 % on Kinetics, §3.1); the epochs n each weight estimate
    trains (0: as Algorithms 2 and 3 print, the whole training offline, the super-epoch online); online G-Blend's
    super-epoch and its longer first one (5 and 10 in §3.2)."""

    namespace = "gblend"
    limits = {"holdout": (lambda v: 0 < v < 1, "must be a fraction in (0, 1)")}
    zero_allowed = frozenset({"estimate_epochs"})  # 0: the whole super-epoch
    holdout: float = 0.08
    estimate_epochs: int = 0
    super_epoch: int = 5
    warmup: int = 10


def gblend_schedule(config: RunConfig, online: bool) -> list[tuple[SuperEpoch, int]]:
    """Each super-epoch of a G-Blend run with the epochs n its estimate trains for: offline G-Blend has one
    super-epoch, the whole training (Algorithm 2), online G-Blend Algorithm 3's super-epochs. An estimate trains
    `gblend.estimate_epochs` epochs, or with 0 the super-epoch's length, as the algorithms print."""
    epochs, settings = config.recipe.epochs, config.recipe.settings(GBlendSettings)
    if online:
        schedule = online_schedule(epochs, settings.super_epoch, settings.warmup)
    else:
        schedule = [SuperEpoch(0, epochs)]
    return [(s, min(settings.estimate_epochs or s.epochs, s.epochs)) for s in schedule]


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


@dataclass(frozen=True)
class GBlend(LateFusionMethod):
    """Late fusion trained with G-Blend's weights: estimated once (offline) or every super-epoch (`online`), on
    training videos T without the held-out V."""

    online: bool = False

    def split(self, config: RunConfig, count: int) -> GBlendSplit:
        """The run's T, T' and V among its `count` training videos."""
        seed = derive_seed(config.seed, config.replica, SPLIT_SEED)
        return gblend_split(count, holdout_fraction=config.recipe.settings(GBlendSettings).holdout, seed=seed)

    def training_videos(self, config: RunConfig, count: int) -> list[int]:
        return self.split(config, count).train  # T: V is held out of training (G-Blend §2.4)

    def before_epoch(self, training: Training, epoch: int) -> None:
        training.heads = self.weights(training, epoch)

    def weights(self, training: Training, epoch: int) -> dict[str, float]:
        """The weights epoch `epoch` trains with: estimated (Algorithm 1) at the start of each super-epoch and kept
        in the run's state (`gblend`).

        The estimate trains each head's network alone (`heads` set to {head: 1}) for n epochs on T with the run's
        own epoch function, measures every head's loss on T' and V before and after, and puts the modules and
        optimisers back as they were."""
        config = training.config
        estimates = training.state.setdefault("gblend", [])
        started = [item for item in gblend_schedule(config, self.online) if item[0].start <= epoch]
        super_epoch, length = max(started, key=lambda item: item[0].start)
        done = [e for e in estimates if e["start"] == super_epoch.start]
        if done:
            return done[0]["weights"]
        recipe, names = config.recipe, heads(config)
        seed = derive_seed(config.seed, config.replica, ESTIMATE_SEED)
        split = self.split(config, training.videos)
        measured = []
        for part in (split.train_subset, split.holdout):
            clips = training.clips(part, seed)
            clips.epoch = super_epoch.start  # the same clips at checkpoints N and N + n
            measured.append(clips)
        backbones, fused_head = by_modality(config, training.models), training.auxiliary[FUSED]

        def measure() -> tuple[dict[str, float], dict[str, float]]:
            train_subset, holdout = measured
            return (
                mean_head_losses(backbones, fused_head, train_subset, recipe.batch_size, training.device),
                mean_head_losses(backbones, fused_head, holdout, recipe.batch_size, training.device),
            )

        def train_head(name: str) -> None:
            training.heads = {name: 1.0}
            for offset in range(length):
                at = super_epoch.start + offset
                desc = f"{config.run_id} G-Blend estimate: {name} head, epoch {at + 1}"
                training.train_epoch(at, (ESTIMATE_SEED, super_epoch.start, names.index(name), offset), desc)

        snapshot = Snapshot([m for m, _ in training.parts], [o for _, o in training.parts])
        histories = estimate_histories(names, snapshot, train_head, measure)
        weights, note = weights_from(histories, estimates[-1]["weights"] if estimates else None)
        losses = {name: dataclasses.astuple(history) for name, history in histories.items()}
        estimates.append(
            {"start": super_epoch.start, "epochs": length, "weights": weights, "losses": losses, "note": note}
        )
        return weights


GBLEND = GBlend("gblend", settings=GBlendSettings, reads=("holdout", "estimate_epochs"))
GBLEND_ONLINE = GBlend("gblend_online", online=True, settings=GBlendSettings, reads=GBlendSettings.names())
