"""The trainer's SGD follows the recipe: Nesterov momentum where it says so (PySlowFast's Charades recipe), plain
momentum otherwise (TSM's)."""

import dataclasses
from pathlib import Path

import pytest
import torch

from mml.networks import new_model
from mml.spec import load_profile
from mml.store import ModelConfig, RunConfig
from mml.train import build_optimizers

PROFILES = Path(__file__).parent.parent / "reproductions" / "profiles.toml"


@pytest.mark.parametrize("setup", ["sthv2", "charades"])
def test_sgd_uses_nesterov_momentum_where_the_recipe_says_so(setup: str) -> None:
    profile = load_profile(PROFILES, "smoke").setup(setup)
    config = RunConfig(
        method="ce",
        models=(ModelConfig("RGB", "random"),),
        arch=profile.arch,
        recipe=profile.recipe,
        dataset="d" * 64,
        num_classes=5,
        seed=0,
    )
    model = new_model(config, 0)
    (optimizer,) = build_optimizers(config, [model])
    assert isinstance(optimizer, torch.optim.SGD)
    nesterov = {group["nesterov"] for group in optimizer.param_groups}
    momentum = {group["momentum"] for group in optimizer.param_groups}
    assert (nesterov, momentum) == ({setup == "charades"}, {profile.recipe.momentum})
    plain = dataclasses.replace(config, recipe=dataclasses.replace(profile.recipe, nesterov=False))
    assert not any(group["nesterov"] for group in build_optimizers(plain, [model])[0].param_groups)
