"""Spatial augmentation: one crop box per clip, shared by every frame of every modality of the clip.

The MML fork removed all flips and uses no colour jitter, so a crop box is the whole augmentation; the resize of
the crop to ``size`` x ``size`` happens in `mml.data.modalities.build_input`.
"""

from dataclasses import dataclass

import numpy as np

_SNAP_PX = 3


@dataclass(frozen=True)
class CropBox:
    """A crop in pixel coordinates of the frame: rows top..top+height-1, columns left..left+width-1."""

    top: int
    left: int
    height: int
    width: int


def _fixed_offsets(width: int, height: int, crop_w: int, crop_h: int) -> list[tuple[int, int]]:
    """TSM's 13 fixed (left, top) crop offsets: corners, centre, edge centres and quarter points."""
    w_step = (width - crop_w) // 4
    h_step = (height - crop_h) // 4
    grid = [(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)]
    return [(i * w_step, j * h_step) for i, j in grid]


def multiscale_crop(
    height: int,
    width: int,
    size: int,
    rng: np.random.Generator,
    scales: tuple[float, ...] = (1, 0.875, 0.75, 0.66),
    max_distort: int = 1,
) -> CropBox:
    """TSM's GroupMultiScaleCrop (fix_crop and more_fix_crop) as used for training by the MML code.

    Crop sides are int(min(height, width) * s) for s in ``scales``; a side less than 3 px from ``size`` is snapped
    to ``size`` (a side is never larger than the short side, so the box always fits). A (width, height) pair whose
    scale indices differ by at most ``max_distort`` is drawn uniformly, then one of the 13 fixed offsets (steps
    (W - w)//4 and (H - h)//4). Draw order: pair, then offset. With 256-pixel short sides and ``size`` 224 the
    sides are {256, 224, 192, 168}; at smoke scale, keep ``size`` / short side at 224/256 so the same crops result.

    Returns:
        The crop box; `build_input` resizes it to ``size`` x ``size``.
    """
    if min(height, width, size) < 1:
        raise ValueError(f"height, width and size must be positive, got {height}, {width}, {size}")
    base = min(height, width)
    sides = [int(base * scale) for scale in scales]
    sides = [min(max(size if abs(side - size) < _SNAP_PX else side, 1), base) for side in sides]
    pairs = [(w, h) for i, h in enumerate(sides) for j, w in enumerate(sides) if abs(i - j) <= max_distort]
    crop_w, crop_h = pairs[rng.integers(len(pairs))]
    offsets = _fixed_offsets(width, height, crop_w, crop_h)
    left, top = offsets[rng.integers(len(offsets))]
    return CropBox(top=top, left=left, height=crop_h, width=crop_w)


def center_crop(height: int, width: int, size: int) -> CropBox:
    """The test-time ``size`` x ``size`` centre crop of a frame whose short side was already scaled.

    Offsets round half to even as torchvision's CenterCrop (TSM's GroupCenterCrop) does.
    """
    if size < 1 or size > min(height, width):
        raise ValueError(f"centre crop size {size} must be in 1..{min(height, width)} for a {height}x{width} frame")
    return CropBox(top=round((height - size) / 2), left=round((width - size) / 2), height=size, width=size)


def three_crops(height: int, width: int, size: int) -> list[CropBox]:
    """PySlowFast's three ``size`` x ``size`` test crops (`uniform_crop`, spatial_idx 0, 1, 2): at the start, centre
    and end of the longer side, centred on the shorter one (mmaction2's ThreeCrop is the same up to rounding).

    Portrait frames are cut top / middle / bottom, landscape and square ones left / centre / right (PySlowFast's
    ``height > width`` test), so on a square frame the crops differ unless ``size`` equals its side. Centred offsets
    round up, ``ceil((side - size) / 2)``, as PySlowFast does; `center_crop` rounds half to even instead.
    """
    if size < 1 or size > min(height, width):
        raise ValueError(f"three-crop size {size} must be in 1..{min(height, width)} for a {height}x{width} frame")
    top, left = -(-(height - size) // 2), -(-(width - size) // 2)
    if height > width:
        return [CropBox(top=t, left=left, height=size, width=size) for t in (0, top, height - size)]
    return [CropBox(top=top, left=x, height=size, width=size) for x in (0, left, width - size)]
