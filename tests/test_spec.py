"""Table specs and profiles: the shipped files validate; invalid ones fail with `file: key: reason`."""

import dataclasses
import re
from pathlib import Path

import pytest

from mml.errors import InvalidValue, SpecError
from mml.methods.adamml import AdaMMLSettings
from mml.methods.gblend import GBlendSettings
from mml.spec import (
    Recipe,
    ResultCell,
    ViewProtocol,
    all_table_paths,
    load_profile,
    load_table,
    run_recipe,
    table_path,
    table_paths,
)

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"

VALID = """
id = "table99"
title = "A test table"
columns = ["Model", "Top-1 / Top-5"]
rows = [["RGB", { run = "rgb", model = 0, paper = [50.0, 80.0] }]]

[runs.rgb]
method = "ce"
models = [{ modality = "RGB", init = "imagenet" }]

[runs.pair]
method = "ml"
models = [{ modality = "RGB", init = "run:rgb/0" }, { modality = "Flow", init = "run:rgb/0" }]
"""


def write(tmp_path: Path, text: str, name: str = "table99.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("path", all_table_paths(REPRODUCTIONS), ids=lambda p: p.stem)
def test_every_shipped_spec_validates(path: Path) -> None:
    table = load_table(path)
    assert table.id == path.stem
    assert table.cells() or table.matrix or table.triples


@pytest.mark.parametrize("name", ["smoke", "small", "paper"])
def test_shipped_profiles_validate(name: str) -> None:
    profile = load_profile(REPRODUCTIONS / "profiles.toml", name)
    assert profile.recipe.input_size <= profile.recipe.short_side


def test_table7_has_seven_rows_and_the_relaunch_chain() -> None:
    table = load_table(REPRODUCTIONS / "table07.toml")
    assert [row[0] for row in table.rows] == ["Tab. 1", "1", "2", "3", "4", "5", "6", "7"]  # the CE baseline first
    assert table.runs["B"].models[0].init_run == ("A", 0)
    assert [m.init_run for m in table.runs["ml_c"].models] == [("C", 0), ("C2", 0)]  # "C(RGB)" / "C2(RGB)"
    assert [m.init for m in table.runs["C2"].models] == [m.init for m in table.runs["C"].models]
    assert (table.runs["rgb2"].replica, table.runs["C2"].replica) == (1, 1)


def test_equivalence_claims_of_the_shipped_specs_have_the_margin_of_their_text() -> None:
    """The paper's "useless", "nearly equal", "does not significantly affect", "similar" and "insignificantly
    improves" are equivalences within ±0.5 (no text gives a margin), each text saying so; every claim quotes the
    paper's numbers, or says that the paper gives none (Appendix 1's text on more views)."""
    claims = [claim for path in all_table_paths(REPRODUCTIONS) for claim in load_table(path).claims]
    equivalences = [claim for claim in claims if claim.kind == "equivalence"]
    assert len(equivalences) == 9
    assert all(claim.margin == 0.5 and "±0.5" in claim.text and "no margin" in claim.text for claim in equivalences)
    quoted = r"\d+\.\d+ vs \d+\.\d+|\d{4,} vs \d{4,}|gives no numbers"
    assert all(re.search(quoted, claim.text) for claim in claims)


def test_valid_spec_loads(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, VALID))
    assert table.rows[0][1] == ResultCell(members=(("rgb", 0),), paper=(50.0, 80.0))


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ('method = "ce"', 'method = "sgd"', "runs.rgb.method: 'sgd' is not one of ce, ml"),
        ('init = "imagenet"', 'init = "kinetics400"', "runs.rgb.models[0].init: 'kinetics400' is not random"),
        (
            'init = "run:rgb/0" }, { modality = "Flow"',
            'init = "run:nope/0" }, { modality = "Flow"',
            "runs.pair.models[0].init: run 'nope' is not defined",
        ),
        ('modality = "Flow"', 'modality = "Depth"', "runs.pair.models[1].modality: 'Depth' is not one of"),
        ("paper = [50.0, 80.0]", "paper = [50.0]", "rows[0][1].paper: expected 2 numbers"),
        ('run = "rgb", model = 0', 'run = "rgb", model = 3', "rows[0][1].model: run 'rgb' has 1 models, no model 3"),
        ('columns = ["Model", "Top-1 / Top-5"]', 'columns = ["Model"]', "rows[0]: expected a list of 1 cells"),
        ('title = "A test table"', 'title = "A test table"\ncolour = "red"', "colour: unknown key"),
        ('id = "table99"', 'id = "table98"', "id: 'table98' differs from the file name"),
        ('title = "A test table"\n', "", "title: missing"),
    ],
)
def test_invalid_spec_names_file_key_and_reason(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in VALID
    path = write(tmp_path, VALID.replace(old, new, 1))
    with pytest.raises(SpecError) as info:
        load_table(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_ml_needs_two_models_and_ce_one(tmp_path: Path) -> None:
    text = VALID.replace('method = "ce"', 'method = "ml"', 1)
    with pytest.raises(SpecError, match="method ml trains two or more models"):
        load_table(write(tmp_path, text))


def test_initialisation_cycle_is_refused(tmp_path: Path) -> None:
    text = VALID.replace('init = "imagenet"', 'init = "run:pair/0"')
    with pytest.raises(SpecError, match="initialisation cycle rgb -> pair -> rgb"):
        load_table(write(tmp_path, text))


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="invalid TOML"):
        load_table(write(tmp_path, "id = "))
    with pytest.raises(SpecError, match="file not found"):
        load_table(tmp_path / "table42.toml")


def test_profile_errors(tmp_path: Path) -> None:
    text = (REPRODUCTIONS / "profiles.toml").read_text()
    path = write(tmp_path, text.replace("input_size = 40", "input_size = 64", 1), "profiles.toml")
    with pytest.raises(SpecError, match=r"smoke\.recipe\.input_size: 64 exceeds short_side 48"):
        load_profile(path, "smoke")
    with pytest.raises(SpecError, match="nosuch: no such profile"):
        load_profile(path, "nosuch")
    path = write(tmp_path, text.replace('sampling = "both"', 'sampling = "random"', 1), "profiles.toml")
    with pytest.raises(SpecError, match=r"smoke\.recipe\.sampling: 'random' is not one of uniform, dense, both"):
        load_profile(path, "smoke")
    path = write(tmp_path, text.replace("batch_size = 16", "batch_size = 0", 1), "profiles.toml")
    with pytest.raises(SpecError, match=r"smoke\.recipe\.batch_size: must be positive"):
        load_profile(path, "smoke")


def test_view_protocol_keys() -> None:
    assert ViewProtocol().key == "dense0-uniform1-offset0.5"
    assert ViewProtocol(dense=10, uniform=0, uniform_offset=0.0, crops=1, crop_size=0).key == "dense10-uniform0-offset0"
    three = ViewProtocol(dense=10, uniform=0, uniform_offset=0.0, crops=3, crop_size=256)
    assert three.key == "dense10-uniform0-offset0-crops3-size256"
    assert ViewProtocol(crop_size=256).key == "dense0-uniform1-offset0.5-crops1-size256"


def test_full_resolution_views_crop_the_short_side_at_any_scale(tmp_path: Path) -> None:
    recipe = Recipe(segments=4, short_side=48, input_size=40, batch_size=8, epochs=1, lr=0.01, lr_steps=(1,))
    full = ViewProtocol(dense=1, uniform=2, uniform_offset=0.0, full_resolution=True)
    assert (full.crop_side(recipe), ViewProtocol().crop_side(recipe), ViewProtocol(crop_size=32).crop_side(recipe)) == (
        48,
        40,
        32,
    )
    assert full.key == "dense1-uniform2-offset0-crops1-full" and ViewProtocol().key == "dense0-uniform1-offset0.5"
    views = "views = { dense = 1, uniform = 2, uniform_offset = 0, full_resolution = true }"
    text = VALID.replace("paper = [50.0, 80.0] }", f"paper = [50.0, 80.0], {views} }}")
    assert load_table(write(tmp_path, text)).rows[0][1].views == full
    both = VALID.replace(
        "paper = [50.0, 80.0] }", "paper = [50.0, 80.0], views = { crop_size = 32, full_resolution = true } }"
    )
    with pytest.raises(SpecError, match=r"rows\[0\]\[1\]\.views\.crop_size: a full-resolution crop is the short side"):
        load_table(write(tmp_path, both))


@pytest.mark.parametrize(
    ("overrides", "segments", "stride"),
    [
        ({"segments": 16}, 16, 2),  # Tab. 9's 16 frames keep the 8 x 4 span: the original's 32 // 16
        ({"segments": 4}, 4, 8),
        ({"segments": 16, "dense_stride": 4}, 16, 4),  # an explicit stride is kept
        ({"segments": 64}, 64, 1),  # a span shorter than the segments: consecutive frames
        ({"sampling": "dense"}, 8, 4),
    ],
)
def test_a_run_that_changes_segments_keeps_the_dense_span(overrides: dict, segments: int, stride: int) -> None:
    recipe = load_profile(REPRODUCTIONS / "profiles.toml", "paper").recipe
    assert (recipe.segments, recipe.dense_stride) == (8, 4)
    changed = run_recipe(recipe, overrides)
    assert (changed.segments, changed.dense_stride) == (segments, stride)


def test_deep_arch_is_explicit_in_every_shipped_profile() -> None:
    profiles = REPRODUCTIONS / "profiles.toml"
    assert load_profile(profiles, "paper").deep_arch == "tsm_r101"
    assert load_profile(profiles, "smoke").deep_arch == "tsm_tiny"
    assert load_profile(profiles, "paper").setup("charades").deep_arch is None  # no deep run there


def test_profile_views_crops() -> None:
    charades = load_profile(REPRODUCTIONS / "profiles.toml", "paper").setup("charades")
    assert (charades.views.dense, charades.views.crops, charades.views.crop_size) == (10, 3, 256)
    smoke = load_profile(REPRODUCTIONS / "profiles.toml", "smoke")
    assert (smoke.views.crops, smoke.views.crop_size) == (1, 0)
    assert smoke.setup("charades").views.crops == 1


def test_cell_views_crops(tmp_path: Path) -> None:
    views = "views = { dense = 2, uniform = 0, crops = 3, crop_size = 64 }"
    text = VALID.replace("paper = [50.0, 80.0] }", f"paper = [50.0, 80.0], {views} }}")
    views = load_table(write(tmp_path, text)).rows[0][1].views
    assert views == ViewProtocol(dense=2, uniform=0, uniform_offset=0.5, crops=3, crop_size=64)


@pytest.mark.parametrize(
    ("views", "message"),
    [
        ("crops = 2", r"views\.crops: must be 1 \(centre crop\) or 3 \(crops along the longer side\), got 2"),
        ('crops = "3"', r"views\.crops: expected int, got str '3'"),
        ("crop_size = -1", r"views\.crop_size: must be non-negative, got -1"),
        ("crop_size = 4.5", r"views\.crop_size: expected int, got float 4\.5"),
        ("crop_size = 64", r"views\.crop_size: 64 exceeds the recipe's short_side 48"),
    ],
)
def test_profile_views_crop_errors(tmp_path: Path, views: str, message: str) -> None:
    text = (REPRODUCTIONS / "profiles.toml").read_text()
    assert text.count("[smoke.views]\n") == 1
    path = write(tmp_path, text.replace("[smoke.views]\n", f"[smoke.views]\n{views}\n"), "profiles.toml")
    with pytest.raises(SpecError, match=rf"profiles\.toml: smoke\.{message}"):
        load_profile(path, "smoke")


def test_cell_views_crop_error(tmp_path: Path) -> None:
    text = VALID.replace("paper = [50.0, 80.0] }", "paper = [50.0, 80.0], views = { crops = 5 } }")
    with pytest.raises(SpecError, match=r"table99\.toml: rows\[0\]\[1\]\.views\.crops: must be 1"):
        load_table(write(tmp_path, text))


def test_table_ids() -> None:
    assert table_path(REPRODUCTIONS, "table7").name == "table07.toml"
    assert table_path(REPRODUCTIONS, "07").name == "table07.toml"
    with pytest.raises(SpecError, match="a table id looks like"):
        table_path(REPRODUCTIONS, "seven")


RELATED = """
id = "table99"
title = "Related methods"
columns = ["Model", "Top-1 / Top-5"]
rows = [["fused", { run = "blend", model = 2, paper = [] }]]

[runs.rgb]
method = "ce"
models = [{ modality = "RGB", init = "imagenet" }]

[runs.blend]
method = "gblend_online"
models = [{ modality = "RGB", init = "imagenet" }, { modality = "Flow", init = "imagenet" }]
recipe = { gblend.super_epoch = 2, gblend.holdout = 0.1 }

[runs.student]
method = "kd"
models = [{ modality = "RGB", init = "imagenet" }]
teacher = "rgb/0"

[runs.siamese]
method = "skd_srl"
models = [{ modality = "RGB", init = "imagenet" }]
recipe = { skd.tau = 4.0, skd.alpha = 0.5, skd.beta = 0 }
"""


def test_related_methods_load_with_their_settings(tmp_path: Path) -> None:
    table = load_table(write(tmp_path, RELATED))
    assert table.rows[0][1] == ResultCell(members=(("blend", 2),), paper=())  # the fused head, no paper value
    assert dict(table.runs["blend"].recipe) == {"gblend.holdout": 0.1, "gblend.super_epoch": 2}
    assert table.runs["student"].teacher == ("rgb", 0)


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            '{ modality = "Flow", init = "imagenet" }]\nrecipe',
            '{ modality = "RGB", init = "imagenet" }]\nrecipe',
            "runs.blend.models: method gblend_online fuses two or more distinct modalities, got ['RGB', 'RGB']",
        ),
        ("model = 2", "model = 3", "rows[0][1].model: run 'blend' has 3 models, no model 3"),
        ("gblend.holdout = 0.1", "gblend.holdout = 1.5", "gblend.holdout: must be a fraction in (0, 1), got 1.5"),
        ("gblend.super_epoch = 2", "gblend.super_epoch = 0", "runs.blend.recipe.gblend.super_epoch: must be positive"),
        ("gblend.super_epoch = 2", 'gblend.super_epoch = "two"', "runs.blend.recipe.gblend.super_epoch: expected int"),
        ("skd.tau = 4.0", "skd.tau = 0.0", "runs.siamese.recipe.skd.tau: must be positive, got 0.0"),
        ("skd.alpha = 0.5", "skd.alpha = -1", "runs.siamese.recipe.skd.alpha: must be non-negative, got -1"),
        ('teacher = "rgb/0"\n', "", "runs.student.teacher: methods mars and d3d and kd need a teacher, others none"),
        ('method = "skd_srl"', 'method = "self_kd"\nteacher = "rgb/0"', "runs.siamese.teacher: methods mars and d3d"),
        ('method = "skd_srl"', 'method = "skd"', "runs.siamese.method: 'skd' is not one of ce, ml, mars, d3d, kd"),
        (
            'models = [{ modality = "RGB", init = "imagenet" }]\nrecipe',
            'models = [{ modality = "RGB", init = "imagenet" }, { modality = "RGB", init = "imagenet" }]\nrecipe',
            "runs.siamese.models: method skd_srl trains exactly one model, got 2",
        ),
        ('title = "Related methods"', 'title = "Related methods"\nsetup = "charades"', "runs.blend.method: this"),
    ],
)
def test_invalid_related_method_specs(tmp_path: Path, old: str, new: str, message: str) -> None:
    assert old in RELATED
    path = write(tmp_path, RELATED.replace(old, new, 1))
    with pytest.raises(SpecError) as info:
        load_table(path)
    assert str(info.value).startswith(f"{path}: ") and "\n" not in str(info.value)
    assert message in str(info.value)


