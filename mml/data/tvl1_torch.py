"""Batched TV-L1 optical flow in PyTorch, following OpenCV's ``cv::optflow::DualTVL1OpticalFlow`` step by step.

The Zach-Pock-Bischof duality method as OpenCV implements it, for N frame pairs of one size at once on any
device: the image pyramid (OpenCV's bilinear ``resize`` by ``scale_step`` with half-pixel centres, stopping below
16 px), the flow carried to the next finer scale by the same resize and multiplied by 1 / ``scale_step``, the
bicubic warp of the second image and its centred gradient (``remap``, zero outside the image), the thresholding
step, the dual update with OpenCV's forward gradient and divergence, the 5x5 median filter of the flow before each
outer iteration, and the stopping rule: a pair stops iterating within a warp once the squared change of its flow
falls to ``epsilon`` squared times its pixel count. Pairs that stopped are frozen while the others of the batch go
on, so a pair's flow does not depend on its batch.
Only ``gamma = 0`` (OpenCV's default, no illumination term) is implemented.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from mml.data.flow import quantize_flow

_FLT_EPSILON = 1.1920929e-07
_SMALLEST_SCALE = 16  # OpenCV builds no pyramid level narrower or lower than this


@dataclass(frozen=True)
class TVL1Parameters:
    """OpenCV's ``DualTVL1OpticalFlow`` parameters, with its defaults (``lambda`` is a keyword in Python)."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    scales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    median_filtering: int = 5

    def __post_init__(self) -> None:
        if self.median_filtering not in (0, 1, 3, 5):
            raise ValueError(
                f"median_filtering must be 0 or 1 (off), 3 or 5 (OpenCV's sizes for float flow), got "
                f"{self.median_filtering}"
            )


def tvl1(
    first: torch.Tensor,
    second: torch.Tensor,
    parameters: TVL1Parameters = TVL1Parameters(),
    compiled: bool = False,
) -> torch.Tensor:
    """TV-L1 flow from each image of `first` to the image of `second` at the same index.

    Args:
        first, second: (N, H, W) grey images on one device, values 0..255 (any float or integer dtype).
        compiled: run the inner iteration and the median filter through `torch.compile`, which fuses their
            elementwise operations into a few kernels (same result; the first call of each size compiles).

    Returns:
        (N, 2, H, W) float32 flow (x, y) in pixels, as ``DualTVL1OpticalFlow.calc`` gives for each pair.
    """
    if first.shape != second.shape or first.ndim != 3 or min(first.shape[1:]) < 3:
        raise ValueError(
            f"expected two (N, H, W) image batches of one shape, H, W >= 3, got {first.shape} and {second.shape}"
        )
    pyramid = _pyramid(first.float(), second.float(), parameters)
    coarsest = pyramid[-1][0]
    flow = coarsest.new_zeros(coarsest.shape[0], 2, *coarsest.shape[1:])
    for level, (image0, image1) in reversed(list(enumerate(pyramid))):
        flow = _one_scale(image0, image1, flow, parameters, _Steps.of(compiled))
        if level > 0:
            finer = (pyramid[level - 1][0].shape[1], pyramid[level - 1][0].shape[2])
            flow = _resize(flow, finer, (flow.shape[2] / finer[0], flow.shape[3] / finer[1])) / parameters.scale_step
    return flow


