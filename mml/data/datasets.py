"""Opening a profile's dataset (a synthetic one, generated on first use, or a user's Something-Something-v2 or
Charades) and choosing where its frames are read from."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mml.data import charades
from mml.data.cache import FolderFrames, FrameSource, JpegCache, NpyCache, prepare
from mml.data.charades import MultiLabelRecord, read_charades, read_classes
from mml.data.flow_backend import OPENCV, FlowBackend
from mml.data.frame_lists import read_slowfast_frame_list
from mml.data.frames import FolderLayout
from mml.data.rawframes import open_rawframes
from mml.data.regions import InformativeRegions, read_informative_regions
from mml.data.shard import Shard, shard_failures
from mml.data.sthv2 import VideoRecord, dataset_fingerprint, read_sthv2
from mml.data.synthetic import SyntheticConfig, ensure_sthv2
from mml.data.synthetic_charades import SyntheticCharadesConfig, ensure_charades
from mml.errors import DataError, MMLError
from mml.spec.dataset import DatasetConfig

logger = logging.getLogger(__name__)
# Bump when what a cache holds for the same videos changes, so that no run reads frames or flow computed otherwise.
# 2: OpenCV's TV-L1 through its baseline code, the same on every x86-64 CPU (`mml.data.flow`).
CACHE_VERSION = 2


@dataclass(frozen=True)
class VideoDataset:
    """A dataset's classes, training and validation videos, its fingerprints, and where its frames come from:
    decoded from its videos into a cache (packed arrays for tiny synthetic videos, JPEG folders otherwise), or read
    from the frame folders of `frames` when it ships frames (and flow) already extracted.

    Three fingerprints: the whole data set's keys its frame cache; the training split's (`split_fingerprint`) keys
    its runs, so that a run's identity does not depend on the validation videos; the validation split's keys the
    evaluations, so that the same trained runs can be evaluated on more validation videos without training again.
    """

    root: Path
    classes: tuple[str, ...]
    train: tuple[VideoRecord | MultiLabelRecord, ...]
    validation: tuple[VideoRecord | MultiLabelRecord, ...]
    fingerprint: str  # the whole data set (annotations and video files): keys the frame cache
    training_fingerprint: str  # keys runs
    validation_fingerprint: str  # keys evaluations
    frames: FolderLayout | None = None
    packed: bool = False
    regions: InformativeRegions | None = None  # a generated long dataset's (`mml.data.regions`), else None

    def cache_dir(self, cache_root: Path) -> Path:
        """This dataset's folder under a cache root (frames, flow and preparation reports)."""
        return cache_root / f"{self.fingerprint[:16]}-v{CACHE_VERSION}"

    def frame_source(self, cache_root: Path, short_side: int, flow_backend: FlowBackend = OPENCV) -> FrameSource:
        """Where training and evaluation read this dataset's frames and flow at `short_side` (a cache fills its flow
        with `flow_backend`)."""
        if self.frames is not None:
            return FolderFrames(self.frames, short_side)
        return (NpyCache if self.packed else JpegCache)(self.cache_dir(cache_root), short_side, flow_backend)

    def without(self, video_ids: set[str]) -> VideoDataset:
        """The dataset without the videos `video_ids` (e.g. those that failed to prepare); the fingerprints stay."""
        return dataclasses.replace(
            self,
            train=tuple(r for r in self.train if r.video_id not in video_ids),
            validation=tuple(r for r in self.validation if r.video_id not in video_ids),
        )

    @property
    def multilabel(self) -> bool:
        """Whether videos carry several actions (Charades: BCE, mAP) rather than one class."""
        return bool(self.train) and isinstance(self.train[0], MultiLabelRecord)

    def for_target(self, target: str) -> VideoDataset:
        """The dataset labelled for a run's target: `action` (the classes), `object` (see `object_task`) or
        `primary` (see `primary_task`)."""
        return {"action": lambda: self, "object": self.object_task, "primary": self.primary_task}[target]()

    def primary_task(self) -> VideoDataset:
        """Single-label classification of a multi-label dataset by each video's first action.

        The synthetic Charades profiles pretrain on it as their stand-in for Kinetics-400 weights. Videos without
        actions are left out.
        """

        def relabel(records: Sequence[VideoRecord | MultiLabelRecord]) -> tuple[VideoRecord, ...]:
            labelled = [r for r in records if isinstance(r, MultiLabelRecord) and r.actions]
            return tuple(VideoRecord(r.video_id, r.path, r.actions[0].label) for r in labelled)

        return dataclasses.replace(self, train=relabel(self.train), validation=relabel(self.validation))

    def object_task(self) -> VideoDataset:
        """Single-label object recognition: each video labelled by its first placeholder (e.g. "red square").

        The synthetic profiles pretrain on it as their stand-in for ImageNet: an appearance task that single
        frames solve. Validation videos naming an object unseen in training are left out.
        """

        def named(records: Sequence[VideoRecord | MultiLabelRecord]) -> list[VideoRecord]:
            return [r for r in records if isinstance(r, VideoRecord) and r.placeholders]

        objects = tuple(sorted({r.placeholders[0].lower() for r in named(self.train)}))
        index = {name: i for i, name in enumerate(objects)}

        def relabel(records: Sequence[VideoRecord | MultiLabelRecord]) -> tuple[VideoRecord, ...]:
            return tuple(
                dataclasses.replace(r, label=index[r.placeholders[0].lower()])
                for r in named(records)
                if r.placeholders[0].lower() in index
            )

        return dataclasses.replace(
            self, classes=objects, train=relabel(self.train), validation=relabel(self.validation)
        )


