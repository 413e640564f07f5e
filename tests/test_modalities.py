"""Tests of modality definitions and of building model inputs from sampled frames."""

import numpy as np
import pytest
import torch

from mml.data.modalities import MODALITIES, Modality, build_input, gather_clip, modality, num_frames_for
from mml.data.transforms import CropBox

SEGMENTS = 3
SIZE = 8
FULL = CropBox(top=0, left=0, height=12, width=12)


def _build(spec: Modality, source, starts: np.ndarray, crop: CropBox, size: int) -> torch.Tensor:
    return build_input(spec, gather_clip(spec, source, starts), crop, size)


def _constant_rgb(values: list[float]) -> np.ndarray:
    """RGB frames 12x12 where frame i has value values[i] in every pixel and channel."""
    return np.stack([np.full((12, 12, 3), v, np.uint8) for v in values])


@pytest.mark.parametrize(("name", "channels"), [("RGB", 3), ("Flow", 10), ("Diff", 15)])
def test_shapes(name: str, channels: int) -> None:
    spec = modality(name)
    depth = 2 if name == "Flow" else 3
    source = np.random.default_rng(0).integers(0, 256, size=(20, 16, 14, depth), dtype=np.uint8)
    crop = CropBox(top=2, left=1, height=12, width=10)
    out = _build(spec, source, np.array([0, 6, 12]), crop, SIZE)
    assert spec.channels == channels
    assert out.shape == (SEGMENTS * channels, SIZE, SIZE) and out.dtype == torch.float32


def test_modality_table() -> None:
    assert [MODALITIES[n].new_length for n in ("RGB", "Flow", "Diff")] == [1, 5, 6]
    assert num_frames_for(MODALITIES["Flow"], 40) == 39
    assert num_frames_for(MODALITIES["RGB"], 40) == num_frames_for(MODALITIES["Diff"], 40) == 40
    with pytest.raises(ValueError, match="RGB, Flow, Diff"):
        modality("RGBDiff")


def test_rgb_normalisation_of_constant_frame() -> None:
    out = _build(MODALITIES["RGB"], _constant_rgb([51] * 4), np.array([0, 1, 2]), FULL, SIZE)
    expected = [(0.2 - m) / s for m, s in zip((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))] * SEGMENTS
    np.testing.assert_allclose(out.mean(dim=(1, 2)).numpy(), expected, rtol=1e-5)
    assert torch.allclose(out, out[:, :1, :1].expand_as(out))


def test_flow_channels_are_interleaved() -> None:
    flow = np.zeros((10, 12, 12, 2), np.uint8)
    for t in range(10):
        flow[t, ..., 0] = 10 * t  # x of flow frame t
        flow[t, ..., 1] = 10 * t + 5  # y of flow frame t
    out = _build(MODALITIES["Flow"], flow, np.array([0, 2]), FULL, SIZE)
    raw = [10 * t + c * 5 for start in (0, 2) for t in range(start, start + 5) for c in (0, 1)]
    expected = (np.array(raw) / 255 - 0.5) / 0.226
    np.testing.assert_allclose(out[:, 0, 0].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_diff_is_forward_differences() -> None:
    values = [0, 10, 30, 60, 100, 150, 210, 255]
    out = _build(MODALITIES["Diff"], _constant_rgb(values), np.array([0, 2]), FULL, SIZE)
    expected = [(values[t + 1] - values[t]) / 255 for start in (0, 2) for t in range(start, start + 5) for _ in "rgb"]
    np.testing.assert_allclose(out[:, 0, 0].numpy(), expected, rtol=1e-5, atol=1e-6)
    assert torch.allclose(out, out[:, :1, :1].expand_as(out))


def test_end_of_video_repeats_last_frame() -> None:
    values = [0, 40, 80, 120, 160]
    out = _build(MODALITIES["Diff"], _constant_rgb(values), np.array([2]), FULL, SIZE)
    expected = [40 / 255] * 6 + [0.0] * 9  # frames 2, 3, 4, 4, 4, 4
    np.testing.assert_allclose(out[:, 0, 0].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_crop_without_resize_keeps_pixels() -> None:
    frame = np.random.default_rng(1).integers(0, 256, size=(1, 12, 12, 3), dtype=np.uint8)
    out = _build(MODALITIES["Flow"], frame[..., :2], np.array([0]), CropBox(3, 2, SIZE, SIZE), SIZE)
    expected = (frame[0, 3:11, 2:10, :2].transpose(2, 0, 1) / 255 - 0.5) / 0.226
    np.testing.assert_allclose(out[:2].numpy(), expected, rtol=1e-5, atol=1e-5)


def test_resize_is_bilinear_half_pixel() -> None:
    frame = np.zeros((1, 12, 12, 3), np.uint8)
    frame[0, :, 5] = 255  # crop columns 4..5 hold [0, 255]
    out = _build(MODALITIES["RGB"], frame, np.array([0]), CropBox(0, 4, 2, 2), 4)
    row = out[0, 0].numpy() * 0.229 + 0.485
    np.testing.assert_allclose(row, np.array([0, 63.75, 191.25, 255]) / 255, atol=1e-6)


def test_rejects_bad_source_and_crop() -> None:
    with pytest.raises(ValueError, match="Flow needs"):
        _build(MODALITIES["Flow"], _constant_rgb([0, 1]), np.array([0]), FULL, SIZE)
    with pytest.raises(ValueError, match="does not fit"):
        _build(MODALITIES["RGB"], _constant_rgb([0, 1]), np.array([0]), CropBox(1, 0, 12, 12), SIZE)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU"))]


@pytest.mark.parametrize("device", DEVICES)
def test_tensor_source_matches_numpy(device: str) -> None:
    frames = np.random.default_rng(2).integers(0, 256, size=(9, 14, 16, 3), dtype=np.uint8)
    crop, starts = CropBox(1, 2, 12, 13), np.array([0, 3, 6])
    expected = _build(MODALITIES["Diff"], frames, starts, crop, SIZE)
    out = _build(MODALITIES["Diff"], torch.from_numpy(frames).to(device), starts, crop, SIZE)
    assert out.device.type == device
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-5, atol=1e-5)
