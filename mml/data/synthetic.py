"""Synthetic Something-Something-v2: classes are defined by motion, so a single frame cannot tell them apart.

Each clip shows one object moving over a static textured background with a static distractor. Paired classes
(left/right, up/down, the diagonals, approach/recede) are exact time reversals of each other, so the distribution of
any single frame is the same for both classes of a pair. The dataset is written in the real sthv2 file layout.
"""

import dataclasses
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from mml.data.sthv2 import LABELS_FILE, SPLIT_FILES, TEST_FILE, VIDEO_DIR, class_name
from mml.data.video import encode_video
from mml.errors import DataError

GENERATOR_VERSION = 1
MARKER_NAME = ".mml-synthetic.json"
SPLITS = ("train", "validation")
_SPLIT_CODES = {"train": 0, "validation": 1}
_PLAN_STREAM, _RENDER_STREAM = 0, 1


class _Motion(NamedTuple):
    """A class: its template, the forward displacement direction (None: growth towards the camera), time reversal."""

    template: str
    direction: tuple[int, int] | None
    reverse: bool


_MOTIONS = (
    _Motion("Moving [something] from left to right", (1, 0), False),
    _Motion("Moving [something] from right to left", (1, 0), True),
    _Motion("Moving [something] up", (0, 1), True),
    _Motion("Moving [something] down", (0, 1), False),
    _Motion("Moving [something] diagonally from top left to bottom right", (1, 1), False),
    _Motion("Moving [something] diagonally from bottom right to top left", (1, 1), True),
    _Motion("Moving [something] diagonally from top right to bottom left", (-1, 1), False),
    _Motion("Moving [something] diagonally from bottom left to top right", (-1, 1), True),
    _Motion("Pushing [something] towards the camera", None, False),
    _Motion("Pulling [something] away from the camera", None, True),
)
TEMPLATES: tuple[str, ...] = tuple(motion.template for motion in _MOTIONS)

