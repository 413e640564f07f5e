"""Each method family's own settings: checked where they are made, read from the recipe's family tables, and in the
ids of the runs that read them only (tests/test_store.py checks the ids)."""

from __future__ import annotations

from pathlib import Path

import pytest

from mml.errors import InvalidValue, SpecError
from mml.methods import METHODS, SETTINGS
from mml.methods.adamml import AdaMMLSettings
from mml.methods.gblend import GBlendSettings
from mml.methods.skd_srl import SKDSettings
from mml.spec import Recipe, load_profile, run_recipe

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"
RECIPE = Recipe(segments=4, short_side=48, input_size=40, batch_size=8, epochs=2, lr=0.01, lr_steps=(1,))


def test_every_family_has_one_namespace_and_every_method_reads_its_own_family() -> None:
    kinds = {method.settings for method in METHODS.values() if method.settings}
    assert len(SETTINGS) == len(kinds) and set(SETTINGS.values()) == kinds
    for method in METHODS.values():
        assert set(method.reads) <= set(method.settings.names() if method.settings else ())
    assert [type(settings) for settings in RECIPE.method_settings] == list(SETTINGS.values())


def test_values_are_checked_and_normalised() -> None:
    assert SKDSettings(tau=4).tau == 4.0 and isinstance(SKDSettings(tau=4).tau, float)  # one value, one run id
    with pytest.raises(InvalidValue, match=r"skd\.tau: must be positive"):
        SKDSettings(tau=0.0)
    with pytest.raises(InvalidValue, match=r"gblend\.holdout: must be a fraction in \(0, 1\), got 1\.5"):
        GBlendSettings(holdout=1.5)
    assert GBlendSettings(estimate_epochs=0).estimate_epochs == 0  # 0 has a meaning there
    with pytest.raises(InvalidValue, match=r"gblend\.super_epoch: must be positive"):
        GBlendSettings(super_epoch=0)
    with pytest.raises(InvalidValue, match=r"adamml\.lambda_from: 'both' is not one of hand, gflops"):
        AdaMMLSettings(lambda_from="both")
    with pytest.raises(InvalidValue, match=r"gblend\.warmpu: unknown setting of gblend \(known: holdout, "):
        GBlendSettings.from_values({"warmpu": 3})


def test_a_keyword_setting_is_named_without_its_underscore() -> None:
    settings = AdaMMLSettings.from_values({"lambda": 2})
    assert settings.lambda_ == 2.0 and settings.value("lambda") == 2.0 and "lambda" in AdaMMLSettings.names()
    assert settings.identity_items(["lambda"]) == {"adamml_lambda": 2.0}


def test_a_recipe_holds_one_of_each_family_and_refuses_two() -> None:
    own = GBlendSettings(warmup=3)
    recipe = Recipe(**{**RECIPE.__dict__, "method_settings": (own,)})
    assert recipe.settings(GBlendSettings) is own and recipe.settings(SKDSettings) == SKDSettings()
    with pytest.raises(InvalidValue, match="gblend: given twice"):
        Recipe(**{**RECIPE.__dict__, "method_settings": (own, GBlendSettings())})
    assert recipe.with_settings("gblend", {"holdout": 0.2}).settings(GBlendSettings) == GBlendSettings(0.2, warmup=3)


def test_run_overrides_change_a_family_setting_by_its_dotted_key() -> None:
    changed = run_recipe(RECIPE, {"gblend.warmup": 2, "epochs": 3})
    assert changed.settings(GBlendSettings).warmup == 2 and changed.epochs == 3
    with pytest.raises(SpecError, match=r"a\.toml: runs\.x: gblend\.warmup: must be positive"):
        run_recipe(RECIPE, {"gblend.warmup": 0}, "a.toml: runs.x")


def test_a_profile_sets_family_settings_as_dotted_keys_or_from_the_command_line(tmp_path: Path) -> None:
    profiles = REPRODUCTIONS / "profiles.toml"
    smoke = load_profile(profiles, "smoke", ["recipe.gblend.warmup=7", "recipe.skd.beta=0.5"])
    assert smoke.recipe.settings(GBlendSettings) == GBlendSettings(estimate_epochs=1, super_epoch=5, warmup=7)
    assert smoke.recipe.settings(SKDSettings).beta == 0.5
    assert smoke.recipe.settings(AdaMMLSettings).policy_size == 20


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            "gblend_warmup = 5",
            r"smoke\.recipe\.gblend_warmup: unknown recipe setting \(a method setting: write gblend\.warmup\)",
        ),
        ("gblend.colour = 5", r"smoke\.recipe\.gblend\.colour: unknown setting of gblend"),
        ("kd = 5", r"smoke\.recipe\.kd: expected dict"),
        ("colour = 5", r"smoke\.recipe\.colour: unknown recipe setting$"),
    ],
)
def test_a_malformed_family_setting_is_named_on_one_line(tmp_path: Path, line: str, message: str) -> None:
    text = (REPRODUCTIONS / "profiles.toml").read_text()
    path = tmp_path / "profiles.toml"
    path.write_text(text.replace("[smoke.views]", f"{line}\n\n[smoke.views]", 1))
    with pytest.raises(SpecError) as info:
        load_profile(path, "smoke")
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert info.match(message)
