"""Video file I/O with PyAV: decode a whole clip to RGB frames and encode frames atomically."""

from fractions import Fraction
from pathlib import Path
from typing import cast

import av
import cv2
import numpy as np

from mml.atomic import atomic_file
from mml.errors import DataError

# Encoder options per supported codec: fast, near-lossless and single-threaded so output is reproducible.
_CODEC_OPTIONS: dict[str, dict[str, str]] = {
    "libvpx-vp9": {"crf": "8", "b": "0", "deadline": "realtime", "cpu-used": "8", "row-mt": "0"},
    "libx264": {"crf": "8", "preset": "ultrafast"},
}
# A clip whose decoded frames end this many frame intervals before the header's duration is truncated.
_TRUNCATION_TOLERANCE_FRAMES = 1.5


def decode_video(path: Path, short_side: int | None = None) -> np.ndarray:
    """Decode every frame of a video file.

    Args:
        path: Video file (any container/codec FFmpeg reads).
        short_side: If given, resize each frame so its shorter side has this length, keeping the aspect ratio
            (INTER_AREA when shrinking, bilinear when growing).

    Returns:
        uint8 RGB frames of shape (N, H, W, 3).

    Raises:
        DataError: The file is missing, undecodable, truncated or holds no frames.
    """
    if short_side is not None and short_side < 1:
        raise ValueError(f"short_side must be positive, got {short_side}")
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        frames, decoded_end, expected_end, interval = _decode_frames(path, short_side)
    except av.error.EOFError:  # a container header and nothing after it
        frames, decoded_end, expected_end, interval = [], None, None, 0.0
    except (av.FFmpegError, OSError) as error:
        reason = " ".join(str(error).split())
        raise DataError(f"{path}: cannot decode video ({type(error).__name__}: {reason})") from error
    if not frames:
        raise DataError(f"{path}: no decodable video frames")
    if expected_end is not None and decoded_end is not None:
        if decoded_end + _TRUNCATION_TOLERANCE_FRAMES * interval < expected_end:
            raise DataError(
                f"{path}: truncated video (frames end at {decoded_end:.3f} s, header says {expected_end:.3f} s)"
            )
    return np.stack(frames)


def _decode_frames(path: Path, short_side: int | None) -> tuple[list[np.ndarray], float | None, float | None, float]:
    """Decode (and resize) all frames; also return when they end, when the header says they end, and the interval.

    The two end times let the caller spot files cut short, which FFmpeg decodes silently up to the cut.
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            return [], None, None, 0.0
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        interval = float(1 / rate) if rate else 0.0
        expected_end = _header_end(container, stream)
        frames: list[np.ndarray] = []
        last_time: float | None = None
        for frame in container.decode(stream):
            frames.append(resize_short_side(frame.to_ndarray(format="rgb24"), short_side))
            last_time = frame.time if frame.time is not None else last_time
    decoded_end = None if last_time is None else last_time + interval
    return frames, decoded_end, expected_end, interval


def _header_end(container: av.container.InputContainer, stream: av.video.stream.VideoStream) -> float | None:
    """End time in seconds the file's header announces for the video stream, or None if it announces none."""
    if stream.duration is not None and stream.time_base is not None:
        start = stream.start_time or 0
        return float((start + stream.duration) * stream.time_base)
    if container.duration is not None:
        start = container.start_time or 0
        return float(Fraction(start + container.duration, av.time_base))
    return None


def resize_short_side(frame: np.ndarray, short_side: int | None) -> np.ndarray:
    """Resize so min(H, W) == short_side, rounding the other side; returns the frame as is when no resize is needed."""
    height, width = frame.shape[:2]
    if short_side is None or min(height, width) == short_side:
        return frame
    scale = short_side / min(height, width)
    if height <= width:
        size = (max(1, round(width * scale)), short_side)
    else:
        size = (short_side, max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
    return cv2.resize(frame, size, interpolation=interpolation)


def encode_video(path: Path, frames: np.ndarray, fps: int, codec: str = "libvpx-vp9") -> None:
    """Write RGB frames to a video file, atomically.

    The file is written under a temporary name in the same folder and renamed into place, so an interrupted write
    never leaves a partial file under `path`. The container is chosen from the suffix (.webm for VP9, .mp4 for H.264).

    Args:
        path: Destination file.
        frames: uint8 RGB frames of shape (N, H, W, 3) with N >= 1 and even H and W (required by yuv420p).
        fps: Frame rate.
        codec: "libvpx-vp9" or "libx264".

    Raises:
        ValueError: Bad frames, frame rate or codec.
    """
    if codec not in _CODEC_OPTIONS:
        raise ValueError(f"unsupported codec {codec!r}; choose one of {sorted(_CODEC_OPTIONS)}")
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[3] != 3 or frames.shape[0] == 0:
        raise ValueError(f"frames must be a non-empty uint8 array (N, H, W, 3), got {frames.dtype} {frames.shape}")
    height, width = frames.shape[1:3]
    if height % 2 or width % 2:
        raise ValueError(f"frame height and width must be even for yuv420p, got {height}x{width}")
    if fps < 1:
        raise ValueError(f"fps must be positive, got {fps}")
    with atomic_file(path) as temporary:  # keeps the suffix, from which the container is chosen
        _write(temporary, frames, fps, codec)


def _write(path: Path, frames: np.ndarray, fps: int, codec: str) -> None:
    """Encode frames into `path`, in the container format FFmpeg guesses from its suffix.

    Bit-exact muxing (no random track ids or version strings) makes equal frames give byte-identical files.
    """
    with av.open(str(path), mode="w", container_options={"fflags": "+bitexact"}) as container:
        stream = cast(av.video.stream.VideoStream, container.add_stream(codec, rate=fps))  # a video codec's
        stream.width = frames.shape[2]
        stream.height = frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1
        stream.options = dict(_CODEC_OPTIONS[codec])
        for array in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")))
        container.mux(stream.encode(None))
