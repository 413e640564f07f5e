"""Synthetic Charades: multi-label videos whose actions are motions that each span only part of the video.

Each video shows one to three objects over a static textured background. Every object performs one action (a class
of the synthetic sthv2 motions: left to right, up, towards the camera, ...) during its own random time interval and
stands still before and after it, so a clip's classes (PySlowFast's per-clip training target) generally differ from
the video's. As in the sthv2 generator, appearance is a partial cue: with probability `typical_percent` an object is
its action's typical object (`mml.data.synthetic.typical_object`), otherwise it has a colour no other object of the
video has and any shape; without that cue single frames would tell nothing about the classes, and RGB models stayed
at the mAP of random scores. The dataset is written in the real Charades layout: CSV files, a classes file and H.264
``.mp4`` videos.
"""

import csv
import dataclasses
import io
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mml import validation
from mml.data.charades import CLASSES_FILE, CSV_COLUMNS, SPLIT_FILES, VIDEO_DIR
from mml.data.generated import MARKER_NAME, check_frame_size, ensure_generated, generate_into
from mml.data.sthv2 import class_name
from mml.data.synthetic import (
    _COLOURS,
    _MOTIONS,
    _SHAPES,
    TEMPLATES,
    _background,
    _draw,
    typical_object,
)
from mml.data.video import encode_video

GENERATOR_VERSION = 2
SPLITS = tuple(SPLIT_FILES)
_SPLIT_CODES = {"train": 0, "test": 1}
_ID_PREFIXES = {"train": "TR", "test": "TE"}
_PLAN_STREAM, _RENDER_STREAM = 0, 1
_MAX_OBJECTS = 3


@dataclass(frozen=True)
class SyntheticCharadesConfig:
    """Size and randomness of a synthetic Charades dataset.

    Attributes:
        num_classes: Number of classes, taken in order from the synthetic sthv2 motions (2..10).
        train_videos: Videos in the train split.
        test_videos: Videos in the test split.
        min_frames: Minimum frames per video; lengths are uniform in [min_frames, frames].
        frames: Maximum frames per video.
        height: Frame height in pixels (even, >= 32).
        width: Frame width in pixels (even, >= 32).
        fps: Frame rate written into the videos (Charades: 24).
        seed: Root seed of every random choice.
        typical_percent: Chance (in %) that an object is its action's typical object.
    """

    num_classes: int = 10
    train_videos: int = 60
    test_videos: int = 20
    min_frames: int = 32
    frames: int = 48
    height: int = 48
    width: int = 64
    fps: int = 24
    seed: int = 0
    typical_percent: int = 60

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            validation.typed(field.name, getattr(self, field.name), int)
        validation.within("num_classes", self.num_classes, 2, len(_MOTIONS))
        for name in ("train_videos", "test_videos", "fps"):
            validation.positive(name, getattr(self, name))
        validation.within("min_frames", self.min_frames, 4, self.frames)
        check_frame_size(self.height, self.width)
        validation.positive("seed", self.seed, zero=True)
        validation.within("typical_percent", self.typical_percent, 0, 100)

    def fingerprint_fields(self) -> dict[str, int]:
        """All fields plus the generator version: equal fingerprints mean byte-identical datasets."""
        return {**dataclasses.asdict(self), "generator_version": GENERATOR_VERSION}

    def split_source(self) -> dict[str, int]:
        """What shapes every video of either split: the fingerprint's fields but the split sizes (each video comes
        from its own seed, so a split's videos do not depend on the other's size; its records count its own)."""
        fields = self.fingerprint_fields()
        return {name: value for name, value in fields.items() if name not in ("train_videos", "test_videos")}

    def split_size(self, split: str) -> int:
        """Number of videos in a split ("train" or "test")."""
        if split not in _SPLIT_CODES:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        return self.train_videos if split == "train" else self.test_videos


