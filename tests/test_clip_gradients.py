"""Gradient clipping: the recipe's norm bound, and 0 meaning no clipping (not zeroed gradients)."""

import pytest
import torch
from torch import nn

from mml.train import clip_gradients


def _with_gradient(value: float) -> nn.Linear:
    layer = nn.Linear(2, 1, bias=False)
    layer.weight.grad = torch.full_like(layer.weight, value)
    return layer


def test_clipping_bounds_the_gradient_norm() -> None:
    layer = _with_gradient(3.0)  # norm 3 * sqrt(2)
    clip_gradients(layer, 1.0)
    assert layer.weight.grad.norm().item() == pytest.approx(1.0, rel=1e-5)


def test_zero_turns_clipping_off() -> None:
    layer = _with_gradient(3.0)
    clip_gradients(layer, 0.0)
    assert torch.equal(layer.weight.grad, torch.full((1, 2), 3.0))
