"""Inference cost: GFLOPs of one test clip through a run's model, counted by torch, never written down by hand.

`torch.utils.flop_counter.FlopCounterMode` counts the floating-point operations of the convolutions and matrix
products (2 per multiply-accumulate) of one forward pass; elementwise work (BN, ReLU, pooling) is not counted, as
is usual for GFLOPs tables. The count depends on the architecture, the modality and the input size only, so it is
measured on a zero clip of the test input's shape with freshly initialised weights.
"""

from __future__ import annotations

import functools

import torch
from torch.utils.flop_counter import FlopCounterMode

from mml.data.modalities import MODALITIES
from mml.methods import METHODS
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
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        net.eval()(inputs)
    return counter.get_total_flops() / 1e9
