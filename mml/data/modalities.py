"""Modalities (RGB, Flow, Diff) and the conversion of a clip's sampled frames into one model input tensor.

Per segment, RGB reads 1 frame (3 channels), Flow 5 quantised flow fields interleaved x0, y0, x1, y1, ...
(10 channels) and Diff 6 frames whose 5 forward differences give 15 channels (original-code.md §2).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from mml.data.frames import FrameSequence
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


def frames_needed(modalities: Sequence[str], segments: int) -> int:
    """Frames a video needs so that uniform sampling gives every segment frames of its own: T + L - 1 for the
    longest modality (one more for Flow, which has one frame fewer). Shorter videos repeat their last frame."""
    return max(segments + MODALITIES[name].new_length - 1 + (name == "Flow") for name in modalities)


def _source_channels(modality: Modality) -> int:
    """Channels of one stored frame: 2 for quantised flow (x, y), 3 for RGB frames."""
    return 2 if modality.name == "Flow" else 3


def gather_clip(modality: Modality, source: FrameSequence | torch.Tensor, starts: np.ndarray) -> torch.Tensor:
    """The (T, L, H, W, C) uint8 frames one clip of `modality` reads: `frame_indices` of the T segment starts
    (repeating the last frame near the end), from any frame sequence (an array, a `JpegSequence`, a tensor on any
    device: the result lives where the tensor does).

    Args:
        modality: the modality the clip is for.
        source: (N, H, W, 3) uint8 RGB frames for RGB/Diff, or (N-1, H, W, 2) uint8 quantised flow for Flow.
        starts: the T segment starts on this source's timeline.
    """
    if len(source) == 0:
        raise ValueError(f"{modality.name} needs at least one frame, got none")
    indices = frame_indices(starts, modality.new_length, len(source))
    if isinstance(source, torch.Tensor):
        picked = source[torch.as_tensor(indices.reshape(-1), device=source.device)]
    else:
        picked = torch.from_numpy(np.ascontiguousarray(source[indices.reshape(-1)]))
    channels = _source_channels(modality)
    if picked.dtype != torch.uint8 or picked.ndim != 4 or picked.shape[-1] != channels:
        raise ValueError(
            f"{modality.name} needs (N, H, W, {channels}) uint8 frames, got {tuple(picked.shape)} {picked.dtype}"
        )
    return picked.reshape(*indices.shape, *picked.shape[1:])


def build_input(modality: Modality, clip: torch.Tensor, crop: CropBox, size: int) -> torch.Tensor:
    """Crop, resize and normalise one gathered clip (see `gather_clip`) into a model input.

    Steps: crop every frame with the clip's box, convert to float, resize bilinearly to ``size`` x ``size``
    (quantised flow values are not rescaled, as the original resizes the flow JPEGs), scale to [0, 1] and
    normalise. Diff takes the forward differences of the resized [0, 1] frames. Works on the clip's device.

    Args:
        modality: the modality to build.
        clip: (T, L, H, W, C) uint8 frames.
        crop: the clip's crop box, shared by all frames.
        size: output side length.

    Returns:
        float32 (T*C, size, size), segment-major: segment 0's C channels, then segment 1's, ...
    """
    segments, length, height, width, channels = clip.shape
    inside = 0 <= crop.top and 0 <= crop.left and crop.top + crop.height <= height and crop.left + crop.width <= width
    if not inside or min(crop.height, crop.width) < 1:
        raise ValueError(f"crop {crop} does not fit {height}x{width} frames")
    if size < 1:
        raise ValueError(f"output size must be positive, got {size}")
    cropped = clip[:, :, crop.top : crop.top + crop.height, crop.left : crop.left + crop.width]
    images = cropped.reshape(segments * length, crop.height, crop.width, channels).permute(0, 3, 1, 2).float()
    resized = F.interpolate(images, size=(size, size), mode="bilinear", align_corners=False, antialias=False) / 255
    stacked = resized.reshape(segments, length, channels, size, size)
    if modality.name == "Diff":
        stacked = stacked[:, 1:] - stacked[:, :-1]
    per_segment = stacked.reshape(segments, modality.channels, size, size)
    mean = torch.tensor(modality.mean, dtype=torch.float32, device=clip.device).view(1, -1, 1, 1)
    std = torch.tensor(modality.std, dtype=torch.float32, device=clip.device).view(1, -1, 1, 1)
    return ((per_segment - mean) / std).reshape(segments * modality.channels, size, size)
