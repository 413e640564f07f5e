"""Torch datasets of training clips and test views, read from the frame / flow cache.

Training: one sampled frame set (temporal starts, ξ offsets and crop) per video per step feeds every model of a
group; models of the same modality get the very same tensor, as in the original code. The randomness of a sample
depends only on (seed, epoch, video index), so a resumed run and an uninterrupted one see identical batches, and
ranks that each build only their own model's modality (`TrainClips.build`) see the same clips as one process.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, Dataset, Sampler

from mml.data.cache import FrameSource
from mml.data.charades import MultiLabelRecord
from mml.data.frames import FrameSequence
from mml.data.modalities import MODALITIES, build_input, gather_clip
from mml.data.sampling import frame_indices, region_train_starts, train_starts, view_starts
from mml.data.sthv2 import VideoRecord
from mml.data.transforms import center_crop, multiscale_crop, three_crops
from mml.spec import Recipe, ViewProtocol


def _source(cache: FrameSource, record: VideoRecord | MultiLabelRecord, modality: str) -> FrameSequence:
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
    """Augmented training clips of every modality of a group, one shared frame set per video.

    With `regions` C > 1 each video gives one clip in each of C equal parts of it (AdaMML's segments,
    `region_train_starts`), every modality's input then being (C, T*channels, size, size), all with one crop.

    Positions are sampled for every modality of `modalities` (ξ is drawn per modality), but only the inputs of
    `build` (default: all) are read and built: a rank that trains one model of the group builds its own modality
    and gets exactly the tensor one process would build for it.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord | MultiLabelRecord],
        cache: FrameSource,
        modalities: Sequence[str],
        recipe: Recipe,
        seed: int,
        num_classes: int,
        build: Sequence[str] | None = None,
        regions: int = 1,
    ) -> None:
        self.records, self.cache, self.recipe, self.seed = list(records), cache, recipe, seed
        self.regions = regions
        self.num_classes = num_classes
        self.modalities = tuple(dict.fromkeys(modalities))
        self.build = self.modalities if build is None else tuple(dict.fromkeys(build))
        if not self.build or not set(self.build) <= set(self.modalities):
            raise ValueError(f"TrainClips: build {list(self.build)} must be some of the modalities {self.modalities}")
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int]:
        return self.sample(index)

    def sample(self, index: int, view: int = 0) -> tuple[dict[str, torch.Tensor], int]:
        """Video `index`'s clip of this epoch; `view` > 0 draws another, independent augmentation of it (positions
        and crop), view 0 being the clip every one-view method trains on."""
        record = self.records[index]
        rng = np.random.default_rng([self.seed, self.epoch, index] + ([view] if view else []))
        frames = self.cache.frames(record)
        sources = {m: _source(self.cache, record, m) for m in self.modalities}
        specs = [MODALITIES[m] for m in self.modalities]
        lengths, new_lengths = [len(sources[spec.name]) for spec in specs], [spec.new_length for spec in specs]
        recipe = self.recipe
        if self.regions == 1:
            clip = train_starts(lengths, new_lengths, recipe.segments, recipe.sampling, recipe.dense_stride, rng)
            starts = [start[None] for start in clip]
        else:
            starts = region_train_starts(
                lengths, new_lengths, recipe.segments, recipe.sampling, recipe.dense_stride, self.regions, rng
            )
        clips = {
            spec.name: [gather_clip(spec, sources[spec.name], region) for region in start]
            for spec, start in zip(specs, starts)
            if spec.name in self.build
        }
        height, width = next(iter(clips.values()))[0].shape[2:4]  # every modality has the frames' size
        crop = multiscale_crop(height, width, recipe.input_size, rng)
        size = recipe.input_size
        built = {
            name: [build_input(MODALITIES[name], clip, crop, size) for clip in parts] for name, parts in clips.items()
        }
        inputs = {name: parts[0] if self.regions == 1 else torch.stack(parts) for name, parts in built.items()}
        first, last = int(starts[0].min()), int(starts[0].max()) + specs[0].new_length - 1
        return inputs, clip_target(record, first, last, len(frames), self.num_classes)


