"""Opening a profile's dataset: the synthetic one (generated on first use) or a user's Something-Something-v2."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from mml.data import charades
from mml.data.charades import MultiLabelRecord, read_charades
from mml.data.sthv2 import VideoRecord, dataset_fingerprint, read_sthv2
from mml.data.synthetic import SyntheticConfig, ensure_sthv2
from mml.data.synthetic_charades import SyntheticCharadesConfig, ensure_charades
from mml.errors import DataError, MMLError
from mml.spec import DatasetConfig


@dataclass(frozen=True)
class VideoDataset:
    """A dataset's classes, training and validation videos, and the fingerprint that keys runs and caches."""

    root: Path
    classes: tuple[str, ...]
    train: tuple[VideoRecord | MultiLabelRecord, ...]
    validation: tuple[VideoRecord | MultiLabelRecord, ...]
    fingerprint: str

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

        def relabel(records: tuple[MultiLabelRecord, ...]) -> tuple[VideoRecord, ...]:
            return tuple(VideoRecord(r.video_id, r.path, r.actions[0].label) for r in records if r.actions)

        return dataclasses.replace(self, train=relabel(self.train), validation=relabel(self.validation))

    def object_task(self) -> VideoDataset:
        """Single-label object recognition: each video labelled by its first placeholder (e.g. "red square").

        The synthetic profiles pretrain on it as their stand-in for ImageNet: an appearance task that single
        frames solve. Validation videos naming an object unseen in training are left out.
        """
        objects = tuple(sorted({r.placeholders[0].lower() for r in self.train if r.placeholders}))
        index = {name: i for i, name in enumerate(objects)}

        def relabel(records: tuple[VideoRecord, ...]) -> tuple[VideoRecord, ...]:
            return tuple(
                dataclasses.replace(r, label=index[r.placeholders[0].lower()])
                for r in records
                if r.placeholders and r.placeholders[0].lower() in index
            )

        return dataclasses.replace(
            self, classes=objects, train=relabel(self.train), validation=relabel(self.validation)
        )


def synthetic_root(kind: str, config: SyntheticConfig | SyntheticCharadesConfig, parent: Path) -> Path:
    """The default folder of a synthetic dataset: one per generator and configuration."""
    key = hashlib.sha256(json.dumps(config.fingerprint_fields(), sort_keys=True).encode()).hexdigest()[:12]
    return parent / f"{kind}-{key}"


def open_dataset(config: DatasetConfig, data: Path | None, default_parent: Path, progress: bool = True) -> VideoDataset:
    """Open (generating it first if synthetic and absent) the dataset of a profile.

    Args:
        config: the profile's dataset section.
        data: the user's `--data DIR`, required for real datasets; for synthetic ones, where to generate.
        default_parent: where synthetic datasets go when `data` is not given.
        progress: show progress bars.
    """
    if config.kind.startswith("synthetic"):
        kind, ensure = {
            "synthetic-sthv2": (SyntheticConfig, ensure_sthv2),
            "synthetic-charades": (SyntheticCharadesConfig, ensure_charades),
        }[config.kind]
        try:
            synthetic = kind(**config.synthetic)
        except (TypeError, ValueError) as err:
            raise MMLError(f"dataset.synthetic: {err}") from None
        root = ensure(data or synthetic_root(config.kind, synthetic, default_parent), synthetic, progress)
    else:
        if data is None:
            raise MMLError(f"dataset kind {config.kind!r} reads a dataset from disk: pass --data DIR")
        root = Path(data)
    if config.kind.endswith("charades"):
        train, validation = read_charades(root, "train"), read_charades(root, "test")
        fingerprint = dataset_fingerprint(
            root, (charades.CLASSES_FILE, *charades.SPLIT_FILES.values()), charades.VIDEO_DIR
        )
    else:
        train, validation = read_sthv2(root, "train"), read_sthv2(root, "validation")
        fingerprint = dataset_fingerprint(root)
    missing = [r.path for r in (*train.records, *validation.records) if not r.path.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{missing[0]}: video file not found{more}")
    return VideoDataset(
        root=root,
        classes=train.classes,
        train=train.records,
        validation=validation.records,
        fingerprint=fingerprint,
    )