def tvl1_flow_torch(
    frames: np.ndarray, device: str = "cpu", batch_pairs: int = 32, compiled: bool = False
) -> np.ndarray:
    """Quantised TV-L1 flow between consecutive frames, like `mml.data.flow.tvl1_flow` but computed by `tvl1`.

    The frames are converted to grey by OpenCV, as for the reference, and their pairs are sent to `device`
    `batch_pairs` at a time (`compiled`: see `tvl1`).

    Args:
        frames: (N, H, W, 3) uint8 RGB frames, N >= 2.

    Returns:
        (N-1, H, W, 2) uint8 quantised flow (the cache's format); index k holds the flow from frame k to k+1.

    Raises:
        ValueError: if the array is not (N, H, W, 3) uint8 with N >= 2 and H, W >= 3 (the caller names the file).
    """
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 RGB frames, got {frames.shape} {frames.dtype}")
    if len(frames) < 2:
        raise ValueError(f"optical flow needs at least 2 frames, got {len(frames)}")
    grey = torch.from_numpy(np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in frames])).to(device)
    pairs = len(grey) - 1
    fields = []
    for start in range(0, pairs, batch_pairs):
        stop = min(start + batch_pairs, pairs)
        fields.append(tvl1(grey[start:stop], grey[start + 1 : stop + 1], compiled=compiled).cpu())
    return quantize_flow(torch.cat(fields).permute(0, 2, 3, 1).numpy())