class TwoViews(Dataset):
    """Two independently augmented views of each training clip (SKD-SRL's x1, x2 = T(x)), with its label."""

    def __init__(self, clips: TrainClips) -> None:
        self.clips = clips

    @property
    def epoch(self) -> int:
        return self.clips.epoch

    @epoch.setter
    def epoch(self, value: int) -> None:
        self.clips.epoch = value

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]], int]:
        first, label = self.clips.sample(index, 0)
        second, _ = self.clips.sample(index, 1)
        return (first, second), label


class ShardBatches(Sampler[list[int]]):
    """Shard `shard` of `shards` of every batch of `batches`: its elements at positions shard, shard + shards, ...

    The shards of a batch are disjoint and together are the batch, so R ranks with shards 0..R-1 of the batches
    of one process's sampler train on that process's batches; with one shard the batches are unchanged.
    """

    def __init__(self, batches: BatchSampler, shard: int, shards: int) -> None:
        if not 0 <= shard < shards:
            raise ValueError(f"ShardBatches: shard {shard} out of range for {shards} shards")
        self.batches, self.shard, self.shards = batches, shard, shards

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches:
            yield batch[self.shard :: self.shards]

    def __len__(self) -> int:
        return len(self.batches)


class ViewClips(Dataset):
    """Every test view of one modality per video: a (views, T*C, size, size) tensor.

    Views are temporal-major: each temporal view's crops in turn (the centre crop, or with `views.crops` 3 the
    start / centre / end crops along the longer side), so views = temporal views x crops. ``size`` is
    `views.crop_side(recipe)`: `views.crop_size`, the recipe's `input_size` when that is 0, or its `short_side` for a
    full-resolution protocol.
    """

    def __init__(
        self,
        records: Sequence[VideoRecord | MultiLabelRecord],
        cache: FrameSource,
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
        return view_starts(
            num_frames,
            self.spec.new_length,
            self.recipe.segments,
            views.dense,
            views.uniform,
            self.recipe.dense_stride,
            views.uniform_offset,
            views.dense_spacing,
        )

    def view_positions(self, index: int) -> np.ndarray:
        """Where in video `index` each view lies: the middle of the frames it reads, as a fraction of the video's
        frames, one per view (temporal views x crops, as `__getitem__` orders them)."""
        frames = len(_source(self.cache, self.records[index], self.spec.name))
        middles = []
        for starts in self.view_starts(frames):
            read = frame_indices(starts, self.spec.new_length, frames)
            middles.append((read.min() + read.max() + 1) / 2 / frames)
        return np.repeat(middles, self.views.crops)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int | torch.Tensor]:
        record = self.records[index]
        source = _source(self.cache, record, self.spec.name)
        gathered = [gather_clip(self.spec, source, starts) for starts in self.view_starts(len(source))]
        size = self.views.crop_side(self.recipe)
        height, width = gathered[0].shape[2:4]
        crops = three_crops(height, width, size) if self.views.crops == 3 else [center_crop(height, width, size)]
        clips = [build_input(self.spec, clip, crop, size) for clip in gathered for crop in crops]
        if isinstance(record, VideoRecord):
            return torch.stack(clips), record.label
        return torch.stack(clips), multi_hot(record.labels, self.num_classes)


class FusedViews(Dataset):
    """The test views of several modalities per video, for a late-fusion network: ({modality: views}, label)."""

    def __init__(self, views: Sequence[ViewClips]) -> None:
        self.views = list(views)

    def __len__(self) -> int:
        return len(self.views[0])

    def __getitem__(self, index: int) -> tuple[dict[str, torch.Tensor], int | torch.Tensor]:
        items = [views[index] for views in self.views]
        return {views.spec.name: clips for views, (clips, _) in zip(self.views, items, strict=True)}, items[0][1]
