"""Synthetic Something-Something-v2: classes are defined by motion; appearance is a partial cue, as in the real set.

Each clip shows the labelled object (a filled shape in a saturated colour, e.g. "yellow square") doing its class's
motion over a static textured background, together with a distractor: a filled white or black shape. Why each
ingredient is there:

- Motion defines the class. Paired classes (left/right, up/down, the diagonals, approach/recede) are time
  reversals of each other with the same distribution of start positions, speed profiles and objects, so the
  position or size of an object in one frame tells nothing about the class: telling a pair apart needs time.
- Appearance is a partial cue, as objects are in Something-Something-v2. With probability `typical_percent` the
  labelled object is its class's typical object (one colour and shape per class, different within every pair),
  otherwise any of the 32 objects; so one frame predicts the class well above chance but far from always (with 8
  classes at 50 %, the best guess from the object alone is right for about 55 % of the clips).
- The distractor keeps motion alone from deciding the class. With probability `moving_distractor_percent` it
  performs another class's motion; it is bright or dark against the grey background as the objects are, so grey
  level optical flow shows two movers of the same kind, and only colour, which RGB frames and their differences
  carry, tells which one the label is about. Otherwise it stands still.
- The labelled object is the only saturated thing in a frame, so single-frame object recognition (the smoke
  profile's stand-in for ImageNet pretraining, `VideoDataset.object_task`) is well posed.
- Speeds vary from frame to frame, so a clip's motion is not a constant-velocity template.
- Every object stays whole inside the stage: the centred square of the frame's short side inset by `margin`
  pixels, which the test-time centre crop keeps when `margin` is what that crop cuts off.

Generator version 1 had none of this (any object, a still distractor of the same kind anywhere in the frame,
constant speeds): its RGB models stayed near chance and its Flow models reached 95 % top-1, and its object
recognition was undecidable from one frame.

Every random choice follows the dataset seed; the dataset is written in the real sthv2 file layout.
"""

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from mml import validation
from mml.data.generated import MARKER_NAME, check_frame_size, ensure_generated, generate_into
from mml.data.sthv2 import LABELS_FILE, SPLIT_FILES, TEST_FILE, VIDEO_DIR, class_name
from mml.data.video import encode_video

