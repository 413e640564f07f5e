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

Long videos for a per-segment policy (AdaMML, which splits a video into equal regions and learns per region which
modalities to run): with `regions` > 1 a video is that many regions of one drawn length, and the labelled object
performs its class's motion in only `informative_regions` of them, chosen at random per video and listed in the
dataset's `regions.json` (video id -> region indices), so whether a policy picks those regions can be measured.

- Regions have equal lengths, so splitting a video into `regions` equal segments, as AdaMML does, finds them exactly.
- Each region is a shot of the same scene: the background and both objects' appearance stay, and their paths start
  afresh at random places in every region. Every region boundary is thus a cut in every video and tells nothing
  about which regions are informative; a continuous path would tie each motion's start to the previous one's end,
  and positions would leak the class.
- Outside its informative regions the labelled object stands still, visible: appearance is as good a cue in every
  region as in the whole clip, so only the motion-based modalities gain from picking regions, and those are what
  a policy can skip. A still object has a moving one's size, so its size says nothing about approach or recede.
- In every region the distractor independently performs another class's motion with `moving_distractor_percent`,
  so an uninformative region may hold a mover that misleads grey-level optical flow. The cheap cue that finds the
  informative regions is the colour of what moves, which RGB frame differences (AdaMML's policy input for flow)
  carry: a saturated mover appears only there.
- With one region (the default) the plans draw exactly what they drew before regions existed (the informative
  regions come from a random stream of their own) and the new fields stay out of the fingerprint, so videos,
  annotations and fingerprints are those of earlier datasets, and stores and tables keyed by them still match.

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
_PLAN_STREAM, _RENDER_STREAM, _REGION_STREAM = 0, 1, 2
REGIONS_FILE = "regions.json"
# Fields added after datasets were in use: left out of the fingerprint at their defaults (see the module docstring).
_LATER_FIELDS = ("regions", "informative_regions")


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
        frames: Maximum frames per region.
        min_frames: Minimum frames per region; a video's region length is uniform in [min_frames, frames], and the
            video has `regions` times that many frames.
        height: Frame height in pixels (even, >= 32).
        width: Frame width in pixels (even, >= 32).
        fps: Frame rate written into the videos.
        seed: Root seed of every random choice.
        margin: Pixels on each side of the centred short-side square that objects never enter (0..short side / 8).
        typical_percent: Chance (in %) that the labelled object is its class's typical object.
        moving_distractor_percent: Chance (in %) that the distractor performs another class's motion, per region.
        regions: Number of equal-length regions of a video (>= 1).
        informative_regions: Number of regions, chosen at random per video, in which the labelled object performs
            its class's motion; it stands still in the others (1..regions).
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
    regions: int = 1
    informative_regions: int = 1

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
        validation.positive("regions", self.regions)
        validation.within("informative_regions", self.informative_regions, 1, self.regions)

    def fingerprint_fields(self) -> dict[str, int]:
        """All fields plus the generator version: equal fingerprints mean byte-identical datasets. The later fields
        are left out at their defaults, which generate what was generated before them."""
        defaults = {field.name: field.default for field in dataclasses.fields(self)}
        fields = {
            name: value
            for name, value in dataclasses.asdict(self).items()
            if name not in _LATER_FIELDS or value != defaults[name]
        }
        return {**fields, "generator_version": GENERATOR_VERSION}

    def split_source(self) -> dict[str, int]:
        """What shapes every video of either split: the fingerprint's fields but the split sizes (each video comes
        from its own seed, so a split's videos do not depend on the other's size; its records count its own)."""
        fields = self.fingerprint_fields()
        return {name: value for name, value in fields.items() if name not in ("train_per_class", "val_per_class")}

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
        motions: Per region, the index of the motion it performs there (into TEMPLATES), or None where it stands
            still.
    """

    shape: str
    colour: str
    angle: float
    centres: np.ndarray
    radii: np.ndarray
    motions: tuple[int | None, ...]


@dataclass(frozen=True, eq=False)
class ClipPlan:
    """The labelled object of one clip, its trajectory, and the distractor.

    Attributes:
        label: Class index (into TEMPLATES); the labelled object performs its motion in the informative regions.
        obj: The labelled object (a saturated colour).
        typical: Whether `obj` is its class's typical object (drawn so, not merely equal to it by chance).
        distractor: The white or black distractor, per region still or performing the motion of another class.
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
    def informative(self) -> tuple[int, ...]:
        """The regions in which the labelled object performs the class's motion, in order."""
        return tuple(region for region, motion in enumerate(self.obj.motions) if motion is not None)

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

    The class is `index % num_classes`. Draw order: region length, the labelled object's path, its appearance, then
    the distractor's appearance, motions and path (see the module docstring for the why of each).
    """
    if not 0 <= index < config.split_size(split):
        raise ValueError(f"index must be in [0, {config.split_size(split)}) for split {split!r}, got {index}")
    rng = _rng(config, split, index, _PLAN_STREAM)
    label = index % config.num_classes
    length = int(rng.integers(config.min_frames, config.frames + 1))
    informative = _informative_regions(config, split, index)
    motions = tuple(label if region in informative else None for region in range(config.regions))
    centres, radii = _path(config, motions, length, rng)
    typical = bool(rng.random() < config.typical_percent / 100)
    if typical:
        colour, shape = typical_object(label)
    else:
        colour, shape = str(rng.choice(OBJECT_COLOURS)), str(rng.choice(list(_SHAPES)))
    obj = Track(shape, colour, float(rng.uniform(0.0, 2 * np.pi)), centres, radii, motions)
    distractor_shape = str(rng.choice(list(_SHAPES)))
    distractor_colour = str(rng.choice(DISTRACTOR_COLOURS))
    distractor_angle = float(rng.uniform(0.0, 2 * np.pi))
    distractor_motions = tuple(_distractor_motion(config, label, rng) for _ in range(config.regions))
    path, sizes = _path(config, distractor_motions, length, rng)
    distractor = Track(distractor_shape, distractor_colour, distractor_angle, path, sizes, distractor_motions)
    return ClipPlan(label=label, obj=obj, typical=typical, distractor=distractor)


def _informative_regions(config: SyntheticConfig, split: str, index: int) -> tuple[int, ...]:
    """The regions of video `index` of `split` that carry its class's motion, drawn from a stream of their own so
    that the plan stream of a one-region video draws what it drew before regions existed."""
    rng = _rng(config, split, index, _REGION_STREAM)
    chosen = rng.choice(config.regions, size=config.informative_regions, replace=False)
    return tuple(sorted(int(region) for region in chosen))


def _distractor_motion(config: SyntheticConfig, label: int, rng: np.random.Generator) -> int | None:
    """The motion of another class than `label` that the distractor performs in a region, or None (standing still)."""
    if rng.random() >= config.moving_distractor_percent / 100:
        return None
    return int(rng.choice([other for other in range(config.num_classes) if other != label]))


def _path(
    config: SyntheticConfig, motions: tuple[int | None, ...], length: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Centres (T, 2) and radii (T,) of an object over regions of `length` frames: in region r it performs motion
    `motions[r]`, or stands still where that is None; each region starts afresh, as a new shot of the scene."""
    parts = [
        _still(config, length, rng) if motion is None else _trajectory(config, motion, length, rng)
        for motion in motions
    ]
    return np.concatenate([centres for centres, _ in parts]), np.concatenate([radii for _, radii in parts])


def _still(config: SyntheticConfig, length: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Centres (T, 2) and radii (T,) of an object standing still over `length` frames, anywhere in the stage."""
    radii = np.full(length, _moving_radius(config, rng))
    low, high = config.stage()
    return np.repeat(rng.uniform(low + radii[0] + 1, high - radii[0] - 1)[None], length, axis=0), radii


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
    """Write videos, annotation files, the informative regions (with more than one region) and, last, the marker
    into a fresh `folder`."""
    videos = folder / VIDEO_DIR
    videos.mkdir(parents=True)
    templates = TEMPLATES[: config.num_classes]
    labels = {class_name(template): str(index) for index, template in enumerate(templates)}
    annotations: dict[str, list[dict[str, object]]] = {}
    informative: dict[str, list[int]] = {}
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
                informative[video_id] = list(plan.informative)
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
    if config.regions > 1:  # with one region the whole video is informative, as in datasets from before regions
        _write_json(folder / REGIONS_FILE, informative)
    _write_json(folder / MARKER_NAME, config.fingerprint_fields())


def _write_json(path: Path, value: object) -> None:
    """Write JSON with stable formatting, so equal content gives equal bytes."""
    path.write_text(json.dumps(value, indent=2) + "\n")
