"""Tests of the multi-scale crop, the centre crop and the three test crops."""

import numpy as np
import pytest

from mml.data.transforms import CropBox, center_crop, multiscale_crop, three_crops

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


def test_three_crops_landscape_left_centre_right() -> None:
    assert three_crops(256, 341, 256) == [
        CropBox(top=0, left=0, height=256, width=256),
        CropBox(top=0, left=43, height=256, width=256),  # ceil(85 / 2), as PySlowFast
        CropBox(top=0, left=85, height=256, width=256),
    ]
    assert [(b.top, b.left) for b in three_crops(256, 340, 224)] == [(16, 0), (16, 58), (16, 116)]


def test_three_crops_portrait_top_middle_bottom() -> None:
    assert [(b.top, b.left) for b in three_crops(341, 256, 256)] == [(0, 0), (43, 0), (85, 0)]
    assert [(b.top, b.left) for b in three_crops(340, 256, 224)] == [(0, 16), (58, 16), (116, 16)]


def test_three_crops_square_frame() -> None:
    assert three_crops(256, 256, 256) == [center_crop(256, 256, 256)] * 3
    # A smaller crop moves along the width, as PySlowFast's uniform_crop does when height == width.
    assert [(b.top, b.left) for b in three_crops(256, 256, 224)] == [(16, 0), (16, 16), (16, 32)]


@pytest.mark.parametrize(("height", "width", "size"), [(240, 320, 256), (320, 240, 256), (64, 64, 0)])
def test_three_crops_size_must_fit(height: int, width: int, size: int) -> None:
    with pytest.raises(ValueError, match=f"three-crop size {size} must be in 1..{min(height, width)} for a "):
        three_crops(height, width, size)