# Object colours are either bright (luma >= 180) or dark (luma <= 68) so they contrast with the mid-grey background
# in luminance too, which grey-level optical flow needs.
_COLOURS: dict[str, tuple[int, int, int]] = {
    "yellow": (235, 220, 50),
    "white": (245, 245, 245),
    "cyan": (80, 230, 240),
    "orange": (255, 170, 60),
    "pink": (255, 150, 200),
    "lime": (120, 240, 120),
    "red": (170, 20, 20),
    "blue": (30, 40, 180),
    "purple": (110, 30, 140),
    "black": (20, 20, 20),
}
_CROSS_ARM = 0.35
_SHAPES: dict[str, np.ndarray] = {
    "square": np.array([[1, 1], [-1, 1], [-1, -1], [1, -1]], dtype=np.float64) * 0.8,
    "disc": np.stack(
        [np.cos(np.linspace(0, 2 * np.pi, 24, endpoint=False)), np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False))],
        axis=1,
    ),
    "triangle": np.stack(
        [np.cos(np.pi / 2 + np.arange(3) * 2 * np.pi / 3), np.sin(np.pi / 2 + np.arange(3) * 2 * np.pi / 3)], axis=1
    ),
    "cross": np.array(
        [
            [-_CROSS_ARM, -1],
            [_CROSS_ARM, -1],
            [_CROSS_ARM, -_CROSS_ARM],
            [1, -_CROSS_ARM],
            [1, _CROSS_ARM],
            [_CROSS_ARM, _CROSS_ARM],
            [_CROSS_ARM, 1],
            [-_CROSS_ARM, 1],
            [-_CROSS_ARM, _CROSS_ARM],
            [-1, _CROSS_ARM],
            [-1, -_CROSS_ARM],
            [-_CROSS_ARM, -_CROSS_ARM],
        ]
    ),
}
_DRAW_SHIFT = 4  # cv2 fixed-point bits: sub-pixel positions make slow motion smooth.


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and randomness of a synthetic sthv2 dataset.

    Attributes:
        num_classes: Number of classes, taken in order from TEMPLATES (2..10).
        train_per_class: Training videos per class.
        val_per_class: Validation videos per class.
        frames: Maximum frames per video.
        min_frames: Minimum frames per video; lengths are uniform in [min_frames, frames].
        height: Frame height in pixels (even, >= 32).
        width: Frame width in pixels (even, >= 32).
        fps: Frame rate written into the videos.
        seed: Root seed of every random choice.
    """

    num_classes: int = 10
    train_per_class: int = 24
    val_per_class: int = 6
    frames: int = 16
    min_frames: int = 12
    height: int = 48
    width: int = 64
    fps: int = 12
    seed: int = 0

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(f"SyntheticConfig.{field.name} must be an int, got {value!r}")
        if not 2 <= self.num_classes <= len(_MOTIONS):
            raise ValueError(f"SyntheticConfig.num_classes must be in 2..{len(_MOTIONS)}, got {self.num_classes}")
        for name in ("train_per_class", "val_per_class", "fps"):
            if getattr(self, name) < 1:
                raise ValueError(f"SyntheticConfig.{name} must be >= 1, got {getattr(self, name)}")
        if not 2 <= self.min_frames <= self.frames:
            raise ValueError(f"SyntheticConfig needs 2 <= min_frames <= frames, got {self.min_frames}, {self.frames}")
        for name in ("height", "width"):
            value = getattr(self, name)
            if value < 32 or value % 2:
                raise ValueError(f"SyntheticConfig.{name} must be even and >= 32, got {value}")
        if self.seed < 0:
            raise ValueError(f"SyntheticConfig.seed must be >= 0, got {self.seed}")

    def fingerprint_fields(self) -> dict[str, int]:
        """All fields plus the generator version: equal fingerprints mean byte-identical datasets."""
        return {**dataclasses.asdict(self), "generator_version": GENERATOR_VERSION}

    def split_size(self, split: str) -> int:
        """Number of videos in a split ("train" or "validation")."""
        if split not in _SPLIT_CODES:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        per_class = self.train_per_class if split == "train" else self.val_per_class
        return per_class * self.num_classes


@dataclass(frozen=True, eq=False)
class ClipPlan:
    """The labelled object of one clip and its trajectory.

    Attributes:
        label: Class index (into TEMPLATES).
        shape: Shape name ("square", "disc", "triangle" or "cross").
        colour: Colour name.
        angle: Rotation of the shape in radians (constant over the clip).
        centres: Per-frame object centre (x, y) in pixels, shape (T, 2); y grows downwards.
        radii: Per-frame object radius in pixels, shape (T,).
    """

    label: int
    shape: str
    colour: str
    angle: float
    centres: np.ndarray
    radii: np.ndarray

    @property
    def placeholder(self) -> str:
        """The object's name as filled into the template's [something]."""
        return f"{self.colour} {self.shape}"


def plan_clip(config: SyntheticConfig, split: str, index: int) -> ClipPlan:
    """Draw the object and trajectory of video `index` of `split`; pure and cheap (no rendering).

    The class is `index % num_classes`. The start position is uniform over every position from which the whole
    path stays in frame, so, with the time reversal of paired classes, single frames carry no class information.
    """
    if not 0 <= index < config.split_size(split):
        raise ValueError(f"index must be in [0, {config.split_size(split)}) for split {split!r}, got {index}")
    rng = _rng(config, split, index, _PLAN_STREAM)
    label = index % config.num_classes
    motion = _MOTIONS[label]
    length = int(rng.integers(config.min_frames, config.frames + 1))
    progress = np.linspace(0.0, 1.0, length)
    scale = min(config.height, config.width)
    if motion.direction is None:
        radii = rng.uniform(0.06, 0.09) * scale * rng.uniform(1.8, 2.4) ** progress
        displacement = rng.uniform(-0.05, 0.05, size=2) * scale
    else:
        radii = np.full(length, rng.uniform(0.08, 0.13) * scale)
        travel = rng.uniform(0.35, 0.65)
        room = np.array([config.width, config.height]) - 2 * (radii.max() + 1)
        displacement = travel * room * np.array(motion.direction)
    margin = radii.max() + 1
    low = margin + np.maximum(0.0, -displacement)
    high = np.array([config.width, config.height]) - margin - np.maximum(0.0, displacement)
    start = rng.uniform(low, high)
    centres = start + progress[:, None] * displacement
    if motion.reverse:
        centres, radii = centres[::-1].copy(), radii[::-1].copy()
    return ClipPlan(
        label=label,
        shape=str(rng.choice(list(_SHAPES))),
        colour=str(rng.choice(list(_COLOURS))),
        angle=float(rng.uniform(0.0, 2 * np.pi)),
        centres=centres,
        radii=radii,
    )


def render_clip(config: SyntheticConfig, split: str, index: int) -> np.ndarray:
    """Render video `index` of `split` as uint8 RGB frames (T, H, W, 3), drawing the object along `plan_clip`."""
    plan = plan_clip(config, split, index)
    rng = _rng(config, split, index, _RENDER_STREAM)
    background = _background(rng, config.height, config.width)
    scale = min(config.height, config.width)
    _draw(
        background,
        shape=str(rng.choice(list(_SHAPES))),
        colour=_COLOURS[str(rng.choice(list(_COLOURS)))],
        centre=rng.uniform([0, 0], [config.width, config.height]),
        radius=rng.uniform(0.07, 0.12) * scale,
        angle=rng.uniform(0.0, 2 * np.pi),
    )
    frames = np.repeat(background[None], len(plan.radii), axis=0)
    for frame, centre, radius in zip(frames, plan.centres, plan.radii):
        _draw(frame, plan.shape, _COLOURS[plan.colour], centre, radius, plan.angle)
    noise = rng.normal(0.0, 2.0, size=frames.shape)
    return np.clip(frames + noise, 0, 255).round().astype(np.uint8)


def _rng(config: SyntheticConfig, split: str, index: int, stream: int) -> np.random.Generator:
    """Independent generator per (seed, split, video, stream), so videos do not depend on generation order."""
    return np.random.default_rng(np.random.SeedSequence((config.seed, _SPLIT_CODES[split], index, stream)))


def _background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Static mid-grey background: a smooth two-colour gradient in a random direction plus low-contrast texture."""
    ends = rng.uniform(100, 140, size=(2, 1)) + rng.uniform(-12, 12, size=(2, 3))
    angle = rng.uniform(0.0, 2 * np.pi)
    ys, xs = np.mgrid[0:height, 0:width]
    along = xs * np.cos(angle) + ys * np.sin(angle)
    weight = ((along - along.min()) / (along.max() - along.min()))[..., None]
    gradient = ends[0] * (1 - weight) + ends[1] * weight
    texture = cv2.GaussianBlur(rng.normal(0.0, 8.0, size=(height, width, 3)), (3, 3), 0)
    return np.clip(gradient + texture, 0, 255).round().astype(np.uint8)