def test_related_method_profile_settings(tmp_path: Path) -> None:
    text = (REPRODUCTIONS / "profiles.toml").read_text()
    assert load_profile(REPRODUCTIONS / "profiles.toml", "smoke").recipe.settings(GBlendSettings).estimate_epochs == 1
    negative = text.replace("gblend.estimate_epochs = 1", "gblend.estimate_epochs = -1", 1)
    path = write(tmp_path, negative, "profiles.toml")
    with pytest.raises(SpecError, match=r"smoke\.recipe\.gblend\.estimate_epochs: must be non-negative, got -1"):
        load_profile(path, "smoke")
    path = write(tmp_path, text.replace("[smoke.views]", "kd.tau = 0\n[smoke.views]", 1), "profiles.toml")
    with pytest.raises(SpecError, match=r"smoke\.recipe\.kd\.tau: must be positive, got 0"):
        load_profile(path, "smoke")


def test_related_table_names() -> None:
    assert table_path(REPRODUCTIONS, "gblend_table4").name == "gblend_table4.toml"
    assert [p.stem for p in table_paths(REPRODUCTIONS, ["related", "table7", "methods"])] == [
        "gblend_table4",
        "skd_table2",
        "methods",
        "adamml_table2",
        "adamml",
        "table07",
    ]
    assert "gblend_table4.toml" not in [p.name for p in all_table_paths(REPRODUCTIONS)]  # not in `all`
    everything = [p.stem for p in table_paths(REPRODUCTIONS, ["all", "related", "table7"])]
    related = ["gblend_table4", "skd_table2", "methods", "adamml_table2", "adamml"]
    assert everything == [f"table{n:02d}" for n in range(1, 14)] + related
    with pytest.raises(SpecError, match=r"gblend: a table id looks like .* or is one of gblend_table4, skd_table2"):
        table_path(REPRODUCTIONS, "gblend")


