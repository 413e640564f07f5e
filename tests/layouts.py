"""Checkpoint layouts of other code bases, written by the tests themselves (the original TSM / MML code's)."""

from pathlib import Path

import torch
from torch import Tensor

from mml.models.tsm import Bottleneck, TSMResNet


def original_layout(model: TSMResNet) -> dict[str, Tensor]:
    """``model``'s state dict as the original TSM / MML code names it: DataParallel, base_model, .net, new_fc."""
    shifted = {f"{name}.conv1." for name, m in model.named_modules() if isinstance(m, Bottleneck) and m.shift}
    state = {}
    for key, value in model.state_dict().items():
        prefix = next((p for p in shifted if key.startswith(p)), None)
        if prefix is not None:
            key = f"{prefix}net.{key.removeprefix(prefix)}"
        state["module.new_fc." + key.removeprefix("fc.") if key.startswith("fc.") else "module.base_model." + key] = (
            value
        )
    return state


def save_original(model: TSMResNet, path: Path) -> Path:
    torch.save({"epoch": 25, "arch": "resnet50", "state_dict": original_layout(model), "best_prec1": 61.3}, path)
    return path