def _pyramid(
    first: torch.Tensor, second: torch.Tensor, parameters: TVL1Parameters
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Both images at every scale, finest first: each level OpenCV's resize of the previous one by `scale_step`."""
    levels = [(first, second)]
    for _ in range(1, parameters.scales):
        height, width = levels[-1][0].shape[1:]
        size = (round(height * parameters.scale_step), round(width * parameters.scale_step))
        if min(size) < _SMALLEST_SCALE:
            break
        ratio = (1 / parameters.scale_step, 1 / parameters.scale_step)
        smaller_first, smaller_second = (_resize(image[:, None], size, ratio)[:, 0] for image in levels[-1])
        levels.append((smaller_first, smaller_second))
    return levels


def _resize(images: torch.Tensor, size: tuple[int, int], ratio: tuple[float, float]) -> torch.Tensor:
    """OpenCV's INTER_LINEAR resize of (N, C, H, W) images to `size`: output pixel d samples the input at
    (d + 0.5) * ratio - 0.5, clamped to the image, interpolating along x first, then y."""
    resized = images
    for dim, (length, step) in zip((3, 2), ((size[1], ratio[1]), (size[0], ratio[0]))):
        source = ((torch.arange(length, device=images.device, dtype=torch.float64) + 0.5) * step - 0.5).float()
        source = source.clamp(0, resized.shape[dim] - 1)
        low = source.floor()
        weight = (source - low).view([-1] + [1] * (3 - dim))
        low = low.long()
        high = (low + 1).clamp(max=resized.shape[dim] - 1)
        resized = resized.index_select(dim, low) * (1 - weight) + resized.index_select(dim, high) * weight
    return resized


@dataclass(frozen=True)
class _Steps:
    """The two hot functions of a scale, eager or compiled."""

    iterate: Callable
    median: Callable

    @staticmethod
    @functools.cache
    def of(compiled: bool) -> _Steps:
        if not compiled:
            return _Steps(_iterate, _median)
        return _Steps(torch.compile(_iterate), torch.compile(_median))


def _one_scale(
    image0: torch.Tensor, image1: torch.Tensor, flow: torch.Tensor, parameters: TVL1Parameters, steps: _Steps
) -> torch.Tensor:
    """Refine `flow` (N, 2, H, W) at one scale: `warps` warps, each iterating until each pair converges."""
    count, height, width = image0.shape
    warp_sources = torch.cat([image1[:, None], _centred_gradient(image1)], dim=1)  # I1, dI1/dx, dI1/dy
    dual = flow.new_zeros(count, 2, 2, height, width)  # [pair, flow component, gradient axis]
    threshold = parameters.lambda_ * parameters.theta
    converged_change = parameters.epsilon**2 * height * width
    for _ in range(parameters.warps):
        warped, gradient = _remap_bicubic(warp_sources, flow).split([1, 2], dim=1)
        norm = gradient.square().sum(dim=1, keepdim=True)
        data = _DataTerm(
            gradient=gradient,
            bound=threshold * norm,
            inverse_norm=torch.where(norm > _FLT_EPSILON, 1 / norm.clamp_min(_FLT_EPSILON), 0.0),
            residual=warped - (gradient * flow).sum(dim=1, keepdim=True) - image0[:, None],
        )
        active = torch.ones(count, dtype=torch.bool, device=flow.device)
        for _ in range(parameters.outer_iterations):
            if not active.any():
                break
            if parameters.median_filtering > 1:
                flow = _where_active(active, steps.median(flow, parameters.median_filtering), flow)
            for _ in range(parameters.inner_iterations):
                remaining = int(active.sum())
                if remaining == 0:
                    break
                new_flow, new_dual, change = steps.iterate(flow, dual, data, parameters)
                if remaining < count:
                    new_flow, new_dual = _where_active(active, new_flow, flow), _where_active(active, new_dual, dual)
                flow, dual = new_flow, new_dual
                active = active & (change > converged_change)
    return flow


@dataclass(frozen=True)
class _DataTerm:
    """What one warp fixes for its iterations: the warped gradient of the second image (N, 2, H, W), the
    thresholding bound lambda * theta * |gradient|^2 and 1 / |gradient|^2 (0 where it vanishes), and the linearised
    residual I1(x + u0) - gradient . u0 - I0 (each N, 1, H, W)."""

    gradient: torch.Tensor
    bound: torch.Tensor
    inverse_norm: torch.Tensor
    residual: torch.Tensor


def _iterate(
    flow: torch.Tensor, dual: torch.Tensor, data: _DataTerm, parameters: TVL1Parameters
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One inner iteration, as OpenCV orders it: the thresholding step (estimateV), the flow from it and the
    divergence of the dual field (estimateU), then the dual update from the new flow's forward gradient
    (estimateDualVariables). Returns the new flow, the new dual field and each pair's squared flow change."""
    threshold = parameters.lambda_ * parameters.theta
    dual_step = parameters.tau / parameters.theta
    rho = data.residual + (data.gradient * flow).sum(dim=1, keepdim=True)
    factor = torch.where(
        rho < -data.bound, threshold, torch.where(rho > data.bound, -threshold, -rho * data.inverse_norm)
    )
    new_flow = flow + factor * data.gradient + parameters.theta * _divergence(dual)
    change = (new_flow - flow).square().sum(dim=(1, 2, 3))
    derivative = _forward_gradient(new_flow)
    magnitude = torch.hypot(derivative[:, :, :1], derivative[:, :, 1:])
    new_dual = (dual + dual_step * derivative) / (1 + dual_step * magnitude)
    return new_flow, new_dual, change


def _where_active(active: torch.Tensor, updated: torch.Tensor, current: torch.Tensor) -> torch.Tensor:
    """`updated` for the pairs still iterating, `current` for those that stopped."""
    return torch.where(active.view([-1] + [1] * (updated.ndim - 1)), updated, current)


def _centred_gradient(image: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) half central differences, one-sided (still halved) on the border, as OpenCV's centeredGradient."""
    padded = F.pad(image[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    d_x = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
    d_y = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    return torch.stack([d_x, d_y], dim=1)


def _forward_gradient(flow: torch.Tensor) -> torch.Tensor:
    """(N, 2, 2, H, W) forward differences of each flow component, zero on the last column / row."""
    d_x = F.pad(flow[..., 1:] - flow[..., :-1], (0, 1))
    d_y = F.pad(flow[..., 1:, :] - flow[..., :-1, :], (0, 0, 0, 1))
    return torch.stack([d_x, d_y], dim=2)


def _divergence(dual: torch.Tensor) -> torch.Tensor:
    """(N, 2, H, W) backward-difference divergence of each (x, y) dual field, as OpenCV's divergence (outside the
    image counts as zero on the first column and row; the last column and row need no case)."""
    d_x = dual[:, :, 0] - F.pad(dual[:, :, 0, :, :-1], (1, 0))
    d_y = dual[:, :, 1] - F.pad(dual[:, :, 1, :-1, :], (0, 0, 1, 0))
    return d_x + d_y


def _remap_bicubic(images: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """OpenCV's bicubic remap (cubic coefficient -0.75) of (N, C, H, W) `images` at pixel + `flow`, zero outside the
    image. OpenCV 5 samples float images at the exact coordinates (older releases rounded them to 1/32 px)."""
    height, width = images.shape[2:]
    rows = torch.arange(height, device=flow.device, dtype=flow.dtype).view(-1, 1)
    columns = torch.arange(width, device=flow.device, dtype=flow.dtype)
    x, y = columns + flow[:, 0], rows + flow[:, 1]
    grid = torch.stack([x * (2 / (width - 1)) - 1, y * (2 / (height - 1)) - 1], dim=-1)
    return F.grid_sample(images, grid, mode="bicubic", padding_mode="zeros", align_corners=True)


def _median(flow: torch.Tensor, size: int) -> torch.Tensor:
    """`size` x `size` median of each flow component, the border replicated (OpenCV's medianBlur), computed by a
    sorting network over the shifted images: elementwise min / max, much faster than a median over windows."""
    height, width = flow.shape[2:]
    padded = F.pad(flow, [size // 2] * 4, mode="replicate")
    wires: list[torch.Tensor | None]  # None: a value no later exchange (nor the output) reads, freed early
    wires = [padded[..., dy : dy + height, dx : dx + width] for dy in range(size) for dx in range(size)]
    network, output = _MEDIAN_NETWORKS[size]
    for low, high, keep_low, keep_high in network:
        a, b = wires[low], wires[high]
        assert a is not None and b is not None  # the network keeps every value a later exchange reads
        smaller = torch.minimum(a, b) if keep_low else None
        larger = torch.maximum(a, b) if keep_high else None
        wires[low], wires[high] = smaller, larger
    median = wires[output]
    assert median is not None  # the output wire is needed, so it is kept
    return median


def _median_network(count: int) -> tuple[list[tuple[int, int, bool, bool]], int]:
    """The compare-exchanges of Batcher's odd-even merge sort of `count` values that the middle one depends on, as
    (wire of the minimum, wire of the maximum, whether each is needed later), and the wire holding the median.

    The sort runs over the next power of two; the wires past `count` hold +infinity, so their exchanges are either
    no-ops or plain swaps, which are done by renaming wires instead of computing."""
    size = 1 << (count - 1).bit_length()
    label = list(range(size))  # which physical wire holds sorted position i
    exchanges = []
    for low, high in _batcher_pairs(size):
        low_wire, high_wire = label[low], label[high]
        if high_wire >= count:  # the larger side holds +inf: nothing moves
            continue
        if low_wire >= count:  # the smaller side holds +inf: the values swap places
            label[low], label[high] = high_wire, low_wire
            continue
        exchanges.append((low_wire, high_wire))
    output = label[count // 2]
    needed, kept = {output}, []
    for low_wire, high_wire in reversed(exchanges):
        keep_low, keep_high = low_wire in needed, high_wire in needed
        if keep_low or keep_high:
            kept.append((low_wire, high_wire, keep_low, keep_high))
            needed |= {low_wire, high_wire}
    return kept[::-1], output


def _batcher_pairs(size: int) -> list[tuple[int, int]]:
    """Compare-exchange positions (smaller first) of Batcher's odd-even merge sort of `size` (a power of two)."""
    pairs = []
    block = 1
    while block < size:
        step = block
        while step >= 1:
            for start in range(step % block, size - step, 2 * step):
                for offset in range(min(step, size - start - step)):
                    i = start + offset
                    if i // (2 * block) == (i + step) // (2 * block):
                        pairs.append((i, i + step))
            step //= 2
        block *= 2
    return pairs


_MEDIAN_NETWORKS = {size: _median_network(size * size) for size in (3, 5)}  # the sizes medianBlur allows on floats