def test_a_profile_inherits_its_base_table_by_table(tmp_path: Path) -> None:
    text = (REPRODUCTIONS / "profiles.toml").read_text()
    text += '\n[tiny]\nbase = "smoke"\nseeds = [0, 1]\n[tiny.recipe]\nepochs = 2\n[tiny.charades.recipe]\nepochs = 1\n'
    text += '\n[loop]\nbase = "loop"\n'
    (tmp_path / "profiles.toml").write_text(text)
    smoke, tiny = (load_profile(tmp_path / "profiles.toml", name) for name in ("smoke", "tiny"))
    assert tiny.seeds == (0, 1) and tiny.recipe.epochs == 2 and tiny.charades.recipe.epochs == 1
    assert dataclasses.replace(tiny.recipe, epochs=smoke.recipe.epochs) == smoke.recipe
    assert tiny.dataset == smoke.dataset and tiny.charades.dataset == smoke.charades.dataset
    with pytest.raises(SpecError, match=r"loop\.base: 'loop' is not another profile of this file"):
        load_profile(tmp_path / "profiles.toml", "loop")


# Defects of issue 12: a run's recipe overrides now get the profile reader's checks, and one id per training.


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ("{ lr_steps = [0, 2] }", "runs.rgb.recipe.lr_steps: expected increasing positive epochs, got [0, 2]"),
        ('{ lr_steps = [2, "x"] }', "runs.rgb.recipe.lr_steps: expected increasing positive epochs"),
        ("{ lr_steps = [3, 2] }", "runs.rgb.recipe.lr_steps: expected increasing positive epochs, got [3, 2]"),
        ("{ lr_steps = 3 }", "runs.rgb.recipe.lr_steps: expected increasing positive epochs, got 3"),
        ('{ sampling = "random" }', "runs.rgb.recipe.sampling: 'random' is not one of uniform, dense, both"),
        ("{ epochs = 1.5 }", "runs.rgb.recipe.epochs: expected int, got float 1.5"),
        ("{ colour = 1 }", "runs.rgb.recipe.colour: unknown recipe setting"),
    ],
)
def test_run_recipe_overrides_get_the_profile_checks(tmp_path: Path, overrides: str, message: str) -> None:
    text = VALID.replace('init = "imagenet" }]\n', f'init = "imagenet" }}]\nrecipe = {overrides}\n', 1)
    path = write(tmp_path, text)
    with pytest.raises(SpecError) as info:
        load_table(path)
    assert str(info.value).startswith(f"{path}: {message}") and "\n" not in str(info.value)


