"""Gradient-Blending (Wang, Tran & Feiszli, CVPR 2020, "What Makes Training Multi-Modal Classification Networks
Hard?"): the pure parts of §2.2-2.4 and Algorithms 1-3, without a training loop.

A late-fusion network (``mml.models.fusion.LateFusion``, the paper's Fig. 2c) has one head per modality and one
fused head. Algorithm 1 (``GB_Estimate``) trains, from the checkpoint at epoch N, each head's network for n epochs
on the training part of the data, measures each one's loss on a subset T' of that training part and on a held-out
part V of the training set, and turns the changes in those losses into one loss weight per head
(``gblend_weights``); training then minimises the blended loss of eq. 7 (``blended_loss``). Offline G-Blend
(Algorithm 2) estimates once; online G-Blend (Algorithm 3) re-estimates at the start of every super-epoch
(``online_schedule``). ``gblend_split`` draws T' and V.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


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


def blended_loss(head_losses: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """L_blend = Σ_k w_k L_k over every head (eq. 7), whose gradient is the blended gradient Σ_k w_k ∇L_k.

    Naive late fusion is ``weights = {FUSED: 1, <each modality>: 0}``. The heads of both mappings must agree, so
    that a head missing its weight fails loudly instead of dropping out of training.
    """
    if set(head_losses) != set(weights) or not head_losses:
        raise ValueError(f"blended_loss: heads of losses {sorted(head_losses)} and weights {sorted(weights)} differ")
    return torch.stack([weights[head] * loss for head, loss in head_losses.items()]).sum()


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