def split_fingerprint(source: object, classes: Sequence[str], records: Sequence[VideoRecord | MultiLabelRecord]) -> str:
    """Hash of one split of a data set: where its videos come from (`source`, JSON-ready: a generator's settings
    without the other split's size, a layout's templates), the class names, and each video's annotation and file
    (name and size; -1 for a frame folder or a missing file). The file's folder does not enter, so a data set moved
    elsewhere keeps its fingerprints; a same-size edit of a video goes unnoticed, as in `dataset_fingerprint`."""
    videos = []
    for record in records:
        annotation = {k: v for k, v in dataclasses.asdict(record).items() if k != "path"}
        size = record.path.stat().st_size if record.path.is_file() else -1
        videos.append([annotation, record.path.name, size])
    text = json.dumps({"source": source, "classes": list(classes), "videos": videos}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _opened(
    root: Path,
    source: object,
    classes: Sequence[str],
    splits: tuple[Sequence[VideoRecord | MultiLabelRecord], Sequence[VideoRecord | MultiLabelRecord]],
    fingerprint: str,
    frames: FolderLayout | None = None,
    packed: bool = False,
    regions: InformativeRegions | None = None,
) -> VideoDataset:
    """A `VideoDataset` of training and validation `splits` from `source`, with each split's fingerprint."""
    train, validation = splits
    training, evaluated = (split_fingerprint(source, classes, split) for split in splits)
    return VideoDataset(
        root, tuple(classes), tuple(train), tuple(validation), fingerprint, training, evaluated, frames, packed, regions
    )


def synthetic_root(kind: str, config: SyntheticConfig | SyntheticCharadesConfig, parent: Path) -> Path:
    """The default folder of a synthetic dataset: one per generator and configuration."""
    key = hashlib.sha256(json.dumps(config.fingerprint_fields(), sort_keys=True).encode()).hexdigest()[:12]
    return parent / f"{kind}-{key}"


def open_dataset(config: DatasetConfig, data: Path | None, default_parent: Path, progress: bool = True) -> VideoDataset:
    """Open (generating it first if synthetic and absent) the dataset of a profile.

    Videos are not opened here: a missing or broken one is skipped with its reason when the frames are prepared.

    Args:
        config: the profile's dataset section.
        data: the user's `--data DIR`, required for real datasets; for synthetic ones, where to generate.
        default_parent: where synthetic datasets go when `data` is not given.
        progress: show progress bars.
    """
    source: object = config.kind  # what shapes the videos beside their annotations: a generator's settings
    if config.kind.startswith("synthetic"):
        generator = SyntheticConfig if config.kind == "synthetic-sthv2" else SyntheticCharadesConfig
        try:
            synthetic = generator(**config.synthetic)
        except (TypeError, ValueError) as err:
            raise MMLError(f"dataset.synthetic: {err}") from None
        folder = data or synthetic_root(config.kind, synthetic, default_parent)
        if isinstance(synthetic, SyntheticConfig):
            root = ensure_sthv2(folder, synthetic, progress)
        else:
            root = ensure_charades(folder, synthetic, progress)
        source = synthetic.split_source()
    else:
        if data is None:
            raise MMLError(f"dataset kind {config.kind!r} reads a dataset from disk: pass --data DIR")
        root = Path(data)
        if not root.is_dir():
            raise DataError(f"{root}: dataset folder not found")
    packed = config.kind.startswith("synthetic")
    if config.kind.endswith("charades"):
        return _open_charades(root, source, packed, config.frame_lists)
    if config.rawframes is not None:
        frames = open_rawframes(root, config.rawframes)
        templates = {"frames": frames.layout.frames, "flow": frames.layout.flow, "start": frames.layout.start_index}
        splits = (frames.train, frames.validation)
        return _opened(root, templates, frames.classes, splits, frames.fingerprint, frames.layout)
    train, validation = read_sthv2(root, "train"), read_sthv2(root, "validation")
    fingerprint = dataset_fingerprint(root)
    regions = read_informative_regions(root) if packed else None  # a generated dataset's
    splits = (train.records, validation.records)
    return _opened(root, source, train.classes, splits, fingerprint, packed=packed, regions=regions)


def _open_charades(root: Path, source: object, packed: bool, frame_lists: bool) -> VideoDataset:
    """Charades from its videos (`Charades_v1_480/<id>.mp4`) or, when present, the official 24 fps frame download
    (`Charades_v1_rgb/<id>/<id>-000001.jpg`) with its TV-L1 flow (`Charades_v1_flow/<id>/<id>-000001x.jpg`);
    annotated by the official CSVs or, with `frame_lists`, PySlowFast's `frame_lists/{train,val}.csv` (which
    describe the frame download)."""
    frames_dir = root / charades.FRAMES_DIR
    if frame_lists:
        if not frames_dir.is_dir():
            raise DataError(f"{frames_dir}: PySlowFast frame lists need the official frame folders")
        classes = tuple(read_classes(root / charades.CLASSES_FILE).values())
        lists = ("frame_lists/train.csv", "frame_lists/val.csv")
        train, validation = (read_slowfast_frame_list(root / name, len(classes), frames_dir) for name in lists)
        annotations: tuple[str, ...] = (charades.CLASSES_FILE, *lists)
    else:
        train_split, test_split = read_charades(root, "train"), read_charades(root, "test")
        classes, train, validation = train_split.classes, train_split.records, test_split.records
        annotations = (charades.CLASSES_FILE, *charades.SPLIT_FILES.values())
    if not frames_dir.is_dir():
        fingerprint = dataset_fingerprint(root, annotations, charades.VIDEO_DIR)
        return _opened(root, source, classes, (train, validation), fingerprint, packed=packed)
    train, validation = (
        tuple(dataclasses.replace(r, path=frames_dir / r.video_id) for r in split) for split in (train, validation)
    )
    fingerprint = dataset_fingerprint(root, annotations, charades.FRAMES_DIR)
    layout = FolderLayout(root, charades.FRAMES_LAYOUT["frames"], charades.FRAMES_LAYOUT["flow"])
    return _opened(root, [source, "frames"], classes, (train, validation), fingerprint, layout)


def prepare_frames(
    dataset: VideoDataset,
    cache_root: Path,
    short_side: int,
    with_flow: bool,
    needed: int,
    workers: int,
    progress: bool = True,
    flow_backend: FlowBackend = OPENCV,
    shard: Shard | None = None,
) -> tuple[VideoDataset, Path]:
    """Make every video's frames (and flow) readable at `short_side`: decode and cache what is missing, skip what
    fails with its reason. Logs the report's lines and writes the report into the dataset's cache folder.

    With `shard`, only that shard's videos (`mml.data.shard`), into the shard's own report. Without, the videos that
    failed in the shards whose reports lie there are reported skipped without another try (rerun their shard, or
    delete its report, to try them again); the rest are prepared or found in the cache.

    Args:
        needed: frames a training sample needs (shorter videos are reported: they repeat their last frame).
        flow_backend: which TV-L1 computes missing flow (execution-only: the cached fields have one format).
        shard: which part of the videos to prepare; None for all.

    Returns:
        The dataset without the skipped videos, and the report file.

    Raises:
        DataError: No training or no validation video is usable (not checked for a shard, which may hold none).
    """
    source = dataset.frame_source(cache_root, short_side, flow_backend)
    records = (*dataset.train, *dataset.validation)
    path = dataset.cache_dir(cache_root) / f"prepare-short{short_side}.json"
    if shard is None:
        failed = shard_failures(path, with_flow)
        if failed:
            logger.info(f"{path.parent}: {len(failed)} videos failed in a shard; reported skipped, not tried again")
        report = prepare(source, records, with_flow, workers, progress, failed)
    else:
        path = shard.report_path(path)
        report = prepare(source, [r for r in records if shard.owns(r.video_id)], with_flow, workers, progress)
    report.write(path, needed, shard, with_flow)
    lines = report.lines(needed)
    part = "" if shard is None else f" (shard {shard.index}/{shard.count})"
    logger.info(f"{dataset.root}{part}: {lines[0]}; report: {path}")
    for line in lines[1:]:
        logger.warning(line)
    usable = dataset.without(set(report.skipped))
    if shard is None and (not usable.train or not usable.validation):
        split = "training" if not usable.train else "validation"
        raise DataError(f"{dataset.root}: no {split} video could be prepared (see {path})")
    return usable, path
