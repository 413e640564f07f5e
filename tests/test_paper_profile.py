"""The paper profile: what it plans for the shipped tables (without data: Tab. 9's backbones, segments, dense
strides and test crops, the C2 relaunch chain, the Charades setup's "from Kinetics" weight file), and a run of it
started on the CPU on a tiny data set in the real Something-Something-v2 layout, scaled down only by command-line
overrides."""

import dataclasses
import hashlib
import json
import re
import shutil
from pathlib import Path

import cv2
import pytest
import torch
import torchvision

from mml.cli import main
from mml.data.datasets import VideoDataset
from mml.data.synthetic import SyntheticConfig, ensure_sthv2
from mml.errors import CheckpointError, SpecError
from mml.plan import plan_tables
from mml.runner import init_loader
from mml.spec import RELATED_GROUP, SETUPS, load_profile, load_table, table_paths
from mml.store import Store

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"
# A dataset without videos: enough to plan (classes and fingerprint), nothing to train.
NO_VIDEOS = VideoDataset(Path("."), tuple(f"class{i}" for i in range(174)), (), (), "d" * 64, "d" * 64, "v" * 64)


def paper(setup: str = "sthv2"):
    return load_profile(REPRODUCTIONS / "profiles.toml", "paper").setup(setup)


def test_every_shipped_table_plans_under_the_paper_profile() -> None:
    paths = table_paths(REPRODUCTIONS, ["all"]) + table_paths(REPRODUCTIONS, [RELATED_GROUP])
    tables = [load_table(path) for path in paths]
    for setup in SETUPS:
        chosen = [table for table in tables if table.setup == setup]
        plan = plan_tables(chosen, paper(setup), NO_VIDEOS)
        assert plan.order() and all(rid in plan.evaluations for rid in plan.runs)


def test_every_shipped_table_plans_under_the_smoke_and_small_profiles() -> None:
    """What `reproduce all related` trains at the CPU scales (the tables' runs and the AdaMML settings' checks)."""
    paths = table_paths(REPRODUCTIONS, ["all"]) + table_paths(REPRODUCTIONS, [RELATED_GROUP])
    tables = [load_table(path) for path in paths]
    for name in ("smoke", "small"):
        for setup in SETUPS:
            profile = load_profile(REPRODUCTIONS / "profiles.toml", name).setup(setup)
            videos = VideoDataset(Path("."), tuple(f"class{i}" for i in range(8)), (), (), "f" * 64, "f" * 64, "v" * 64)
            plan = plan_tables([table for table in tables if table.setup == setup], profile, videos)
            assert plan.order(), (name, setup)


def test_table9_trains_resnet101_on_16_frames_with_the_span_of_the_8_frame_recipe() -> None:
    table = load_table(REPRODUCTIONS / "table09.toml")
    plan = plan_tables([table], paper(), NO_VIDEOS)
    configs = {name: plan.runs[plan.run_id("table09", name, 0)] for name in table.runs}
    deep = {name for name, run in table.runs.items() if run.deep}
    assert deep == {name for name in table.runs if name.startswith("r101_")} and len(deep) == 8
    for name, config in configs.items():
        arch, segments, stride = ("tsm_r101", 16, 2) if name in deep else ("tsm_r50", 8, 4)
        assert (config.arch, config.recipe.segments, config.recipe.dense_stride) == (arch, segments, stride), name
        assert config.recipe.dense_stride * config.recipe.segments == 32  # the original's dense_length
    assert configs["r101_rgb"].models[0].init == "imagenet:ResNet101_Weights.IMAGENET1K_V1"
    assert configs["rgb"].models[0].init == "imagenet:ResNet50_Weights.IMAGENET1K_V1"
    recipe = paper().recipe
    cells = table.cells()
    assert cells and all(cell.views.full_resolution and cell.views.crop_side(recipe) == 256 for cell in cells)


def test_deep_runs_train_the_profile_deep_segments_unless_their_own_recipe_sets_segments(tmp_path: Path) -> None:
    """Tab. 9's deep runs take their segments from the profile (paper 16, smoke 8 with the smoke span 2 x 4 kept,
    small 16 as its committed tables were trained); a deep run whose spec sets segments keeps them."""
    table = load_table(REPRODUCTIONS / "table09.toml")
    videos = VideoDataset(Path("."), tuple(f"class{i}" for i in range(8)), (), (), "e" * 64, "e" * 64, "v" * 64)
    for name, segments, stride in (("smoke", 8, 1), ("small", 16, 1)):
        profile = load_profile(REPRODUCTIONS / "profiles.toml", name)
        plan = plan_tables([table], profile, videos)
        recipe = plan.runs[plan.run_id("table09", "r101_rgb", 0)].recipe
        assert (recipe.segments, recipe.dense_stride) == (segments, stride), name
        assert plan.runs[plan.run_id("table09", "rgb", 0)].recipe.segments == 4, name
    spec = tmp_path / "table93.toml"
    spec.write_text(
        """
id = "table93"
title = "A deep run with its own segments"
columns = ["Model", "Top-1 / Top-5"]
rows = [["CE", { run = "deep", model = 0, paper = [] }]]

[runs.deep]
method = "ce"
models = [{ modality = "RGB", init = "imagenet" }]
deep = true
recipe = { segments = 12 }
"""
    )
    plan = plan_tables([load_table(spec)], paper(), NO_VIDEOS)
    recipe = plan.runs[plan.run_id("table93", "deep", 0)].recipe
    assert (recipe.segments, recipe.dense_stride) == (12, 2)  # the 32-frame span of the paper recipe