@dataclass(frozen=True, eq=False)
class ObjectPlan:
    """One object, the action it performs and its trajectory over the whole video.

    Attributes:
        label: Class index of its action (into the synthetic sthv2 motions).
        shape: Shape name.
        colour: Colour name.
        angle: Rotation of the shape in radians (constant).
        first: Frame at which the action starts (the object is still up to and including it).
        last: Frame at which the action ends (the object is still from it on); first < last.
        centres: Per-frame centre (x, y) in pixels, shape (T, 2); y grows downwards.
        radii: Per-frame radius in pixels, shape (T,).
    """

    label: int
    shape: str
    colour: str
    angle: float
    first: int
    last: int
    centres: np.ndarray
    radii: np.ndarray

    @property
    def name(self) -> str:
        """The object's name, e.g. "yellow square"."""
        return f"{self.colour} {self.shape}"


@dataclass(frozen=True, eq=False)
class VideoPlan:
    """The objects of one video (distinct classes) and its length in frames."""

    frames: int
    objects: tuple[ObjectPlan, ...]


def video_id(split: str, index: int) -> str:
    """Id of video `index` of `split`, e.g. "TR0007" (Charades ids are short upper-case strings too)."""
    return f"{_ID_PREFIXES[split]}{index:04d}"


def plan_video(config: SyntheticCharadesConfig, split: str, index: int) -> VideoPlan:
    """Draw the objects, actions, intervals and trajectories of video `index` of `split`; pure and cheap.

    The first object's class is `index % num_classes`, so every class occurs; further objects take other classes.
    Each action lasts between a quarter and three quarters of the video, so no action spans the whole video.
    """
    if not 0 <= index < config.split_size(split):
        raise ValueError(f"index must be in [0, {config.split_size(split)}) for split {split!r}, got {index}")
    rng = _rng(config, split, index, _PLAN_STREAM)
    length = int(rng.integers(config.min_frames, config.frames + 1))
    count = int(rng.integers(1, min(_MAX_OBJECTS, config.num_classes) + 1))
    others = [label for label in range(config.num_classes) if label != index % config.num_classes]
    labels = [index % config.num_classes, *(int(c) for c in rng.choice(others, count - 1, replace=False))]
    objects: list[ObjectPlan] = []
    for label in labels:
        duration = int(rng.integers(max(2, length // 4), max(2, 3 * length // 4) + 1))
        first = int(rng.integers(0, length - duration + 1))
        last = first + duration - 1
        progress = np.clip((np.arange(length) - first) / (last - first), 0.0, 1.0)
        centres, radii = _trajectory(rng, config, label, progress)
        if rng.random() < config.typical_percent / 100:
            colour, shape = typical_object(label)
        else:
            taken = {obj.colour for obj in objects}
            colour = str(rng.choice([name for name in _COLOURS if name not in taken]))
            shape = str(rng.choice(list(_SHAPES)))
        objects.append(
            ObjectPlan(
                label=label,
                shape=shape,
                colour=colour,
                angle=float(rng.uniform(0.0, 2 * np.pi)),
                first=first,
                last=last,
                centres=centres,
                radii=radii,
            )
        )
    return VideoPlan(frames=length, objects=tuple(objects))


def _trajectory(
    rng: np.random.Generator, config: SyntheticCharadesConfig, label: int, progress: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Centres (T, 2) and radii (T,) of an object doing motion `label` as `progress` goes from 0 to 1.

    As in the sthv2 generator, the start is uniform over the positions from which the whole path stays in frame,
    and a reversed motion runs its forward path backwards.
    """
    motion = _MOTIONS[label]
    along = 1.0 - progress if motion.reverse else progress
    scale = min(config.height, config.width)
    size = np.array([config.width, config.height])
    if motion.direction is None:
        radii = rng.uniform(0.05, 0.07) * scale * rng.uniform(1.8, 2.4) ** along
        displacement = rng.uniform(-0.05, 0.05, size=2) * scale
    else:
        radii = np.full(len(progress), rng.uniform(0.06, 0.09) * scale)
        room = size - 2 * (radii.max() + 1)
        displacement = rng.uniform(0.35, 0.65) * room * np.array(motion.direction)
    margin = radii.max() + 1
    start = rng.uniform(margin + np.maximum(0.0, -displacement), size - margin - np.maximum(0.0, displacement))
    return start + along[:, None] * displacement, radii


def render_video(config: SyntheticCharadesConfig, split: str, index: int) -> np.ndarray:
    """Render video `index` of `split` as uint8 RGB frames (T, H, W, 3), drawing the objects along `plan_video`."""
    plan = plan_video(config, split, index)
    rng = _rng(config, split, index, _RENDER_STREAM)
    frames = np.repeat(_background(rng, config.height, config.width)[None], plan.frames, axis=0)
    for t, frame in enumerate(frames):
        for obj in plan.objects:
            _draw(frame, obj.shape, _COLOURS[obj.colour], obj.centres[t], obj.radii[t], obj.angle)
    noise = rng.normal(0.0, 2.0, size=frames.shape)
    return np.clip(frames + noise, 0, 255).round().astype(np.uint8)


def _rng(config: SyntheticCharadesConfig, split: str, index: int, stream: int) -> np.random.Generator:
    """Independent generator per (seed, split, video, stream), so videos do not depend on generation order."""
    return np.random.default_rng(np.random.SeedSequence((config.seed, _SPLIT_CODES[split], index, stream)))


def generate_charades(root: Path, config: SyntheticCharadesConfig, progress: bool = True) -> None:
    """Generate the dataset in the real Charades layout under `root`, atomically (see `generate_into`)."""
    generate_into(root, lambda staging: _write_dataset(staging, config, progress))


def ensure_charades(root: Path, config: SyntheticCharadesConfig, progress: bool = True) -> Path:
    """Return `root` holding the dataset of `config`, generating it only if `root` is absent or empty."""
    return ensure_generated(root, config.fingerprint_fields(), lambda: generate_charades(root, config, progress))


def _write_dataset(folder: Path, config: SyntheticCharadesConfig, progress: bool) -> None:
    """Write videos, the classes file, the split CSV files and, last, the marker into a fresh `folder`."""
    videos = folder / VIDEO_DIR
    videos.mkdir(parents=True)
    names = [class_name(template).replace("something", "an object") for template in TEMPLATES[: config.num_classes]]
    (folder / CLASSES_FILE).write_text("".join(f"c{index:03d} {name}\n" for index, name in enumerate(names)))
    total = sum(config.split_size(split) for split in SPLITS)
    with tqdm(total=total, desc="synthetic charades", unit="video", disable=not progress) as bar:
        for split in SPLITS:
            rows = []
            for index in range(config.split_size(split)):
                frames = render_video(config, split, index)
                encode_video(videos / f"{video_id(split, index)}.mp4", frames, config.fps, codec="libx264")
                rows.append(_csv_row(config, split, index, names))
                bar.update()
            (folder / SPLIT_FILES[split]).write_text(_csv_text(rows))
    (folder / MARKER_NAME).write_text(json.dumps(config.fingerprint_fields(), indent=2) + "\n")


def _csv_row(config: SyntheticCharadesConfig, split: str, index: int, names: list[str]) -> dict[str, str]:
    """The CSV row of one video; action times are in seconds with two decimals, as in Charades."""
    plan = plan_video(config, split, index)
    script = " ".join(f"{names[obj.label].replace('an object', f'the {obj.name}')}." for obj in plan.objects)
    return {
        "id": video_id(split, index),
        "subject": "SYNTH",
        "scene": "Synthetic",
        "quality": "7",
        "relevance": "7",
        "verified": "Yes",
        "script": script,
        "objects": ";".join(obj.name for obj in plan.objects),
        "descriptions": script,
        "actions": ";".join(
            f"c{obj.label:03d} {_centiseconds(obj.first, config.fps, up=False)} "
            f"{_centiseconds(obj.last, config.fps, up=True)}"
            for obj in plan.objects
        ),
        "length": f"{plan.frames / config.fps:.2f}",
    }


def _centiseconds(frame: int, fps: int, *, up: bool) -> str:
    """Time of `frame` in seconds, two decimals, rounded down (action start) or up (action end).

    Rounding outwards keeps every frame of the action inside the written interval and, as a frame lasts longer
    than 0.01 s at any fps <= 100, no frame outside it.
    """
    hundredths = -(-frame * 100 // fps) if up else frame * 100 // fps
    return f"{hundredths // 100}.{hundredths % 100:02d}"


def _csv_text(rows: list[dict[str, str]]) -> str:
    """CSV text with the Charades header, quoting only where needed, with stable line endings."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()