GENERATOR_VERSION = 2
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
# The labelled objects' colours are saturated, the distractor's are not: one frame tells which object is labelled.
OBJECT_COLOURS: tuple[str, ...] = ("yellow", "cyan", "orange", "pink", "lime", "red", "blue", "purple")
DISTRACTOR_COLOURS: tuple[str, ...] = ("white", "black")
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
        margin: Pixels on each side of the centred short-side square that objects never enter (0..short side / 8).
        typical_percent: Chance (in %) that the labelled object is its class's typical object.
        moving_distractor_percent: Chance (in %) that the distractor performs another class's motion.
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
    margin: int = 4
    typical_percent: int = 50
    moving_distractor_percent: int = 50

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            validation.typed(field.name, getattr(self, field.name), int)
        validation.within("num_classes", self.num_classes, 2, len(_MOTIONS))
        for name in ("train_per_class", "val_per_class", "fps"):
            validation.positive(name, getattr(self, name))
        validation.within("min_frames", self.min_frames, 2, self.frames)
        check_frame_size(self.height, self.width)
        validation.positive("seed", self.seed, zero=True)
        validation.within("margin", self.margin, 0, min(self.height, self.width) // 8)  # short side / 8
        for name in ("typical_percent", "moving_distractor_percent"):
            validation.within(name, getattr(self, name), 0, 100)

    def fingerprint_fields(self) -> dict[str, int]:
        """All fields plus the generator version: equal fingerprints mean byte-identical datasets."""
        return {**dataclasses.asdict(self), "generator_version": GENERATOR_VERSION}

    def split_size(self, split: str) -> int:
        """Number of videos in a split ("train" or "validation")."""
        if split not in _SPLIT_CODES:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        per_class = self.train_per_class if split == "train" else self.val_per_class
        return per_class * self.num_classes

    def stage(self) -> tuple[np.ndarray, np.ndarray]:
        """The (x, y) corners low and high of the region objects stay inside: the centred square of the short
        side, inset by `margin`."""
        side = min(self.height, self.width)
        corner = (np.array([self.width, self.height]) - side) / 2
        return corner + self.margin, corner + side - self.margin


@dataclass(frozen=True, eq=False)
class Track:
    """One drawn object and its path.

    Attributes:
        shape: Shape name ("square", "disc", "triangle" or "cross").
        colour: Colour name (a key of the palette).
        angle: Rotation of the shape in radians (constant over the clip).
        centres: Per-frame object centre (x, y) in pixels, shape (T, 2); y grows downwards.
        radii: Per-frame object radius in pixels, shape (T,).
        motion: Index of the motion it performs (into TEMPLATES), or None when it stands still.
    """

    shape: str
    colour: str
    angle: float
    centres: np.ndarray
    radii: np.ndarray
    motion: int | None


@dataclass(frozen=True, eq=False)
class ClipPlan:
    """The labelled object of one clip, its trajectory, and the distractor.

    Attributes:
        label: Class index (into TEMPLATES); the labelled object performs its motion.
        obj: The labelled object (a saturated colour).
        typical: Whether `obj` is its class's typical object (drawn so, not merely equal to it by chance).
        distractor: The white or black distractor, still or performing the motion of another class.
    """

    label: int
    obj: Track
    typical: bool
    distractor: Track

    @property
    def shape(self) -> str:
        return self.obj.shape

    @property
    def colour(self) -> str:
        return self.obj.colour

    @property
    def centres(self) -> np.ndarray:
        return self.obj.centres

    @property
    def radii(self) -> np.ndarray:
        return self.obj.radii

    @property
    def placeholder(self) -> str:
        """The object's name as filled into the template's [something]."""
        return f"{self.colour} {self.shape}"


def typical_object(label: int) -> tuple[str, str]:
    """The (colour, shape) of class `label`'s typical object: the objects of the two classes of a pair differ in
    both colour and shape, and no two classes share one."""
    shapes = list(_SHAPES)
    return OBJECT_COLOURS[label % len(OBJECT_COLOURS)], shapes[(label + label // len(OBJECT_COLOURS)) % len(shapes)]


def plan_clip(config: SyntheticConfig, split: str, index: int) -> ClipPlan:
    """Draw the objects and trajectories of video `index` of `split`; pure and cheap (no rendering).

    The class is `index % num_classes`. Draw order: length, the labelled object's trajectory, its appearance, then
    the distractor's appearance and path (see the module docstring for the why of each).
    """
    if not 0 <= index < config.split_size(split):
        raise ValueError(f"index must be in [0, {config.split_size(split)}) for split {split!r}, got {index}")
    rng = _rng(config, split, index, _PLAN_STREAM)
    label = index % config.num_classes
    length = int(rng.integers(config.min_frames, config.frames + 1))
    centres, radii = _trajectory(config, label, length, rng)
    typical = bool(rng.random() < config.typical_percent / 100)
    if typical:
        colour, shape = typical_object(label)
    else:
        colour, shape = str(rng.choice(OBJECT_COLOURS)), str(rng.choice(list(_SHAPES)))
    obj = Track(shape, colour, float(rng.uniform(0.0, 2 * np.pi)), centres, radii, label)
    distractor_shape = str(rng.choice(list(_SHAPES)))
    distractor_colour = str(rng.choice(DISTRACTOR_COLOURS))
    distractor_angle = float(rng.uniform(0.0, 2 * np.pi))
    motion = None
    if rng.random() < config.moving_distractor_percent / 100:
        motion = int(rng.choice([other for other in range(config.num_classes) if other != label]))
        path, sizes = _trajectory(config, motion, length, rng)
    else:
        sizes = np.full(length, _moving_radius(config, rng))
        low, high = config.stage()
        path = np.repeat(rng.uniform(low + sizes[0] + 1, high - sizes[0] - 1)[None], length, axis=0)
    distractor = Track(distractor_shape, distractor_colour, distractor_angle, path, sizes, motion)
    return ClipPlan(label=label, obj=obj, typical=typical, distractor=distractor)


def _moving_radius(config: SyntheticConfig, rng: np.random.Generator) -> float:
    """The radius of an object that moves across the image (or stands still)."""
    return float(rng.uniform(0.08, 0.13) * min(config.height, config.width))


def _trajectory(
    config: SyntheticConfig, motion_index: int, length: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Centres (T, 2) and radii (T,) of an object performing motion `motion_index` over `length` frames.

    The speed of each step is drawn independently (0.4x to 1.6x the mean), and the start is uniform over every
    position from which the whole path stays inside the stage; a reversed motion runs its forward path backwards,
    so with these time-symmetric draws its single frames are distributed as those of its pair.
    """
    motion = _MOTIONS[motion_index]
    steps = rng.uniform(0.4, 1.6, size=length - 1)
    progress = np.concatenate([[0.0], np.cumsum(steps)]) / max(steps.sum(), 1e-12)
    scale = min(config.height, config.width)
    low, high = config.stage()
    if motion.direction is None:
        radii = rng.uniform(0.06, 0.09) * scale * rng.uniform(1.8, 2.4) ** progress
        displacement = rng.uniform(-0.05, 0.05, size=2) * scale
    else:
        radii = np.full(length, _moving_radius(config, rng))
        room = high - low - 2 * (radii.max() + 1)
        displacement = rng.uniform(0.35, 0.65) * room * np.array(motion.direction)
    margin = radii.max() + 1
    start = rng.uniform(low + margin + np.maximum(0.0, -displacement), high - margin - np.maximum(0.0, displacement))
    centres = start + progress[:, None] * displacement
    if motion.reverse:
        centres, radii = centres[::-1].copy(), radii[::-1].copy()
    return centres, radii


def render_clip(config: SyntheticConfig, split: str, index: int) -> np.ndarray:
    """Render video `index` of `split` as uint8 RGB frames (T, H, W, 3): the distractor, then the labelled object
    over it, along `plan_clip`."""
    plan = plan_clip(config, split, index)
    rng = _rng(config, split, index, _RENDER_STREAM)
    frames = np.repeat(_background(rng, config.height, config.width)[None], len(plan.radii), axis=0)
    for t, frame in enumerate(frames):
        for track in (plan.distractor, plan.obj):
            _draw(frame, track.shape, _COLOURS[track.colour], track.centres[t], track.radii[t], track.angle)
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
    """Generate the dataset in the real sthv2 layout under `root`, atomically (see `generate_into`)."""
    generate_into(root, lambda staging: _write_dataset(staging, config, progress))


def ensure_sthv2(root: Path, config: SyntheticConfig, progress: bool = True) -> Path:
    """Return `root` holding the dataset of `config`, generating it only if `root` is absent or empty."""
    return ensure_generated(root, config.fingerprint_fields(), lambda: generate_sthv2(root, config, progress))


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
            entries: list[dict[str, object]] = []
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
