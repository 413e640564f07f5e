"""Tests of the multi-scale crop and the centre crop."""

import numpy as np
import pytest

from mml.data.transforms import CropBox, center_crop, multiscale_crop

GRID = {(0, 0), (4, 0), (0, 4), (4, 4), (2, 2), (0, 2), (4, 2), (2, 4), (2, 0), (1, 1), (3, 1), (1, 3), (3, 3)}


def _draws(height: int, width: int, size: int, count: int, seed: int = 0) -> list[CropBox]:
    rng = np.random.default_rng(seed)
    return [multiscale_crop(height, width, size, rng) for _ in range(count)]


@pytest.mark.parametrize(("height", "width", "size"), [(256, 340, 224), (64, 85, 56), (85, 64, 56)])
def test_boxes_inside_frame_with_allowed_sizes_on_grid(height: int, width: int, size: int) -> None:
    base = min(height, width)
    sides = [size if abs(int(base * s) - size) < 3 else int(base * s) for s in (1, 0.875, 0.75, 0.66)]
    allowed = {(sides[i], sides[j]) for i in range(4) for j in range(4) if abs(i - j) <= 1}
    for box in _draws(height, width, size, 400):
        assert box.top >= 0 and box.left >= 0 and box.top + box.height <= height and box.left + box.width <= width
        assert (box.height, box.width) in allowed
        w_step, h_step = (width - box.width) // 4, (height - box.height) // 4
        positions = {(i * w_step, j * h_step) for i, j in GRID}
        assert (box.left, box.top) in positions


def test_sthv2_sizes_and_everything_reachable() -> None:
    boxes = _draws(256, 340, 224, 4000)
    pairs = {(b.height, b.width) for b in boxes}
    assert {s for pair in pairs for s in pair} == {256, 224, 192, 168}
    assert len(pairs) == 10  # 4 squares + 3 pairs of neighbours in each order
    for height, width in pairs:
        w_step, h_step = (340 - width) // 4, (256 - height) // 4
        seen = {(b.left, b.top) for b in boxes if (b.height, b.width) == (height, width)}
        assert seen == {(i * w_step, j * h_step) for i, j in GRID}


def test_snapping_to_size() -> None:
    # base 200: sides 200, 175, 150, 132; 175 snaps to size 174 (1 px away) but not to 172 (3 px away).
    assert 174 in {b.height for b in _draws(200, 300, 174, 300)}
    heights = {b.height for b in _draws(200, 300, 172, 300)}
    assert 175 in heights and 172 not in heights


def test_deterministic_from_rng() -> None:
    assert _draws(256, 340, 224, 50, seed=3) == _draws(256, 340, 224, 50, seed=3)
    assert _draws(256, 340, 224, 50, seed=3) != _draws(256, 340, 224, 50, seed=4)


def test_center_crop_is_centred() -> None:
    assert center_crop(256, 340, 224) == CropBox(top=16, left=58, height=224, width=224)
    box = center_crop(61, 63, 50)  # torchvision rounds 5.5 and 6.5 half to even
    assert (box.top, box.left) == (6, 6) and (box.height, box.width) == (50, 50)
    with pytest.raises(ValueError):
        center_crop(100, 40, 50)
