"""Modalities (RGB, Flow, Diff) and the conversion of a clip's sampled frames into one model input tensor.

Per segment, RGB reads 1 frame (3 channels), Flow 5 quantised flow fields interleaved x0, y0, x1, y1, ...
(10 channels) and Diff 6 frames whose 5 forward differences give 15 channels (original-code.md §2).
"""

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mml.data.sampling import frame_indices
from mml.data.transforms import CropBox

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Modality:
    """One input modality: its channels per segment, frames per segment and per-channel normalisation."""

    name: str
    channels: int
    new_length: int
    mean: tuple[float, ...]
    std: tuple[float, ...]


MODALITIES = {
    "RGB": Modality("RGB", 3, 1, IMAGENET_MEAN, IMAGENET_STD),
    "Flow": Modality("Flow", 10, 5, (0.5,) * 10, (0.226,) * 10),
    "Diff": Modality("Diff", 15, 6, (0.0,) * 15, (1.0,) * 15),
}


def modality(name: str) -> Modality:
    """Look a modality up by name, raising ValueError that lists the known names."""
    if name not in MODALITIES:
        raise ValueError(f"unknown modality {name!r}; known: {', '.join(MODALITIES)}")
    return MODALITIES[name]


def num_frames_for(modality: Modality, num_rgb_frames: int) -> int:
    """Length of the modality's frame timeline for a video of ``num_rgb_frames`` frames (Flow has one fewer)."""
    return num_rgb_frames - 1 if modality.name == "Flow" else num_rgb_frames


def _source_channels(modality: Modality) -> int:
    """Channels of one stored frame: 2 for quantised flow (x, y), 3 for RGB frames."""
    return 2 if modality.name == "Flow" else 3


def build_input(
    modality: Modality, source: np.ndarray | torch.Tensor, starts: np.ndarray, crop: CropBox, size: int
) -> torch.Tensor:
    """Gather, crop, resize and normalise one clip of one modality into a model input.

    Steps: gather the (T, L) frames of `frame_indices` (repeating the last frame near the end) cropped with the
    clip's box (a view is cropped first, so only the box is copied), convert to float, resize bilinearly to
    ``size`` x ``size`` (quantised flow values are not rescaled, as the original resizes the flow JPEGs), scale to
    [0, 1] and normalise. Diff takes the forward differences of the resized [0, 1] frames. Works on whatever
    device ``source`` lives on.

    Args:
        modality: the modality to build.
        source: (N, H, W, 3) uint8 RGB frames for RGB/Diff, or (N-1, H, W, 2) uint8 quantised flow for Flow.
        starts: the T segment starts on this source's timeline.
        crop: the clip's crop box, shared by all frames.
        size: output side length.

    Returns:
        float32 (T*C, size, size), segment-major: segment 0's C channels, then segment 1's, ...
    """
    frames = torch.as_tensor(source)
    channels = _source_channels(modality)
    if frames.dtype != torch.uint8 or frames.ndim != 4 or frames.shape[-1] != channels or len(frames) == 0:
        raise ValueError(
            f"{modality.name} needs (N, H, W, {channels}) uint8 frames, got {tuple(frames.shape)} {frames.dtype}"
        )
    height, width = frames.shape[1:3]
    inside = 0 <= crop.top and 0 <= crop.left and crop.top + crop.height <= height and crop.left + crop.width <= width
    if not inside or min(crop.height, crop.width) < 1:
        raise ValueError(f"crop {crop} does not fit {height}x{width} frames")
    if size < 1:
        raise ValueError(f"output size must be positive, got {size}")
    indices = frame_indices(starts, modality.new_length, len(frames))
    segments = len(indices)
    window = frames[:, crop.top : crop.top + crop.height, crop.left : crop.left + crop.width]  # a view: copies nothing
    cropped = window[torch.as_tensor(indices.reshape(-1), device=frames.device)]
    images = cropped.permute(0, 3, 1, 2).float()
    resized = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=False) / 255
    stacked = resized.reshape(segments, modality.new_length, channels, size, size)
    if modality.name == "Diff":
        stacked = stacked[:, 1:] - stacked[:, :-1]
    per_segment = stacked.reshape(segments, modality.channels, size, size)
    mean = torch.tensor(modality.mean, dtype=torch.float32, device=frames.device).view(1, -1, 1, 1)
    std = torch.tensor(modality.std, dtype=torch.float32, device=frames.device).view(1, -1, 1, 1)
    return ((per_segment - mean) / std).reshape(segments * modality.channels, size, size)