def test_an_imagenet_file_is_for_the_profile_backbone_and_the_deep_one_keeps_torchvision(tmp_path: Path) -> None:
    table = load_table(REPRODUCTIONS / "table09.toml")
    weights = tmp_path / "resnet50.pth"
    weights.write_bytes(b"resnet-50 weights")
    plan = plan_tables([table], paper(), NO_VIDEOS, weights)
    init = {name: plan.runs[plan.run_id("table09", name, 0)].models[0].init for name in ("rgb", "r101_rgb")}
    assert init == {
        "rgb": f"imagenet:sha256:{hashlib.sha256(b'resnet-50 weights').hexdigest()}",
        "r101_rgb": "imagenet:ResNet101_Weights.IMAGENET1K_V1",
    }
    with pytest.raises(CheckpointError, match="the weight file of this initialisation was not given"):
        init_loader(Store(tmp_path / "store"), None)(init["rgb"], "tsm_r50")


def test_a_teacher_of_another_backbone_is_refused(tmp_path: Path) -> None:
    spec = tmp_path / "table95.toml"
    spec.write_text(
        """
id = "table95"
title = "A deep teacher"
columns = ["Model", "Top-1 / Top-5"]
rows = [["KD", { run = "student", model = 0, paper = [] }]]

[runs.teacher]
method = "ce"
models = [{ modality = "RGB", init = "imagenet" }]
deep = true

[runs.student]
method = "kd"
models = [{ modality = "RGB", init = "imagenet" }]
teacher = "teacher/0"
"""
    )
    message = r"table95\.toml: runs\.student\.teacher: teacher trains tsm_r101, the student tsm_r50"
    with pytest.raises(SpecError, match=message):
        plan_tables([load_table(spec)], paper(), NO_VIDEOS)


def test_deep_runs_need_a_deep_arch_in_the_profile() -> None:
    table = load_table(REPRODUCTIONS / "table09.toml")
    shallow = dataclasses.replace(paper(), deep_arch=None)
    with pytest.raises(
        SpecError, match=r"table09\.toml: runs\.r101_\w+: deep = true, but profile 'paper' sets no deep_arch"
    ):
        plan_tables([table], shallow, NO_VIDEOS)


def test_the_relaunch_of_ml_starts_from_two_launches_of_run_c() -> None:
    """Tab. 7 row 6 ("RGB from C(RGB)" / "RGB from C2(RGB)"): the first models of C and of C2, a second launch of C
    from the same CE models, never the two models of one ML run (whose KL term is already optimised)."""
    tables = [load_table(REPRODUCTIONS / f"table{n:02d}.toml") for n in (7, 11, 12, 13)]
    plan = plan_tables(tables, paper(), NO_VIDEOS)
    for table in tables:
        ids = {name: plan.run_id(table.id, name, 0) for name in ("rgb", "rgb2", "C", "C2", "ml_c")}
        assert len(set(ids.values())) == 5
        assert [m.init for m in plan.runs[ids["ml_c"]].models] == [f"run:{ids['C']}/0", f"run:{ids['C2']}/0"]
        c, c2 = plan.runs[ids["C"]], plan.runs[ids["C2"]]
        assert c.upstream == c2.upstream == (ids["rgb"], ids["rgb2"]) and (c.replica, c2.replica) == (0, 1)
        assert ids == {name: plan.run_id("table07", name, 0) for name in ids}  # one run, however many tables
    r101 = load_table(REPRODUCTIONS / "table09.toml")
    plan = plan_tables([r101], paper(), NO_VIDEOS)
    ids = {name: plan.run_id("table09", name, 0) for name in r101.runs}
    for name in ("r101_ml_rgb", "r101_ml_flow", "r101_ml_diff"):
        assert plan.runs[ids[name]].upstream == (ids["r101_C"], ids["r101_C2"])