def _draw(
    image: np.ndarray, shape: str, colour: tuple[int, int, int], centre: np.ndarray, radius: float, angle: float
) -> None:
    """Fill a rotated, scaled shape into `image` in place, anti-aliased at sub-pixel precision."""
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = _SHAPES[shape] @ rotation.T * radius + centre
    fixed = np.round(points * (1 << _DRAW_SHIFT)).astype(np.int32)
    cv2.fillPoly(image, [fixed], colour, lineType=cv2.LINE_AA, shift=_DRAW_SHIFT)


def generate_sthv2(root: Path, config: SyntheticConfig, progress: bool = True) -> None:
    """Generate the dataset in the real sthv2 layout under `root`, atomically (see `generate_atomically`)."""
    generate_atomically(root, lambda staging: _write_dataset(staging, config, progress))


def ensure_sthv2(root: Path, config: SyntheticConfig, progress: bool = True) -> Path:
    """Return `root` holding the dataset of `config`, generating it only if `root` is absent or empty."""
    return ensure_generated(root, config.fingerprint_fields(), lambda: generate_sthv2(root, config, progress))


def generate_atomically(root: Path, write: Callable[[Path], None]) -> None:
    """Run `write` into a temporary sibling folder (videos, annotations, then the marker) and rename it to `root`,
    so an interrupted generation never leaves a partial dataset under `root`.

    Raises:
        DataError: `root` already exists and is not an empty folder.
    """
    if _holds_data(root):
        raise DataError(f"{root}: already exists and is not empty; refusing to overwrite it")
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = root.with_name(f".{root.name}.{os.getpid()}.{uuid.uuid4().hex}.partial")
    try:
        write(staging)
        os.replace(staging, root)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)
        if not _holds_data(root):
            raise
        # Another process generated the same dataset first: the caller checks its marker.
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def ensure_generated(root: Path, expected: dict[str, int], generate: Callable[[], None]) -> Path:
    """Return `root` if it holds the synthetic dataset whose marker equals `expected`; call `generate` if `root` is
    absent or empty.

    Raises:
        DataError: `root` holds other data: no marker, an unreadable one, or one from different settings.
            Existing data is never deleted.
    """
    if not _holds_data(root):
        generate()
        return root
    marker = root / MARKER_NAME
    if not marker.is_file():
        raise DataError(f"{root}: exists without a {MARKER_NAME} marker, so it is not a generated synthetic dataset")
    try:
        found = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{marker}: unreadable synthetic dataset marker ({error})") from error
    if not isinstance(found, dict):
        raise DataError(f"{marker}: synthetic dataset marker is not a JSON object")
    differences = [
        f"{key}={found.get(key)!r} (wanted {expected.get(key)!r})"
        for key in sorted(expected.keys() | found.keys())
        if found.get(key) != expected.get(key)
    ]
    if differences:
        raise DataError(f"{root}: holds a synthetic dataset from other settings: {', '.join(differences)}")
    return root


