"""How and where a run executes (device, workers, precision, memory format): never part of its identity."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from mml.spec import execution

M = TypeVar("M", bound=nn.Module)

PRECISIONS = ("fp32", "bf16")


@dataclass(frozen=True)
class Execution:
    """How and where to run: never part of a run's identity (`run.json` records the training settings).

    The speed settings default to the fp32-eager baseline; `for_device` turns them on for CUDA: bf16 autocast of
    the forward passes and losses (`precision`), channels_last weights and activations, `torch.compile` of each
    trained network, and cuDNN's autotuner. SGD uses PyTorch's multi-tensor (foreach) update on CUDA by default.
    """

    device: str = execution(default="cpu")
    workers: int = execution(default=0)  # data-loading processes during training and evaluation
    prepare_workers: int = execution(default=1)  # processes that decode videos and compute flow into the cache
    progress: bool = execution(default=True)
    precision: str = execution(default="fp32")  # "fp32", or "bf16": autocast of the forward passes and losses
    channels_last: bool = execution(default=False)
    compile: bool = execution(default=False)  # torch.compile each trained network
    cudnn_benchmark: bool = execution(default=False)

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"Execution: precision {self.precision!r} is not one of {', '.join(PRECISIONS)}")

    @classmethod
    def for_device(cls, device: str, fast: bool | None = None, **settings: object) -> Execution:
        """Settings for `device`: the fast ones on CUDA, the fp32-eager baseline elsewhere (or as `fast` says);
        `settings` override single ones, e.g. `compile=False`."""
        fast = device.startswith("cuda") if fast is None else fast
        defaults = {"precision": "bf16", "channels_last": True, "compile": True, "cudnn_benchmark": True}
        chosen = {key: value for key, value in settings.items() if value is not None}
        return cls(device=device, **({**defaults, **chosen} if fast else chosen))  # type: ignore[arg-type]

    def speed_record(self) -> dict[str, object]:
        """The speed settings a run was trained with, for its `run.json`."""
        return {"precision": self.precision, "channels_last": self.channels_last, "compile": self.compile}


def autocast(run: Execution) -> contextlib.AbstractContextManager:
    """bf16 autocast on the run's device type when `run.precision` asks for it; a no-op context otherwise."""
    device_type = torch.device(run.device).type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=run.precision == "bf16")


def prepared(network: M, run: Execution) -> M:
    """A network (moved to the device) in the run's memory format: channels_last (channels_last_3d for 3D convs)."""
    network = network.to(run.device)
    if run.channels_last:
        three_d = any(isinstance(module, nn.Conv3d) for module in network.modules())
        network = network.to(memory_format=torch.channels_last_3d if three_d else torch.channels_last)
    return network


def to_device(inputs: object, device: str) -> object:
    """Input tensors moved to `device`: a tensor, a dict per modality, or a pair of dicts (two views)."""
    if isinstance(inputs, torch.Tensor):
        return inputs.to(device, non_blocking=True)
    if isinstance(inputs, dict):
        return {modality: tensor.to(device, non_blocking=True) for modality, tensor in inputs.items()}
    return tuple(to_device(part, device) for part in inputs)  # type: ignore[attr-defined]
