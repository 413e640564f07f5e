"""TV-L1 optical flow through OpenCV (the CPU reference) and its 8-bit quantisation.

The original pipeline stores flow as grey JPEGs; the usual TSN convention (dense_flow) clips each component to
±20 px and maps it linearly to 0..255, which is what we store. Setting OpenCV's thread count (e.g.
``cv2.setNumThreads(1)`` in worker processes) is the caller's job (the flow does not depend on it); this module
leaves OpenCV's global state as it found it.

The flow is computed by OpenCV's baseline code (``cv2.setUseOptimized(False)`` for the call): its AVX2 / AVX-512
dispatch and Intel IPP otherwise give other flow on other CPUs, while the baseline gives the same on every x86-64
CPU, at the same speed (docs/guarantees.md).
"""

import contextlib
from collections.abc import Iterator

import cv2
import numpy as np

FLOW_BOUND = 20.0
_LEVELS = 255.0


def quantize_flow(flow: np.ndarray) -> np.ndarray:
    """Clip flow to ±FLOW_BOUND and map it to uint8: q = round((f + B) * 255 / (2B)), rounding half to even."""
    clipped = np.clip(np.asarray(flow, dtype=np.float32), -FLOW_BOUND, FLOW_BOUND)
    return np.rint((clipped + FLOW_BOUND) * (_LEVELS / (2 * FLOW_BOUND))).astype(np.uint8)


def dequantize_flow(quantized: np.ndarray) -> np.ndarray:
    """Invert `quantize_flow` up to half a step (40/255/2 px): f = q * 2B / 255 - B, as float32."""
    return (np.asarray(quantized, dtype=np.float32) * (2 * FLOW_BOUND / _LEVELS) - FLOW_BOUND).astype(np.float32)


def tvl1_flow(frames: np.ndarray) -> np.ndarray:
    """Quantised TV-L1 flow between each pair of consecutive frames.

    Frames are converted to grey and passed to one ``cv2.optflow.DualTVL1OpticalFlow`` with OpenCV's default
    parameters (a fresh instance per call, so calls share no state).

    Args:
        frames: (N, H, W, 3) uint8 RGB frames, N >= 2.

    Returns:
        (N-1, H, W, 2) uint8 quantised flow; index k holds (x, y) flow from frame k to frame k+1.

    Raises:
        ValueError: if the array is not (N, H, W, 3) uint8 with N >= 2 (the caller names the file).
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 RGB frames, got {frames.shape} {frames.dtype}")
    if len(frames) < 2:
        raise ValueError(f"optical flow needs at least 2 frames, got {len(frames)}")
    estimator = cv2.optflow.DualTVL1OpticalFlow_create()  # type: ignore[attr-defined]  # opencv-contrib: no stubs
    grey = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames]
    with baseline_code():
        flows = [estimator.calc(previous, following, None) for previous, following in zip(grey[:-1], grey[1:])]
    return quantize_flow(np.stack(flows))


@contextlib.contextmanager
def baseline_code() -> Iterator[None]:
    """OpenCV without its CPU-dispatched kernels and IPP inside the block (the same code on every CPU), as before
    afterwards."""
    optimized = cv2.useOptimized()
    cv2.setUseOptimized(False)
    try:
        yield
    finally:
        cv2.setUseOptimized(optimized)