def test_a_run_recipe_is_checked_as_a_whole() -> None:
    recipe = load_profile(REPRODUCTIONS / "profiles.toml", "smoke").recipe
    where = "table99.toml: runs.rgb.recipe"
    with pytest.raises(
        SpecError, match=rf"^{re.escape(where)}: input_size: {recipe.short_side + 8} exceeds short_side"
    ):
        run_recipe(recipe, {"input_size": recipe.short_side + 8}, where)
    with pytest.raises(SpecError, match=r"input_size: \d+ exceeds short_side 16$"):
        run_recipe(recipe, {"short_side": 16})


def test_an_int_for_a_float_setting_gives_the_run_id_of_the_float(tmp_path: Path) -> None:
    from mml.store import canonical_json

    recipe = load_profile(REPRODUCTIONS / "profiles.toml", "smoke").recipe
    recipes = []
    for value in ("1", "1.0", "1e0"):
        text = VALID.replace('init = "imagenet" }]\n', f'init = "imagenet" }}]\nrecipe = {{ lr = {value} }}\n', 1)
        run = load_table(write(tmp_path, text)).runs["rgb"]
        assert type(dict(run.recipe)["lr"]) is float
        recipes.append(run_recipe(recipe, dict(run.recipe)))
    assert len({canonical_json(r) for r in recipes}) == 1
    assert canonical_json(dataclasses.replace(recipe, lr=1)) == canonical_json(dataclasses.replace(recipe, lr=1.0))


