"""Tests of TV-L1 flow extraction and its 8-bit quantisation."""

import cv2
import numpy as np
import pytest

from mml.data.flow import FLOW_BOUND, dequantize_flow, quantize_flow, tvl1_flow

STEP = 2 * FLOW_BOUND / 255


def _texture(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth random RGB texture; np.roll of it is an exact translation away from the wrapped border."""
    noise = np.random.default_rng(seed).uniform(0, 255, size=(height, width)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), sigmaX=2.0)
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255
    return np.repeat(smooth.round().astype(np.uint8)[..., None], 3, axis=2)


def test_tvl1_recovers_known_translation() -> None:
    first = _texture(64, 64, seed=0)
    second = np.roll(first, shift=(1, 2), axis=(0, 1))  # content moves +2 px in x and +1 px in y
    flow = dequantize_flow(tvl1_flow(np.stack([first, second])))
    interior = flow[0, 12:-12, 12:-12]
    assert np.all(np.abs(interior[..., 0] - 2.0) < 0.3)
    assert np.all(np.abs(interior[..., 1] - 1.0) < 0.3)


def test_tvl1_shape_and_dtype() -> None:
    frames = np.stack([_texture(24, 32, seed) for seed in range(3)])
    flow = tvl1_flow(frames)
    assert flow.shape == (2, 24, 32, 2) and flow.dtype == np.uint8


@pytest.mark.parametrize(
    "frames",
    [np.zeros((1, 8, 8, 3), np.uint8), np.zeros((2, 8, 8), np.uint8), np.zeros((2, 8, 8, 3), np.float32)],
)
def test_tvl1_rejects_bad_input(frames: np.ndarray) -> None:
    with pytest.raises(ValueError):
        tvl1_flow(frames)


def test_quantize_clips_and_rounds() -> None:
    flow = np.array([-100.0, -FLOW_BOUND, -FLOW_BOUND + 0.4 * STEP, -FLOW_BOUND + 0.6 * STEP, 0.0, FLOW_BOUND, 55.0])
    np.testing.assert_array_equal(quantize_flow(flow), [0, 0, 0, 1, 128, 255, 255])
    assert quantize_flow(flow).dtype == np.uint8


def test_dequantize_endpoints() -> None:
    np.testing.assert_allclose(dequantize_flow(np.array([0, 255], np.uint8)), [-FLOW_BOUND, FLOW_BOUND])
    assert dequantize_flow(np.array([0], np.uint8)).dtype == np.float32


def test_round_trip_within_half_a_step() -> None:
    flow = np.random.default_rng(0).uniform(-FLOW_BOUND, FLOW_BOUND, size=10_000).astype(np.float32)
    error = np.abs(dequantize_flow(quantize_flow(flow)) - flow)
    assert error.max() <= STEP / 2 + 1e-5
    np.testing.assert_array_equal(quantize_flow(dequantize_flow(np.arange(256, dtype=np.uint8))), np.arange(256))
