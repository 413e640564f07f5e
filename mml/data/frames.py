"""Frames of one video read by index, from a packed array or from JPEG folders, and the folder layouts we read.

A frame sequence is anything with ``len()`` and ``sequence[indices] -> (k, H, W, C) uint8``: a NumPy array (the
packed `.npy` cache) or a `JpegSequence`, which decodes only the frames asked for. RGB frames have
C = 3; quantised flow fields C = 2 (x, y), stored as two greyscale images per frame.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from mml.data.video import resize_short_side
from mml.errors import DataError

JPEG_QUALITY = 95  # what denseflow's imencode writes; TSM's ffmpeg `-q:v 0` is about as fine


class FrameSequence(Protocol):
    """The frames (or flow fields) of one video: ``len()`` and ``sequence[indices] -> (k, H, W, C) uint8``."""

    def __len__(self) -> int: ...

    def __getitem__(self, indices: np.ndarray) -> np.ndarray: ...


def read_image(path: Path, grey: bool) -> np.ndarray:
    """An (H, W) greyscale or (H, W, 3) RGB uint8 image; DataError naming the file if it is missing or unreadable."""
    image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE if grey else cv2.IMREAD_COLOR)
    if image is None:
        reason = "file not found" if not path.is_file() else "not a readable image"
        raise DataError(f"{path}: {reason}")
    return image if grey else cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_image(path: Path, image: np.ndarray) -> None:
    """Write an (H, W) greyscale or (H, W, 3) RGB uint8 image as a JPEG."""
    pixels = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), pixels, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY]):
        raise DataError(f"{path}: cannot write image")


class JpegSequence:
    """The frames of one video stored as JPEG files: one RGB file per frame, or an (x, y) pair of greyscale files per
    flow field. Only the frames indexed are decoded; each is resized to `short_side` when given (flow images too,
    without rescaling their values, as the original code resizes flow JPEGs)."""

    def __init__(self, files: Sequence[Path] | Sequence[tuple[Path, Path]], short_side: int | None = None) -> None:
        self.files: list[Path | tuple[Path, Path]] = list(files)
        self.short_side = short_side

    def __len__(self) -> int:
        return len(self.files)

    def _read(self, index: int) -> np.ndarray:
        entry = self.files[index]
        if isinstance(entry, tuple):
            image = np.stack([read_image(path, grey=True) for path in entry], axis=-1)
        else:
            image = read_image(entry, grey=False)
        return resize_short_side(image, self.short_side)

    def __getitem__(self, indices: np.ndarray | Sequence[int]) -> np.ndarray:
        flat = np.asarray(indices, dtype=np.int64).reshape(-1)
        unique, inverse = np.unique(flat, return_inverse=True)
        images = [self._read(int(index)) for index in unique]
        shapes = {image.shape for image in images}
        if len(shapes) > 1:
            raise DataError(f"{self.files[0]}: frames of one video differ in size ({sorted(shapes)})")
        return np.stack(images)[inverse]


@dataclass(frozen=True)
class FolderLayout:
    """Where the frame and flow images of a video lie under `root`: `str.format` templates with the fields
    {video} (the video id), {index} (the frame number, counted from `start_index`) and, for flow, {axis} (x or y).

    Examples: our cache writes ``frames/{video}/img_{index:05d}.jpg`` and ``flow/{video}/flow_{axis}_{index:05d}.jpg``
    (denseflow's names, counted from 1); the official Charades download is
    ``Charades_v1_rgb/{video}/{video}-{index:06d}.jpg`` and ``Charades_v1_flow/{video}/{video}-{index:06d}{axis}.jpg``.
    """

    root: Path
    frames: str
    flow: str
    start_index: int = 1

    def frame_file(self, video: str, index: int) -> Path:
        """The file of frame `index` (counted from 0) of `video`."""
        return self.root / self.frames.format(video=video, index=index + self.start_index)

    def flow_files(self, video: str, index: int) -> tuple[Path, Path]:
        """The x and y files of flow field `index` (counted from 0) of `video`."""
        number = index + self.start_index
        x, y = (self.root / self.flow.format(video=video, index=number, axis=axis) for axis in "xy")
        return x, y

    def count(self, video: str, flow: bool) -> int:
        """How many frames (or flow fields) of `video` exist: the files in its folder that match the template."""
        template = self.flow if flow else self.frames
        first = (self.flow_files(video, 0)[0] if flow else self.frame_file(video, 0)).parent
        pattern = _file_pattern(Path(template).name, video)
        try:
            with os.scandir(first) as entries:
                return sum(1 for entry in entries if pattern.fullmatch(entry.name))
        except (FileNotFoundError, NotADirectoryError):
            return 0

    def frame_sequence(self, video: str, count: int, short_side: int | None) -> JpegSequence:
        return JpegSequence([self.frame_file(video, i) for i in range(count)], short_side)

    def flow_sequence(self, video: str, count: int, short_side: int | None) -> JpegSequence:
        return JpegSequence([self.flow_files(video, i) for i in range(count)], short_side)


def _file_pattern(name_template: str, video: str) -> re.Pattern[str]:
    """A regex of the file names a template's last path component produces for `video` (flow: the x files)."""
    parts = []
    for literal, field, _, _ in string.Formatter().parse(name_template):
        parts.append(re.escape(literal))
        if field == "video":
            parts.append(re.escape(video))
        elif field == "index":
            parts.append(r"\d+")
        elif field == "axis":
            parts.append("x")
        elif field is not None:
            raise ValueError(f"unknown field {{{field}}} in frame template {name_template!r}")
    return re.compile("".join(parts))