def test_a_recipe_checks_its_values_itself() -> None:
    recipe = load_profile(REPRODUCTIONS / "profiles.toml", "smoke").recipe
    with pytest.raises(InvalidValue, match=r"^batch_size: must be positive, got 0$"):
        dataclasses.replace(recipe, batch_size=0)
    with pytest.raises(InvalidValue, match=r"^dropout: must be below 1, got 1.0$"):
        dataclasses.replace(recipe, dropout=1)
    assert dataclasses.replace(recipe, lr_steps=[1, 2]).lr_steps == (1, 2)


MULTILABEL = """
id = "table99"
title = "A multi-label table"
setup = "charades"
metrics = ["map"]
columns = ["Model", "mAP"]
rows = [["RGB", { run = "rgb", model = 0, paper = [30.0] }]]

[runs.rgb]
method = "ce"
models = [{ modality = "RGB", init = "imagenet" }]

[runs.flow]
method = "ce"
models = [{ modality = "Flow", init = "imagenet" }]
"""


def test_a_multilabel_table_refuses_ensembles_at_load(tmp_path: Path) -> None:
    assert load_table(write(tmp_path, MULTILABEL)).setup == "charades"
    ensemble = MULTILABEL.replace(
        '{ run = "rgb", model = 0, paper = [30.0] }', '{ ensemble = ["rgb/0", "flow/0"], paper = [] }'
    )
    path = write(tmp_path, ensemble)
    with pytest.raises(SpecError) as info:
        load_table(path)
    assert str(info.value) == (
        f"{path}: rows[0][1].ensemble: ensembles are single-label (top-1 / top-5 of averaged softmax): "
        "not for the charades setup"
    )
    matrix = MULTILABEL.replace(
        "[runs.rgb]",
        '[matrix]\nrows = [{ label = "F", model = "flow/0" }]\ncolumns = [{ label = "R", model = "rgb/0" }]\n'
        'paper = [[[]]]\nbaseline = ["F", "R"]\n\n[runs.rgb]',
    )
    with pytest.raises(SpecError, match=r"table99\.toml: matrix: ensembles are single-label"):
        load_table(write(tmp_path, matrix))


