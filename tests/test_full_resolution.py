"""The paper's final-testing crop: a full-resolution protocol cuts the recipe's short side, whatever the scale."""

import dataclasses

from test_views import RECIPE, RECORD, FakeSource, pixels

from mml.data import clips
from mml.report.cost import inference_gflops
from mml.spec import ViewProtocol
from mml.store import ModelConfig, RunConfig


def test_full_resolution_views_are_centre_crops_of_the_short_side() -> None:
    views = ViewProtocol(dense=1, uniform=2, uniform_offset=0.0, full_resolution=True)
    inputs, _ = clips.ViewClips([RECORD], FakeSource(16, 12, 20), "RGB", RECIPE, views, 5)[0]
    assert RECIPE.input_size < RECIPE.short_side == 12
    assert inputs.shape == (3, 2 * 3, 12, 12)  # three temporal views of the whole 12-pixel height
    assert [int(pixels(view)[:, 0].min()) for view in inputs] == [4, 4, 4]  # centred on the longer side
    assert all(int(pixels(view)[:, 1].max()) == 11 for view in inputs)


def test_the_cost_of_a_clip_follows_the_full_resolution_crop() -> None:
    config = RunConfig(
        method="ce",
        models=(ModelConfig("RGB", "random"),),
        arch="tsm_tiny",
        recipe=dataclasses.replace(RECIPE, short_side=64, input_size=32),
        dataset="d" * 64,
        num_classes=5,
        seed=0,
    )
    ablation = inference_gflops(config, 0, ViewProtocol())
    full = inference_gflops(config, 0, ViewProtocol(full_resolution=True))
    assert full > 3.5 * ablation  # 64² against 32² pixels