def _holds_data(root: Path) -> bool:
    """Whether `root` exists as anything but an empty folder."""
    return root.exists() and not (root.is_dir() and not any(root.iterdir()))


def _write_dataset(folder: Path, config: SyntheticConfig, progress: bool) -> None:
    """Write videos, annotation files and, last, the marker into a fresh `folder`."""
    videos = folder / VIDEO_DIR
    videos.mkdir(parents=True)
    templates = TEMPLATES[: config.num_classes]
    labels = {class_name(template): str(index) for index, template in enumerate(templates)}
    annotations: dict[str, list[dict[str, object]]] = {}
    next_id = 1
    total = sum(config.split_size(split) for split in SPLITS)
    with tqdm(total=total, desc="synthetic sthv2", unit="video", disable=not progress) as bar:
        for split in SPLITS:
            entries = []
            for index in range(config.split_size(split)):
                plan = plan_clip(config, split, index)
                video_id = str(next_id)
                next_id += 1
                encode_video(videos / f"{video_id}.webm", render_clip(config, split, index), config.fps)
                template = templates[plan.label]
                entries.append(
                    {
                        "id": video_id,
                        "label": template.replace("[something]", plan.placeholder).lower(),
                        "template": template,
                        "placeholders": [plan.placeholder],
                    }
                )
                bar.update()
            annotations[split] = entries
    _write_json(folder / LABELS_FILE, labels)
    for split in SPLITS:
        _write_json(folder / SPLIT_FILES[split], annotations[split])
    _write_json(folder / TEST_FILE, [])
    _write_json(folder / MARKER_NAME, config.fingerprint_fields())


def _write_json(path: Path, value: object) -> None:
    """Write JSON with stable formatting, so equal content gives equal bytes."""
    path.write_text(json.dumps(value, indent=2) + "\n")