def test_the_charades_setup_starts_from_the_kinetics_file_given(tmp_path: Path) -> None:
    table = load_table(REPRODUCTIONS / "table06.toml")
    plan = plan_tables([table], paper("charades"), NO_VIDEOS)
    assert plan.runs[plan.run_id("table06", "rgb", 0)].models[0].init == "imagenet:ResNet50_Weights.IMAGENET1K_V1"
    kinetics = tmp_path / "I3D_8x8_R50.pkl"
    kinetics.write_bytes(b"weights")
    plan = plan_tables([table], paper("charades"), NO_VIDEOS, kinetics)
    init = f"imagenet:sha256:{hashlib.sha256(b'weights').hexdigest()}"
    assert {m.init for m in plan.runs[plan.run_id("table06", "mml_kinetics", 0)].models} == {init}


SPEC = """
id = "table94"
title = "One paper-profile run"
columns = ["Model", "Top-1 / Top-5"]
rows = [["RGB from ImageNet", { run = "rgb", model = 0, paper = [58.10, 84.61] }]]

[runs.rgb]
method = "ce"
models = [{ modality = "RGB", init = "imagenet" }]
"""


@pytest.mark.slow
def test_paper_profile_runs_on_a_tiny_real_layout_dataset(tmp_path: Path, capsys) -> None:
    data = ensure_sthv2(tmp_path / "sthv2", SyntheticConfig(num_classes=2, train_per_class=2, val_per_class=1), False)
    specs = tmp_path / "specs"
    specs.mkdir()
    shutil.copy(REPRODUCTIONS / "profiles.toml", specs)
    (specs / "table94.toml").write_text(SPEC)
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet50().state_dict(), tmp_path / "resnet50.pth")  # stands in for ImageNet weights
    argv = ["reproduce", "table94", "--profile", "paper", "--data", str(data), "--specs", str(specs)]
    argv += [
        "--store",
        str(tmp_path / "store"),
        "--out",
        str(tmp_path / "tables"),
        "--imagenet",
        str(tmp_path / "resnet50.pth"),
    ]
    argv += ["--set", "recipe.epochs=1", "--set", "recipe.batch_size=2", "--no-progress"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "1 runs needed" in out and "1 trained or loaded" in out
    run = json.loads(next((tmp_path / "store" / "runs").glob("*/run.json")).read_text())["config"]
    assert run["arch"] == "tsm_r50" and run["models"][0]["init"].startswith("imagenet:sha256:")
    recipe = run["recipe"]
    assert (recipe["segments"], recipe["input_size"], recipe["short_side"], recipe["lr"]) == (8, 224, 256, 0.025)
    assert (recipe["epochs"], recipe["batch_size"]) == (1, 2)
    frames = next((tmp_path / "store" / "cache").glob("*/jpeg256/frames/*/img_00001.jpg"))
    assert min(cv2.imread(str(frames)).shape[:2]) == 256
    assert "| RGB from ImageNet" in (tmp_path / "tables" / "paper" / "table94.md").read_text()


def test_a_dry_run_of_table7_on_the_paper_profile_prices_three_seeds(tmp_path: Path, capsys) -> None:
    """`mml reproduce table7 --profile paper --data <SmSm-v2 layout> --dry-run --seeds 0,1,2`: every run of the three
    seeds as missing, then GPU-hours on an H100, the cache's disk and the expected half-width of a claim."""
    data = ensure_sthv2(tmp_path / "sthv2", SyntheticConfig(num_classes=2, train_per_class=2, val_per_class=1), False)
    argv = ["reproduce", "table7", "--profile", "paper", "--data", str(data), "--store", str(tmp_path / "store")]
    assert main([*argv, "--dry-run", "--seeds", "0,1,2", "--no-progress"]) == 0
    out = capsys.readouterr().out
    listed = [line for line in out.splitlines() if line.startswith("missing ")]
    assert len(listed) == 30  # Table 7's 10 runs for each seed
    assert "Price on H100" in out and "3 seeds (0, 1, 2)" in out
    total = next(line for line in out.splitlines() if line.strip().startswith("total"))
    assert re.fullmatch(r"[\d,]+\.\d", total.split()[-1])  # GPU-hours (0.0 on these 6 videos)
    assert "Cache of frames + TV-L1 flow at short side 256" in out
    assert "with 3 seeds: ±" in out and "3 seeds cost" in out
    assert not (tmp_path / "store" / "runs").exists()  # a dry run trains nothing


def test_seeds_on_the_command_line_are_checked(tmp_path: Path, capsys) -> None:
    argv = ["reproduce", "table7", "--store", str(tmp_path / "store"), "--dry-run"]
    assert main([*argv, "--seeds", "0,0"]) == 2
    assert "--seeds 0,0: expected distinct non-negative integers" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([*argv, "--seeds", "0,x"])
