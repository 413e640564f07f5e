"""Test views: temporal views x spatial crops, cut from frames whose pixels encode column, row and frame index."""

from pathlib import Path

import numpy as np
import pytest
import torch

from mml.data import clips
from mml.data.modalities import IMAGENET_MEAN, IMAGENET_STD, MODALITIES, build_input, gather_clip
from mml.data.sthv2 import VideoRecord
from mml.data.transforms import center_crop
from mml.spec import Recipe, ViewProtocol

RECIPE = Recipe(segments=2, short_side=12, input_size=8, batch_size=1, epochs=1, lr=0.1, lr_steps=(1,))
RECORD = VideoRecord("v0", Path("v0.webm"), label=3)


class FakeSource:
    """Frames (N, H, W, 3) whose channels hold the column, the row and the frame index; flow likewise (x, y)."""

    def __init__(self, frames: int, height: int, width: int) -> None:
        rows, columns = np.mgrid[:height, :width]
        planes = [np.stack([columns, rows, np.full_like(rows, n)], axis=-1) for n in range(frames)]
        self.rgb = np.stack(planes).astype(np.uint8)

    def frames(self, record: VideoRecord) -> np.ndarray:
        return self.rgb

    def flow(self, record: VideoRecord) -> np.ndarray:
        return np.ascontiguousarray(self.rgb[1:, :, :, :2])


def pixels(view: torch.Tensor) -> torch.Tensor:
    """The uint8 values of an RGB view (T*3, S, S) as (T, 3, S, S), undoing the normalisation."""
    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    return ((view.view(-1, 3, *view.shape[1:]) * std + mean) * 255).round()


def test_three_crops_per_temporal_view_temporal_major() -> None:
    views = ViewProtocol(dense=2, uniform=0, uniform_offset=0.0, crops=3, crop_size=12)
    inputs, label = clips.ViewClips([RECORD], FakeSource(16, 12, 20), "RGB", RECIPE, views, 5)[0]
    assert inputs.shape == (6, 2 * 3, 12, 12) and label == 3
    values = [pixels(view) for view in inputs]
    for temporal in range(2):
        crops = values[3 * temporal : 3 * temporal + 3]
        assert [int(v[:, 0].min()) for v in crops] == [0, 4, 8]  # left, centre, right columns
        assert [int(v[:, 0].max()) for v in crops] == [11, 15, 19]
        assert all(torch.equal(v[:, 1], crops[0][:, 1]) for v in crops)  # the whole height
        assert all(torch.equal(v[:, 2], crops[0][:, 2]) for v in crops)  # the same frames
    assert not torch.equal(values[0][:, 2], values[3][:, 2])  # the two temporal views read other frames


def test_portrait_crops_and_flow() -> None:
    views = ViewProtocol(dense=1, uniform=1, uniform_offset=0.5, crops=3, crop_size=10)
    inputs, _ = clips.ViewClips([RECORD], FakeSource(16, 16, 10), "RGB", RECIPE, views, 5)[0]
    assert inputs.shape == (6, 6, 10, 10)
    assert [int(pixels(view)[:, 1].min()) for view in inputs[:3]] == [0, 3, 6]  # top, middle, bottom rows
    flow, _ = clips.ViewClips([RECORD], FakeSource(16, 16, 10), "Flow", RECIPE, views, 5)[0]
    assert flow.shape == (6, 2 * 10, 10, 10)


def test_crop_size_sets_the_input_size() -> None:
    views = ViewProtocol(dense=1, uniform=0, uniform_offset=0.0, crops=1, crop_size=12)
    inputs, _ = clips.ViewClips([RECORD], FakeSource(16, 12, 20), "RGB", RECIPE, views, 5)[0]
    assert inputs.shape == (1, 6, 12, 12)
    assert int(pixels(inputs[0])[:, 0].min()) == 4  # the centre crop


def test_default_protocol_is_the_single_centre_crop() -> None:
    views = ViewProtocol(dense=2, uniform=1, uniform_offset=0.5)
    source = FakeSource(16, 12, 20)
    dataset = clips.ViewClips([RECORD], source, "RGB", RECIPE, views, 5)
    inputs, _ = dataset[0]
    spec = MODALITIES["RGB"]
    crop = center_crop(12, 20, RECIPE.input_size)
    expected = [
        build_input(spec, gather_clip(spec, source.rgb, starts), crop, RECIPE.input_size)
        for starts in dataset.view_starts(16)
    ]
    assert torch.equal(inputs, torch.stack(expected))


def test_crop_larger_than_frame_is_refused() -> None:
    views = ViewProtocol(crops=3, crop_size=16)
    with pytest.raises(ValueError, match="three-crop size 16 must be in 1..12 for a 12x20 frame"):
        clips.ViewClips([RECORD], FakeSource(16, 12, 20), "RGB", RECIPE, views, 5)[0]


def test_training_regions_give_one_clip_per_region_with_one_crop() -> None:
    source = FakeSource(30, 12, 20)
    recipe = Recipe(
        segments=2, short_side=12, input_size=8, batch_size=1, epochs=1, lr=0.1, lr_steps=(1,), sampling="uniform"
    )
    regioned = clips.TrainClips([RECORD], source, ["RGB", "Flow"], recipe, seed=4, num_classes=5, regions=3)
    inputs, label = regioned[0]
    assert inputs["RGB"].shape == (3, 2 * 3, 8, 8) and inputs["Flow"].shape == (3, 2 * 10, 8, 8) and label == 3
    values = [pixels(region) for region in inputs["RGB"]]
    frames = [sorted({int(f) for f in v[:, 2].flatten()}) for v in values]
    bounds = [0, 9, 19, 29]  # floor(r * 29 / 3) on Flow's 29-frame timeline; RGB may read one frame more
    assert all(bounds[r] <= f[0] and f[-1] <= bounds[r + 1] for r, f in enumerate(frames))
    assert all(torch.equal(v[:, :2], values[0][:, :2]) for v in values)  # the same crop in every region
    plain = clips.TrainClips([RECORD], source, ["RGB", "Flow"], recipe, seed=4, num_classes=5)[0][0]
    assert plain["RGB"].shape == (2 * 3, 8, 8)


def test_pyslowfast_spacing_reads_clips_from_the_first_frame_to_the_last() -> None:
    views = ViewProtocol(dense=2, uniform=0, uniform_offset=0.0, dense_spacing="pyslowfast")
    inputs, _ = clips.ViewClips([RECORD], FakeSource(16, 12, 20), "RGB", RECIPE, views, 5)[0]
    frames = [pixels(view)[:, 2, 0, 0].tolist() for view in inputs]  # the frame index of each segment
    assert frames == [[0.0, 4.0], [11.0, 15.0]]  # 2 segments 4 apart: the last clip ends on frame 15
    appendix1 = ViewProtocol(dense=2, uniform=0, uniform_offset=0.0)
    inputs, _ = clips.ViewClips([RECORD], FakeSource(16, 12, 20), "RGB", RECIPE, appendix1, 5)[0]
    assert [pixels(view)[:, 2, 0, 0].tolist() for view in inputs] == [[0.0, 4.0], [6.0, 10.0]]
    assert views.key == "dense2-uniform0-offset0-pyslowfast" and appendix1.key == "dense2-uniform0-offset0"
