"""Opening a profile's dataset: the synthetic one (generated on first use) or a user's Something-Something-v2."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from mml.data.sthv2 import VideoRecord, dataset_fingerprint, read_sthv2
from mml.data.synthetic import SyntheticConfig, ensure_sthv2
from mml.errors import DataError, MMLError
from mml.spec import DatasetConfig


@dataclass(frozen=True)
class VideoDataset:
    """A dataset's classes, training and validation videos, and the fingerprint that keys runs and caches."""

    root: Path
    classes: tuple[str, ...]
    train: tuple[VideoRecord, ...]
    validation: tuple[VideoRecord, ...]
    fingerprint: str

    def for_target(self, target: str) -> VideoDataset:
        """The dataset labelled for a run's target: `action` (the classes) or `object` (see `object_task`)."""
        return self if target == "action" else self.object_task()

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


def synthetic_root(config: SyntheticConfig, parent: Path) -> Path:
    """The default folder of a synthetic dataset: one per generator configuration."""
    key = hashlib.sha256(json.dumps(config.fingerprint_fields(), sort_keys=True).encode()).hexdigest()[:12]
    return parent / f"synthetic-sthv2-{key}"


def open_dataset(config: DatasetConfig, data: Path | None, default_parent: Path, progress: bool = True) -> VideoDataset:
    """Open (generating it first if synthetic and absent) the dataset of a profile.

    Args:
        config: the profile's dataset section.
        data: the user's `--data DIR`, required for real datasets; for synthetic ones, where to generate.
        default_parent: where synthetic datasets go when `data` is not given.
        progress: show progress bars.
    """
    if config.kind == "synthetic-sthv2":
        try:
            synthetic = SyntheticConfig(**config.synthetic)
        except (TypeError, ValueError) as err:
            raise MMLError(f"dataset.synthetic: {err}") from None
        root = ensure_sthv2(data or synthetic_root(synthetic, default_parent), synthetic, progress)
    else:
        if data is None:
            raise MMLError(f"dataset kind {config.kind!r} reads a dataset from disk: pass --data DIR")
        root = Path(data)
    train, validation = read_sthv2(root, "train"), read_sthv2(root, "validation")
    missing = [r.path for r in (*train.records, *validation.records) if not r.path.is_file()]
    if missing:
        more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
        raise DataError(f"{missing[0]}: video file not found{more}")
    return VideoDataset(
        root=root,
        classes=train.classes,
        train=train.records,
        validation=validation.records,
        fingerprint=dataset_fingerprint(root),
    )