def test_the_long_setup_keeps_the_profiles_values_but_its_own() -> None:
    smoke = load_profile(REPRODUCTIONS / "profiles.toml", "smoke")
    long = smoke.setup("long")
    assert long.dataset != smoke.dataset and long.dataset.synthetic["informative_regions"] == 2
    assert long.views == smoke.views and long.seeds == smoke.seeds and long.imagenet == smoke.imagenet
    others = [settings for settings in long.recipe.method_settings if settings.namespace != "adamml"]
    own = smoke.recipe.settings(AdaMMLSettings)  # the long setup may set AdaMML's own, nothing else
    assert dataclasses.replace(long.recipe, method_settings=(*others, own)) == smoke.recipe
    assert long.charades is None and long.long is None  # the parent's setup sections stay the parent's


def test_a_claim_on_a_metric_the_table_does_not_show_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("paper = [50.0, 80.0] }", 'paper = [50.0], id = "rgb" }')
    pair = '["Pair", { run = "pair", model = 0, paper = [], id = "pair" }]'
    text = text.replace('rows = [["RGB", ', f'rows = [{pair}, ["RGB", ')
    text = text.replace('columns = ["Model", "Top-1 / Top-5"]', 'columns = ["Model", "Top-1"]\nmetrics = ["top1"]')
    claim = '\n[[claims]]\ntext = "Pair beats RGB"\nbetter = "pair"\nworse = "rgb"\nmetric = "{metric}"\n'
    load_table(write(tmp_path, text + claim.format(metric="top1")))
    path = write(tmp_path, text + claim.format(metric="video_gflops"))
    where = re.escape(str(path))
    with pytest.raises(SpecError, match=rf"^{where}: claims\[0\]\.metric: 'video_gflops' is not a metric of this"):
        load_table(path)


