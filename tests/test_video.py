"""Tests of PyAV video encoding and decoding."""

from pathlib import Path

import numpy as np
import pytest

from mml.data.video import decode_video, encode_video
from mml.errors import DataError


def _clip(frames: int = 24, height: int = 32, width: int = 48) -> np.ndarray:
    """A smooth gradient with a bright square moving right: easy to compress, so VP9 stays close to lossless."""
    ys, xs = np.mgrid[0:height, 0:width]
    background = np.stack([xs * 4, ys * 4, np.full_like(xs, 90)], axis=-1).astype(np.uint8)
    clip = np.repeat(background[None], frames, axis=0)
    for index in range(frames):
        clip[index, 8:16, index : index + 8] = (250, 240, 30)
    return clip


@pytest.mark.parametrize(("codec", "suffix"), [("libvpx-vp9", ".webm"), ("libx264", ".mp4")])
def test_round_trip_keeps_count_shape_and_values(tmp_path: Path, codec: str, suffix: str) -> None:
    clip = _clip()
    path = tmp_path / f"clip{suffix}"
    encode_video(path, clip, fps=12, codec=codec)
    decoded = decode_video(path)
    assert decoded.shape == clip.shape
    assert decoded.dtype == np.uint8
    # yuv420p costs a level or two everywhere (8-bit colour conversion) and more at colour edges (chroma subsampling).
    error = decoded.astype(int) - clip.astype(int)
    assert np.abs(error.mean()) < 3
    assert np.abs(error).mean() < 4
    assert np.percentile(np.abs(error), 95) < 10
    # The moving square is where it was drawn in the last frame.
    assert decoded[-1, 10:14, 26:28].mean(axis=(0, 1))[0] > 220


def test_encode_is_byte_identical_for_equal_frames(tmp_path: Path) -> None:
    encode_video(tmp_path / "a.webm", _clip(), fps=12)
    encode_video(tmp_path / "b.webm", _clip(), fps=12)
    assert (tmp_path / "a.webm").read_bytes() == (tmp_path / "b.webm").read_bytes()


def test_encode_leaves_only_the_final_file(tmp_path: Path) -> None:
    encode_video(tmp_path / "clip.webm", _clip(4), fps=12)
    assert [path.name for path in tmp_path.iterdir()] == ["clip.webm"]


def test_failed_encode_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        encode_video(tmp_path / "clip.unknown-container", _clip(4), fps=12)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "frames",
    [
        np.zeros((2, 31, 48, 3), np.uint8),
        np.zeros((2, 32, 47, 3), np.uint8),
        np.zeros((2, 32, 48, 3), np.float32),
        np.zeros((0, 32, 48, 3), np.uint8),
        np.zeros((32, 48, 3), np.uint8),
    ],
)
def test_encode_rejects_bad_frames(tmp_path: Path, frames: np.ndarray) -> None:
    with pytest.raises(ValueError):
        encode_video(tmp_path / "clip.webm", frames, fps=12)


def test_encode_rejects_unknown_codec(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="codec"):
        encode_video(tmp_path / "clip.webm", _clip(2), fps=12, codec="mpeg4")


@pytest.mark.parametrize(
    ("height", "width", "short_side", "expected"),
    [
        (32, 48, 16, (16, 24)),
        (32, 48, 64, (64, 96)),
        (48, 32, 16, (24, 16)),
        (32, 48, 32, (32, 48)),
        (32, 48, 21, (21, 32)),
    ],
)
def test_short_side_resize(tmp_path: Path, height: int, width: int, short_side: int, expected: tuple[int, int]) -> None:
    path = tmp_path / "clip.webm"
    clip = _clip(3, height, width)
    encode_video(path, clip, fps=12)
    decoded = decode_video(path, short_side=short_side)
    assert decoded.shape == (3, *expected, 3)
    # Resizing keeps the content: the mean colour barely moves.
    assert np.abs(decoded.mean(axis=(1, 2)) - clip.mean(axis=(1, 2))).max() < 4


def _assert_data_error(path: Path, match: str) -> None:
    with pytest.raises(DataError, match=match) as caught:
        decode_video(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "\n" not in message


def test_missing_file_raises(tmp_path: Path) -> None:
    _assert_data_error(tmp_path / "absent.webm", "not found")


def test_zero_byte_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "empty.webm"
    path.touch()
    _assert_data_error(path, "decode")


def test_garbage_file_raises(tmp_path: Path) -> None:
    path = tmp_path / "garbage.webm"
    path.write_bytes(bytes(range(256)) * 8)
    _assert_data_error(path, "decode|no decodable")


@pytest.mark.parametrize("suffix", [".webm", ".mp4"])
@pytest.mark.parametrize("kept", [0.1, 0.4, 0.7, 0.9])
def test_truncated_file_raises(tmp_path: Path, suffix: str, kept: float) -> None:
    whole = tmp_path / f"whole{suffix}"
    encode_video(whole, _clip(), fps=12, codec="libvpx-vp9" if suffix == ".webm" else "libx264")
    content = whole.read_bytes()
    cut = tmp_path / f"cut{suffix}"
    cut.write_bytes(content[: int(len(content) * kept)])
    _assert_data_error(cut, "truncated|decode")
