"""Torch datasets of training clips and test views, read from the frame / flow cache.

Training: one sampled frame set (temporal starts, ξ offsets and crop) per video per step feeds every model of a
group; models of the same modality get the very same tensor, as in the original code. The randomness of a sample
depends only on (seed, epoch, video index), so a resumed run and an uninterrupted one see identical batches.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from mml.data.cache import FrameCache
from mml.data.charades import MultiLabelRecord
from mml.data.modalities import MODALITIES, build_input, num_frames_for
from mml.data.sampling import test_views, train_starts
from mml.data.sthv2 import VideoRecord
from mml.data.transforms import center_crop, multiscale_crop
from mml.spec import Recipe, ViewProtocol


def _source(cache: FrameCache, record: VideoRecord | MultiLabelRecord, modality: str) -> np.ndarray:
    return cache.flow(record) if modality == "Flow" else cache.frames(record)


def multi_hot(labels: tuple[int, ...], num_classes: int) -> torch.Tensor:
    """A 0/1 float vector of `num_classes` with ones at `labels` (multi-label targets)."""
    target = torch.zeros(num_classes)
    target[list(labels)] = 1.0
    return target


def clip_target(record: VideoRecord | MultiLabelRecord, first: int, last: int, frames: int, classes: int):
    """A training target: the class index, or for a multi-label video the classes of the actions overlapping the
    clip's time span (frames first..last of `frames`), as PySlowFast's Charades training does."""
    if isinstance(record, VideoRecord):
        return record.label
    seconds = record.length / frames
    return multi_hot(record.labels_between(first * seconds, (last + 1) * seconds), classes)


class TrainClips(Dataset):
    """Augmented training clips of every modality of a group, one shared frame set per video."""

    def __init__(
        self,
        records: Sequence[VideoRecord],
        cache: FrameCache,
        modalities: Sequence[str],
        recipe: Recipe,
        seed: int,
        num_classes: int,
    ) -> None:
        self.records, self.cache, self.recipe, self.seed = list(records), cache, recipe, seed
        self.num_classes = num_classes
        self.modalities = tuple(dict.fromkeys(modalities))
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        record = self.records[index]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        frames = self.cache.frames(record)
        sources = {m: _source(self.cache, record, m) for m in self.modalities}
        specs = [MODALITIES[m] for m in self.modalities]
        starts = train_starts(
            [num_frames_for(spec, len(frames)) for spec in specs],
            [spec.new_length for spec in specs],
            self.recipe.segments,
            self.recipe.sampling,
            self.recipe.dense_stride,
            rng,
        )
        height, width = frames.shape[1:3]
        crop = multiscale_crop(height, width, self.recipe.input_size, rng)
        inputs = {
            spec.name: build_input(spec, np.asarray(sources[spec.name]), start, crop, self.recipe.input_size)
            for spec, start in zip(specs, starts, strict=True)
        }
        first, last = int(min(starts[0])), int(max(starts[0])) + specs[0].new_length - 1
        return inputs, clip_target(record, first, last, len(frames), self.num_classes)


class TestViews(Dataset):
    """Every test view of one modality per video: a (views, T*C, size, size) tensor, centre-cropped."""

    def __init__(
        self,
        records: Sequence[VideoRecord],
        cache: FrameCache,
        modality: str,
        recipe: Recipe,
        views: ViewProtocol,
        num_classes: int,
    ) -> None:
        self.records, self.cache, self.recipe, self.views = list(records), cache, recipe, views
        self.spec = MODALITIES[modality]
        self.num_classes = num_classes

    def __len__(self) -> int:
        return len(self.records)

    def view_starts(self, num_frames: int) -> list[np.ndarray]:
        """The deterministic segment starts of each view: the dense views first, then the uniform ones."""
        views = self.views
        return test_views(
            num_frames,
            self.spec.new_length,
            self.recipe.segments,
            views.dense,
            views.uniform,
            self.recipe.dense_stride,
            views.uniform_offset,
        )

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        record = self.records[index]
        source = np.asarray(_source(self.cache, record, self.spec.name))
        frames_shape = self.cache.frames(record).shape
        crop = center_crop(frames_shape[1], frames_shape[2], self.recipe.input_size)
        clips = [
            build_input(self.spec, source, starts, crop, self.recipe.input_size)
            for starts in self.view_starts(len(source))
        ]
        if isinstance(record, VideoRecord):
            return torch.stack(clips), record.label
        return torch.stack(clips), multi_hot(record.labels, self.num_classes)
