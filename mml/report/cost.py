"""Inference cost: GFLOPs of one test clip (or video) through a run's model, counted by torch, never written down by
hand.

`torch.utils.flop_counter.FlopCounterMode` counts the floating-point operations of the convolutions and matrix
products (2 per multiply-accumulate) of one forward pass; elementwise work (BN, ReLU, pooling) is not counted, as
is usual for GFLOPs tables. The count depends on the architecture, the modality and the input size only, so it is
measured on a zero clip of the test input's shape with freshly initialised weights.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import Protocol, cast

import numpy as np
import torch

from mml.data.modalities import MODALITIES
from mml.flops import forward_gflops
from mml.methods import METHODS
from mml.models.adaptive import PolicyNetwork
from mml.networks import network
from mml.spec import ViewProtocol
from mml.store import RunConfig


@functools.cache
def inference_gflops(config: RunConfig, model: int, views: ViewProtocol) -> float:
    """GFLOPs of one clip of `views`' test input through model `model` of a run: model i alone, or for an evaluated
    head beyond the models (a late-fusion run's fused head, index M) its whole network, every branch included."""
    size = views.crop_side(config.recipe)
    segments = config.recipe.segments

    def clip(modality: str) -> torch.Tensor:
        return torch.zeros(1, segments * MODALITIES[modality].channels, size, size)

    inputs: dict[str, torch.Tensor] | torch.Tensor  # every branch's clips (a fused head) or the one model's
    if model >= len(config.models):
        branches = [network(config, m.modality) for m in config.models]
        net = METHODS[config.method].evaluation_heads(config, branches, None)[model - len(config.models)]
        inputs = {m.modality: clip(m.modality) for m in config.models}
    else:
        modality = config.models[model].modality
        net, inputs = network(config, modality), clip(modality)
    return forward_gflops(net, inputs)


def video_gflops(config: RunConfig, model: int, views: ViewProtocol, decisions: np.ndarray | None = None) -> float:
    """GFLOPs of one test video under `views` through model `model` of a run: every test clip of it; for a head that
    takes whole videos (an AdaMML network or its weighted fusion), each recognition network on the segments selected
    (`decisions`, videos x segments x modalities as stored with its scores; every segment when None) and the
    policy, if any, on every segment (`adaptive_gflops`). Flow extraction is not counted (as in AdaMML's tables)."""
    segment_costs = _video_head_costs(config, model, views)
    if segment_costs is None:
        return inference_gflops(config, model, views) * clips_per_video(views)
    per_segment, policy, segments = segment_costs
    selection = [1.0] * len(per_segment) if decisions is None else decisions.mean(axis=(0, 1)).tolist()
    return adaptive_gflops(per_segment, selection, policy, segments)


@functools.cache
def _video_head_costs(
    config: RunConfig, model: int, views: ViewProtocol
) -> tuple[tuple[float, ...], float, int] | None:
    """For a head that takes whole videos: each recognition network's GFLOPs per test segment, the policy's (0
    without one) and the segments per video; None for a single model or a head of clips. Cached like
    `inference_gflops`, so that the networks are built once per run, not once per cell and seed."""
    if model < len(config.models):
        return None
    branches = [network(config, m.modality) for m in config.models]
    head = METHODS[config.method].evaluation_heads(config, branches, None)[model - len(config.models)]
    if not getattr(head, "per_video", False):
        return None
    adaptive = cast("_VideoHead", head)
    segments = METHODS[config.method].head_views(config, views)
    per_segment = tuple(inference_gflops(config, index, segments) for index in range(len(config.models)))
    policy = 0.0 if adaptive.policy is None else policy_gflops(adaptive.policy, adaptive.policy_shapes())
    return per_segment, policy, clips_per_video(segments)


class _VideoHead(Protocol):
    """A head that takes whole videos (`mml.methods.adamml.AdaptiveNetwork`): its policy and what the policy sees."""

    policy: PolicyNetwork | None

    def policy_shapes(self) -> dict[str, tuple[int, int, int]]: ...


def clips_per_video(views: ViewProtocol) -> int:
    """How many clips a test video is cut into under `views`: its temporal views times its spatial crops."""
    return (views.dense + views.uniform) * views.crops


def adaptive_gflops(recognition: Sequence[float], selection: Sequence[float], policy: float, segments: int) -> float:
    """AdaMML's GFLOPs per video: Σ_m recognition[m] · segments · selection[m] + policy · segments.

    The policy runs on every segment whatever it selects; a recognition network only where selected (the
    original's ``flops_computation``, with dataset-average selection ratios, so this is an average per video).

    Args:
        recognition: GFLOPs of one segment through each recognition modality's network.
        selection: Fraction of segments in [0, 1] that use each modality, in the same order.
        policy: Policy GFLOPs per segment (``policy_gflops``).
        segments: Segments per video S.
    """
    if len(recognition) != len(selection):
        raise ValueError(f"adaptive_gflops: {len(recognition)} recognition costs but {len(selection)} selection ratios")
    if any(not 0 <= ratio <= 1 for ratio in selection):
        raise ValueError(f"adaptive_gflops: selection ratios must lie in [0, 1], got {list(selection)}")
    if segments < 1:
        raise ValueError(f"adaptive_gflops: segments must be >= 1, got {segments}")
    return sum(cost * segments * ratio for cost, ratio in zip(recognition, selection)) + policy * segments


def policy_gflops(network: PolicyNetwork, inputs: Mapping[str, tuple[int, ...]]) -> float:
    """GFLOPs of one segment through an AdaMML policy, counted on a zero segment (N = 1, S = 1) in eval mode, as
    ``inference_gflops`` counts. Includes the joint MLP, LSTM and heads, which the original's hand count leaves out.

    Args:
        network: The policy; its train/eval mode is restored afterwards.
        inputs: Each policy modality's per-segment input shape ``(frames * C, H, W)``.
    """
    return forward_gflops(network, {name: torch.zeros(1, 1, *shape) for name, shape in inputs.items()}, 1.0, False)
