"""Which TV-L1 implementation fills the flow cache: OpenCV on the CPU (the reference, the default) or our batched
PyTorch port (`mml.data.tvl1_torch`) on a device. The choice is execution-only: both write the same 8-bit ±20 px
fields, and a cache filled by one is read like one filled by the other."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mml import numerics, validation
from mml.data.flow import tvl1_flow
from mml.data.tvl1_torch import tvl1_flow_torch
from mml.errors import InvalidValue

FLOW_BACKENDS = ("opencv", "torch")


@dataclass(frozen=True)
class FlowBackend:
    """`name` ("opencv" or "torch"); for torch, its `device`, how many pairs of a video it sends per call and whether
    it runs its hot loop through torch.compile (see `mml.data.tvl1_torch.tvl1`)."""

    name: str = "opencv"
    device: str = "cpu"
    batch_pairs: int = 32
    compiled: bool = False

    def __post_init__(self) -> None:
        """Check each setting, named by its command-line option."""
        validation.one_of("--flow", self.name, FLOW_BACKENDS)
        opencv = self.name == "opencv"
        validation.require(
            not opencv or self.device == "cpu",
            "--flow-device",
            f"{self.device!r}: the opencv backend runs on the cpu only (use --flow torch)",
        )
        try:
            device = torch.device(self.device)
        except RuntimeError as error:
            raise InvalidValue("--flow-device", f"{self.device!r}: {error}") from None
        validation.require(
            device.type != "cuda" or torch.cuda.is_available(),
            "--flow-device",
            f"{self.device!r}: CUDA is not available on this machine",
        )
        validation.require(
            not (opencv and self.compiled), "--flow-compile", "only the torch backend compiles (use --flow torch)"
        )
        validation.require(
            not (self.compiled and device.type == "cpu" and numerics.mode() == "portable"),
            "--flow-compile",
            f"compiled CPU code is built for this CPU, not portable numerics (set {numerics.VARIABLE}=native)",
        )
        validation.positive("--flow-batch", self.batch_pairs)

    def flow(self, frames: np.ndarray) -> np.ndarray:
        """Quantised flow (N-1, H, W, 2) uint8 between consecutive frames (N, H, W, 3) uint8 RGB.

        Raises:
            ValueError: frames that are not (N, H, W, 3) uint8 with N >= 2 (the caller names the file).
        """
        if self.name == "opencv":
            return tvl1_flow(frames)
        return tvl1_flow_torch(frames, self.device, self.batch_pairs, self.compiled)


OPENCV = FlowBackend()  # the default: the reference implementation
