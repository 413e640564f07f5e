"""Tests of the batched PyTorch TV-L1 against OpenCV's DualTVL1 (the reference), its parts and the truth."""

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mml.data import tvl1_torch
from mml.data.flow import quantize_flow, tvl1_flow
from mml.data.synthetic import SyntheticConfig, render_clip
from mml.data.tvl1_torch import tvl1, tvl1_flow_torch
from mml.data.video import decode_video, encode_video
from mml.numerics import PORTABLE_ENVIRONMENT, VARIABLE


def _texture(height: int, width: int, seed: int, sigma: float = 2.0) -> np.ndarray:
    """A smooth random grey texture spanning 0..255, float32."""
    noise = np.random.default_rng(seed).uniform(0, 255, size=(height, width)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), sigmaX=sigma)
    return (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255


def _warped(image: np.ndarray, flow_x: np.ndarray, flow_y: np.ndarray) -> np.ndarray:
    """`image` with its content moved by the (smooth) flow: second(x + flow(x)) ~ first(x)."""
    rows, columns = np.mgrid[0 : image.shape[0], 0 : image.shape[1]].astype(np.float32)
    return cv2.remap(image, columns - flow_x, rows - flow_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _opencv(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """OpenCV's flow (H, W, 2) between two uint8 grey images, default parameters."""
    return cv2.optflow.DualTVL1OpticalFlow_create().calc(first, second, None)


def _ours(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Our flow (N, H, W, 2) between two stacks of grey images."""
    return tvl1(torch.from_numpy(first), torch.from_numpy(second)).permute(0, 2, 3, 1).numpy()


def _end_point_error(flow: np.ndarray, reference: np.ndarray) -> np.ndarray:
    return np.linalg.norm(flow - reference, axis=-1)


def _decoded_video(folder: Path, height: int, width: int) -> np.ndarray:
    """Grey frames of a synthetic clip written as VP9 and decoded again (compression noise, a moving object)."""
    config = SyntheticConfig(height=height, width=width, frames=3, min_frames=3)
    path = folder / "clip.webm"
    encode_video(path, render_clip(config, "train", 3), fps=12)
    return np.stack([cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in decode_video(path)])


def test_matches_opencv_on_real_looking_pairs(tmp_path: Path) -> None:
    """Mean end-point error against OpenCV <= 0.3 px on decoded video frames and on a non-rigidly moved texture."""
    height, width = 48, 64
    video = _decoded_video(tmp_path, height, width)
    texture = _texture(height, width, seed=1)
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    moved = _warped(texture, 1.5 + np.sin(rows / 9), 0.8 * np.cos(columns / 11))
    first = np.stack([*video[:-1], texture.round()]).astype(np.uint8)
    second = np.stack([*video[1:], moved.round()]).astype(np.uint8)

    ours = _ours(first, second)

    for index, (image0, image1) in enumerate(zip(first, second)):
        error = _end_point_error(ours[index], _opencv(image0, image1)).mean()
        assert error <= 0.3, f"pair {index}: mean EPE {error:.3f} px against OpenCV"


def test_recovers_a_sub_pixel_translation() -> None:
    base = _texture(48, 64, seed=7)
    moved = _warped(base, np.full_like(base, 1.5), np.full_like(base, -0.75))
    flow = _ours(base.round().astype(np.uint8)[None], moved.round().astype(np.uint8)[None])[0]
    interior = flow[8:-8, 8:-8]
    assert _end_point_error(interior, np.array([1.5, -0.75], dtype=np.float32)).mean() < 0.05


def test_a_batch_equals_each_pair_alone() -> None:
    first = np.stack([_texture(32, 40, seed) for seed in range(3)])
    second = np.stack(
        [np.roll(first[0], (1, 2), (0, 1)), first[1], _warped(first[2], first[2] * 0 + 0.5, first[2] * 0)]
    )
    batch = _ours(first, second)
    for index in range(3):
        np.testing.assert_array_equal(batch[index], _ours(first[index : index + 1], second[index : index + 1])[0])


def test_quantised_output_is_the_cache_format() -> None:
    texture = _texture(32, 40, seed=3).round().astype(np.uint8)
    moved = [np.roll(texture, shift, axis=1) for shift in range(4)]
    frames = np.repeat(np.stack(moved)[..., None], 3, axis=3)
    reference = tvl1_flow(frames)
    ours = tvl1_flow_torch(frames, batch_pairs=2)  # two calls: pairs 0-1, then pair 2
    grey = torch.from_numpy(frames[..., 0])
    assert ours.shape == reference.shape and ours.dtype == reference.dtype == np.uint8
    np.testing.assert_array_equal(ours, quantize_flow(tvl1(grey[:-1], grey[1:]).permute(0, 2, 3, 1).numpy()))
    assert np.mean(np.abs(ours.astype(int) - reference.astype(int)) <= 1) > 0.99


@pytest.mark.parametrize("frames", [np.zeros((1, 8, 8, 3), np.uint8), np.zeros((2, 8, 8), np.uint8)])
def test_rejects_bad_frames(frames: np.ndarray) -> None:
    with pytest.raises(ValueError):
        tvl1_flow_torch(frames)


def test_resize_matches_opencv() -> None:
    image = _texture(51, 64, seed=4)
    down = cv2.resize(image, None, fx=0.8, fy=0.8, interpolation=cv2.INTER_LINEAR)
    ours_down = tvl1_torch._resize(torch.from_numpy(image)[None, None], down.shape, (1.25, 1.25))[0, 0]
    np.testing.assert_allclose(ours_down.numpy(), down, atol=1e-3)
    up = cv2.resize(down, (64, 51), interpolation=cv2.INTER_LINEAR)
    ratio = (down.shape[0] / 51, down.shape[1] / 64)
    np.testing.assert_allclose(tvl1_torch._resize(ours_down[None, None], (51, 64), ratio)[0, 0], up, atol=1e-3)


def test_bicubic_warp_matches_opencv_remap() -> None:
    image = _texture(40, 48, seed=5)
    flow = np.random.default_rng(5).normal(0, 3, size=(2, 40, 48)).astype(np.float32)  # also reaches outside
    rows, columns = np.mgrid[0:40, 0:48].astype(np.float32)
    expected = cv2.remap(image, columns + flow[0], rows + flow[1], cv2.INTER_CUBIC)
    ours = tvl1_torch._remap_bicubic(torch.from_numpy(image)[None, None], torch.from_numpy(flow)[None])[0, 0]
    np.testing.assert_allclose(ours.numpy(), expected, atol=0.02)


def test_median_matches_opencv() -> None:
    flow = torch.randn(2, 2, 21, 30, generator=torch.Generator().manual_seed(6))
    ours = tvl1_torch._median(flow, 5)
    for pair in range(2):
        for component in range(2):
            expected = cv2.medianBlur(flow[pair, component].numpy(), 5)
            np.testing.assert_array_equal(ours[pair, component].numpy(), expected)


@pytest.mark.slow
def test_compiled_steps_give_the_eager_flow() -> None:
    """torch.compile of the iteration and the median filter changes nothing (one small scale: compiling is slow).

    In a process with the CPU's own numerics: compiled CPU code is built for this CPU, which portable numerics refuse
    (`mml.numerics.require`, `FlowBackend`), and under ATen's capped kernels inductor's code gave NaN."""
    code = (
        "import torch\n"
        "from mml.data import tvl1_torch\n"
        "generator = torch.Generator().manual_seed(8)\n"
        "first = torch.rand(2, 24, 32, generator=generator) * 255\n"
        "second = torch.roll(first, 1, dims=2)\n"
        "parameters = tvl1_torch.TVL1Parameters(scales=1, warps=1, outer_iterations=2, inner_iterations=5)\n"
        "eager = tvl1_torch.tvl1(first, second, parameters)\n"
        "compiled = tvl1_torch.tvl1(first, second, parameters, compiled=True)\n"
        "torch.testing.assert_close(compiled, eager, rtol=0, atol=1e-4)\n"
    )
    native = {k: v for k, v in os.environ.items() if k not in PORTABLE_ENVIRONMENT} | {VARIABLE: "native"}
    result = subprocess.run([sys.executable, "-c", code], env=native, capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]


def test_median_sizes_are_opencv_s() -> None:
    with pytest.raises(ValueError, match="median_filtering"):
        tvl1_torch.TVL1Parameters(median_filtering=7)
