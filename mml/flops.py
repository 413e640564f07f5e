"""Counting a forward pass's GFLOPs with torch's FLOP counter, one rule for the reports and for methods that weigh
modalities by their cost.

`torch.utils.flop_counter.FlopCounterMode` counts the floating-point operations of the convolutions and matrix
products (2 per multiply-accumulate); elementwise work (BN, ReLU, pooling) is not counted, as is usual for GFLOPs
tables.
"""

from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def forward_gflops(module: nn.Module, *args: Any, **kwargs: Any) -> float:
    """GFLOPs of `module(*args, **kwargs)` in eval mode without gradients; the module's train/eval mode (and so its
    BatchNorm statistics) is left as it was."""
    training = module.training
    counter = FlopCounterMode(display=False)
    try:
        with torch.no_grad(), counter:
            module.eval()(*args, **kwargs)
    finally:
        module.train(training)
    return counter.get_total_flops() / 1e9