def test_a_claim_may_name_several_rivals(tmp_path: Path) -> None:
    text = VALID.replace("paper = [50.0, 80.0] }", 'paper = [50.0, 80.0], id = "rgb" }')
    cells = '["Pair", { run = "pair", model = 0, paper = [], id = "pair" }], ["Flow", { run = "pair", model = 1, '
    text = text.replace('rows = [["RGB", ', f'rows = [{cells}paper = [], id = "flow" }}], ["RGB", ')
    claim = '\n[[claims]]\ntext = "Pair ranks first"\nbetter = "pair"\nworse = {worse}\n'
    table = load_table(write(tmp_path, text + claim.format(worse='["rgb", "flow"]')))
    assert table.claims[0].worse == ("rgb", "flow") and table.claims[0].rivals == ("rgb", "flow")
    assert load_table(write(tmp_path, text + claim.format(worse='["rgb"]'))).claims[0].worse == "rgb"  # one is one
    path = write(tmp_path, text)
    where = rf"^{re.escape(str(path))}: claims\[0\]\.worse: "
    for worse, reason in (
        ("[]", "an empty list"),
        ('["rgb", "nosuch"]', "'nosuch' names no result cell of this table"),
        ('["rgb", "pair"]', "'pair' is the claim's `better` cell"),
        ('"pair"', "'pair' is the claim's `better` cell"),
        ('["rgb", "rgb"]', "'rgb' is named twice"),
        ('["rgb", 1]', "expected cell ids, got 1"),
        ("1", "expected str or list, got int 1"),
    ):
        path.write_text(text + claim.format(worse=worse))
        with pytest.raises(SpecError, match=where + re.escape(reason)):
            load_table(path)


def test_untested_claims_are_read_with_their_reasons(tmp_path: Path) -> None:
    untested = '\n[[untested]]\ntext = "SOTA on top-5"\nreason = "other works are cited, not trained"\n'
    table = load_table(write(tmp_path, VALID + untested))
    assert [(claim.text, claim.reason) for claim in table.untested] == [
        ("SOTA on top-5", "other works are cited, not trained")
    ]
    assert load_table(write(tmp_path, VALID)).untested == ()
    shipped = [claim for path in all_table_paths(REPRODUCTIONS) for claim in load_table(path).untested]
    assert shipped and all(claim.reason for claim in shipped)


@pytest.mark.parametrize(
    ("untested", "message"),
    [
        ('text = "A claim"\nreason = " "', r"untested\[0\]\.reason: empty: say which claim is not tested, and why"),
        ('text = "A claim"', r"untested\[0\]\.reason: missing"),
        ('text = "A claim"\nreason = "why"\nmetric = "top1"', r"untested\[0\]\.metric: unknown key"),
        (
            'text = "A claim"\nreason = "why"\n[[untested]]\ntext = "A claim"\nreason = "again"',
            r"untested\[1\]\.text: written twice",
        ),
    ],
)
def test_invalid_untested_claims_are_refused(tmp_path: Path, untested: str, message: str) -> None:
    with pytest.raises(SpecError, match=rf"table99\.toml: {message}"):
        load_table(write(tmp_path, f"{VALID}\n[[untested]]\n{untested}\n"))


def test_charades_trains_with_nesterov_and_tests_pyslowfast_views() -> None:
    """PySlowFast's Charades recipe: SGD with Nesterov momentum, test clips spread from the first start to the last;
    the Something-Something-v2 setups keep TSM's SGD and Appendix 1's views."""
    for name in ("smoke", "small", "paper"):
        profile = load_profile(REPRODUCTIONS / "profiles.toml", name)
        charades = profile.setup("charades")
        assert (charades.recipe.nesterov, charades.views.dense_spacing) == (True, "pyslowfast"), name
        assert (profile.recipe.nesterov, profile.views.dense_spacing) == (False, "appendix1"), name
    with pytest.raises(InvalidValue, match=r"^nesterov: expected bool, got str 'yes'$"):
        dataclasses.replace(profile.recipe, nesterov="yes")
    with pytest.raises(InvalidValue, match=r"^nesterov: Nesterov momentum needs a positive momentum$"):
        dataclasses.replace(profile.recipe, nesterov=True, momentum=0.0)


def test_an_unknown_dense_spacing_is_refused(tmp_path: Path) -> None:
    text = VALID.replace("paper = [50.0, 80.0] }", 'paper = [50.0, 80.0], views = { dense_spacing = "wrap" } }')
    with pytest.raises(SpecError, match=r"rows\[0\]\[1\]\.views\.dense_spacing: 'wrap' is not one of appendix1"):
        load_table(write(tmp_path, text))
