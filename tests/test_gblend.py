"""Gradient-Blending's pure parts: Algorithm 1's weights on a hand-made loss history, the super-epochs of
Algorithm 3, the blended loss of eq. 7 and the deterministic T' / V split."""

import math

import pytest
import torch

from mml.methods.gblend import (
    HeadLosses,
    SuperEpoch,
    gblend_split,
    gblend_weights,
    online_schedule,
    overfitting_to_generalization_ratio,
)
from mml.methods.late_fusion import blended_loss

# Losses (T' at N, V at N, T' at N + n, V at N + n) of each head, chosen so that the arithmetic is easy to follow.
HISTORY = {
    "RGB": HeadLosses(train_start=2.0, val_start=2.1, train_end=1.0, val_end=1.5),
    "Flow": HeadLosses(train_start=2.0, val_start=2.05, train_end=1.2, val_end=1.45),
    "fused": HeadLosses(train_start=2.0, val_start=2.1, train_end=0.5, val_end=1.9),
}


def test_overfitting_and_generalisation_by_hand() -> None:
    rgb = HISTORY["RGB"]
    # O_N = 2.1 - 2.0 = 0.1, O_{N+n} = 1.5 - 1.0 = 0.5, so ΔO = 0.4; ΔG = 2.1 - 1.5 = 0.6.
    assert rgb.delta_overfitting == pytest.approx(0.4)
    assert rgb.delta_generalization == pytest.approx(0.6)
    assert overfitting_to_generalization_ratio(rgb) == pytest.approx(0.4 / 0.6)
    assert overfitting_to_generalization_ratio(HeadLosses(1, 1, 0.5, 1)) == math.inf


def test_weights_match_algorithm_1_by_hand() -> None:
    # w_k ∝ ΔG_k / ΔO_k²: RGB 0.6 / 0.4² = 3.75, Flow 0.6 / 0.2² = 15, fused 0.2 / 1.3² = 0.2 / 1.69.
    raw = {"RGB": 3.75, "Flow": 15.0, "fused": 0.2 / 1.69}
    total = sum(raw.values())
    weights = gblend_weights(HISTORY)
    assert list(weights) == ["RGB", "Flow", "fused"]
    assert weights == pytest.approx({head: value / total for head, value in raw.items()})
    assert sum(weights.values()) == pytest.approx(1.0)


def test_degenerate_heads() -> None:
    worse = {**HISTORY, "Flow": HeadLosses(2.0, 2.0, 1.0, 2.5)}  # ΔG < 0: weight 0
    weights = gblend_weights(worse)
    assert weights["Flow"] == 0 and weights["RGB"] == pytest.approx(3.75 / (3.75 + 0.2 / 1.69))
    flat = {**HISTORY, "Flow": HeadLosses(2.0, 2.0, 1.0, 1.0)}  # ΔO = 0, ΔG = 1: all the weight
    assert gblend_weights(flat) == {"RGB": 0.0, "Flow": 1.0, "fused": 0.0}
    with pytest.raises(ValueError, match="no head's validation loss decreased"):
        gblend_weights({"RGB": HeadLosses(1.0, 1.0, 0.5, 1.2)})
    with pytest.raises(ValueError, match="finite"):
        HeadLosses(1.0, math.nan, 0.5, 1.0)


def test_online_schedule() -> None:
    paper = online_schedule(45, 5, warmup=10)  # §3.2: estimates at epochs 0, 10, 15, ..., 40
    assert [s.start for s in paper] == [0, 10, 15, 20, 25, 30, 35, 40]
    assert paper[0] == SuperEpoch(0, 10) and paper[-1] == SuperEpoch(40, 5)
    assert online_schedule(7, 3) == [SuperEpoch(0, 3), SuperEpoch(3, 3), SuperEpoch(6, 1)]
    assert online_schedule(10, 10) == [SuperEpoch(0, 10)]  # offline G-Blend: one estimate
    with pytest.raises(ValueError):
        online_schedule(10, 0)


def test_blended_loss_is_the_weighted_sum() -> None:
    losses = {"RGB": torch.tensor(2.0), "fused": torch.tensor(4.0)}
    assert blended_loss(losses, {"RGB": 0.25, "fused": 0.75}).item() == pytest.approx(0.5 + 3.0)
    with pytest.raises(ValueError, match="differ"):
        blended_loss(losses, {"RGB": 1.0})


def test_split_is_deterministic_disjoint_and_sized() -> None:
    split = gblend_split(50, holdout_fraction=0.2, seed=7)
    assert split == gblend_split(50, holdout_fraction=0.2, seed=7)
    assert split != gblend_split(50, holdout_fraction=0.2, seed=8)
    assert len(split.holdout) == 10 and len(split.train) == 40 and len(split.train_subset) == 10
    assert not set(split.train) & set(split.holdout) and set(split.train) | set(split.holdout) == set(range(50))
    assert set(split.train_subset) <= set(split.train)
    assert len(gblend_split(50, holdout_fraction=0.2, seed=7, train_subset_size=100).train_subset) == 40
    with pytest.raises(ValueError):
        gblend_split(1, holdout_fraction=0.5, seed=0)
