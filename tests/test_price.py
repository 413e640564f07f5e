"""The price of a plan (`mml.price`): clips, counted FLOPs, GPU-hours from the throughput table, cache disk, the
expected half-width of a claim's interval, and the rendered lines."""

import math
from pathlib import Path

import pytest
from scipy import stats
from test_reproduce import MICRO  # the micro profile: 3 classes, 4 training and 2 validation videos a class

from mml.data.datasets import VideoDataset
from mml.data.sthv2 import VideoRecord
from mml.errors import SpecError
from mml.plan import plan_tables
from mml.price import (
    BACKWARD_FACTOR,
    DEFAULT_SEED_SD,
    TABLE7_RELAUNCHES,
    Throughput,
    cache_disk,
    clip_gflops,
    expected_half_width,
    load_throughputs,
    price_lines,
    price_plan,
    price_run,
    relaunch_sd,
    training_clips_per_epoch,
)
from mml.report.cost import inference_gflops
from mml.spec import Recipe, ViewProtocol, load_profile, load_table
from mml.store import ModelConfig, RunConfig

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"
RECIPE = Recipe(segments=2, short_side=32, input_size=28, batch_size=16, epochs=3, lr=0.01, lr_steps=(2,))
VIEWS = ViewProtocol()
ENTRY = """
[[entry]]
gpu = "H100"
arch = "tsm_tiny"
modalities = ["RGB"]
segments = 2
input_size = 28
setting = "bf16-cl-compile"
train_clips_per_s = 500
source = "a test figure"

[[entry]]
gpu = "H100"
arch = "tsm_tiny"
modalities = ["RGB"]
segments = 2
input_size = 28
setting = "fp32-eager"
train_clips_per_s = 100
source = "a test figure"
"""


def dataset(train: int, validation: int, classes: int = 10) -> VideoDataset:
    """A dataset of records only (the price never opens a video)."""

    def records(count: int, split: str) -> tuple[VideoRecord, ...]:
        return tuple(VideoRecord(f"{split}{i}", Path("."), i % classes, ("red square",)) for i in range(count))

    names = tuple(f"class{i}" for i in range(classes))
    return VideoDataset(
        Path("."), names, records(train, "t"), records(validation, "v"), "f" * 64, "f" * 64, "v" * 64, packed=True
    )


def run(method: str, modalities: tuple[str, ...], teacher: str | None = None, recipe: Recipe = RECIPE) -> RunConfig:
    return RunConfig(
        method=method,
        models=tuple(ModelConfig(modality=m, init="random") for m in modalities),
        arch="tsm_tiny",
        recipe=recipe,
        dataset="f" * 64,
        num_classes=10,
        seed=0,
        teacher=ModelConfig(modality=teacher, init="random") if teacher else None,
    )


def entries(tmp_path: Path, text: str = ENTRY) -> tuple[Throughput, ...]:
    (tmp_path / "throughput.toml").write_text(text)
    return load_throughputs(tmp_path)


def test_training_clips_are_full_batches_times_views_and_epochs() -> None:
    assert training_clips_per_epoch(run("ce", ("RGB",)), 70) == 64  # 4 batches of 16, the last 6 videos dropped
    assert training_clips_per_epoch(run("ce_aug", ("RGB",)), 70) == 128  # two augmented views of each clip
    assert training_clips_per_epoch(run("ce", ("RGB",)), 10) == 10  # fewer videos than a batch: one batch of all
    assert training_clips_per_epoch(run("ce", ("RGB",)), 0) == 0
    held_out = training_clips_per_epoch(run("late_fusion", ("RGB", "Flow")), 200)
    assert held_out == 192 and training_clips_per_epoch(run("gblend", ("RGB", "Flow")), 200) == 176  # 8 % held out


def test_flops_are_counted_forward_flops_times_the_stated_factors(tmp_path: Path) -> None:
    videos = dataset(70, 9)
    views = ViewProtocol(dense=2, uniform=1, crops=3, crop_size=32)
    config = run("ml", ("RGB", "Flow"))
    price = price_run("r", config, "x", [views], videos, entries(tmp_path), "H100", "bf16-cl-compile")
    train = [inference_gflops(config, index, VIEWS) for index in range(2)]  # at the training input
    test = [inference_gflops(config, index, views) for index in range(2)]
    assert price.train_clips == 3 * 64
    assert price.train_gflops == pytest.approx(3 * 64 * BACKWARD_FACTOR * sum(train))
    assert price.eval_clips == 2 * 9 * 3 * 3 and price.eval_gflops == pytest.approx(9 * 3 * 3 * sum(test))
    mars = price_run("m", run("mars", ("RGB",), "Flow"), "x", [], videos, (), "H100", "bf16-cl-compile")
    assert mars.train_gflops == pytest.approx(3 * 64 * (BACKWARD_FACTOR * train[0] + train[1]))  # teacher forward
    assert mars.eval_gflops == 0 and mars.eval_time.seconds == 0


def test_gpu_hours_are_clips_over_the_measured_throughput(tmp_path: Path) -> None:
    price = price_run(
        "r", run("ce", ("RGB",)), "x", [VIEWS], dataset(70, 9), entries(tmp_path), "H100", "bf16-cl-compile"
    )
    assert price.train_time.seconds == pytest.approx(3 * 64 / 500)
    assert price.train_time.hours == pytest.approx(3 * 64 / 500 / 3600)
    assert price.train_time.basis == "measured: H100 tsm_tiny RGB 2x28 bf16-cl-compile"
    # evaluation (fp32 eager, no eval figure): the fp32-eager entry's GFLOP/s, scaled by FLOPs
    per_clip = clip_gflops("tsm_tiny", "RGB", 2, 28, 10)
    assert price.eval_time.seconds == pytest.approx(9 * per_clip / (100 * BACKWARD_FACTOR * per_clip))
    assert price.eval_time.basis == "scaled from H100 tsm_tiny RGB 2x28 fp32-eager by FLOPs"
    assert price.hours == pytest.approx(price.train_time.hours + price.eval_time.hours)


def test_a_run_without_an_entry_is_scaled_by_flops_or_has_no_figure(tmp_path: Path) -> None:
    table = entries(tmp_path)
    longer = run("ce", ("Flow",), recipe=Recipe(**{**RECIPE.__dict__, "segments": 4}))
    price = price_run("r", longer, "x", [], dataset(70, 9), table, "H100", "bf16-cl-compile")
    entry_gflops = BACKWARD_FACTOR * clip_gflops("tsm_tiny", "RGB", 2, 28, 10)  # the run's classes
    assert price.train_time.seconds == pytest.approx(price.train_gflops / (500 * entry_gflops))
    assert price.train_time.basis == "scaled from H100 tsm_tiny RGB 2x28 bf16-cl-compile by FLOPs"
    assert price.train_time.seconds > 3 * 64 / 500  # twice the frames, Flow's wider conv1: more than the entry's time
    other = price_run("r", run("ce", ("RGB",)), "x", [VIEWS], dataset(70, 9), table, "A100", "bf16-cl-compile")
    assert other.train_time.seconds is None and other.hours is None
    assert other.train_time.basis == "no throughput figure for A100 at bf16-cl-compile"


def test_the_half_width_is_the_t_interval_of_the_seed_count() -> None:
    for seeds in (3, 5, 10):
        expected = stats.t.ppf(0.975, seeds - 1) * 0.4 / math.sqrt(seeds)
        assert expected_half_width(seeds, 0.4) == pytest.approx(expected)
    assert expected_half_width(1, 0.4) is None and expected_half_width(2, 0.4) is None  # no verdict below 3 seeds
    differences = [a - b for _, a, b in TABLE7_RELAUNCHES]
    assert DEFAULT_SEED_SD == pytest.approx(math.sqrt(sum(d * d for d in differences) / len(differences)))
    assert DEFAULT_SEED_SD == pytest.approx(0.1271, abs=1e-4)  # 0.06, 0.07, 0.20 points
    with pytest.raises(ValueError):
        relaunch_sd(())


@pytest.mark.parametrize(
    ("old", "new", "reason"),
    [
        ('source = "a test figure"', "", "entry[0].source: missing"),
        ("train_clips_per_s = 500", "", "entry[0].train_clips_per_s: missing"),
        ("train_clips_per_s = 500", "train_clips_per_s = 500\nspeed = 3", "entry[0].speed: unknown key"),
    ],
)
def test_an_entry_missing_a_key_is_refused_naming_the_file(tmp_path: Path, old: str, new: str, reason: str) -> None:
    with pytest.raises(SpecError) as error:
        entries(tmp_path, ENTRY.replace(old, new, 1))
    assert str(error.value) == f"{tmp_path / 'throughput.toml'}: {reason}"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("train_clips_per_s = -3", "train_clips_per_s: must be positive, got -3.0"),
        ('train_clips_per_s = "fast"', "train_clips_per_s: expected float, got str 'fast'"),
        ("train_clips_per_s = nan", "train_clips_per_s: must be a finite number, got nan"),
        ('source = " "', "source: must not be empty"),
        ('arch = "resnet"', "arch: 'resnet' is not one of"),
        ('setting = "fast"', "setting: 'fast' is not one of"),
        ("modalities = []", "modalities: must name at least one modality"),
    ],
)
def test_a_bad_entry_is_refused_on_one_line_naming_the_file(tmp_path: Path, bad: str, reason: str) -> None:
    key = bad.split(" =")[0]
    lines = [bad if line.startswith(f"{key} =") else line for line in ENTRY.splitlines()]
    with pytest.raises(SpecError) as error:
        entries(tmp_path, "\n".join(lines))
    message = str(error.value)
    assert message.startswith(f"{tmp_path / 'throughput.toml'}: entry[0].{reason}") and "\n" not in message


def test_the_shipped_table_loads_and_cites_every_figure() -> None:
    table = load_throughputs(REPRODUCTIONS)
    assert table and all(entry.source.startswith(("measured: ", "published: ")) for entry in table)
    h100 = {entry.setting: entry for entry in table if entry.label.startswith("H100 tsm_r50 RGB 8x224")}
    assert h100["bf16-cl-compile"].train_clips_per_s == 557  # the best training throughput of the notes


def test_cache_disk_of_a_packed_synthetic_cache_is_its_arrays() -> None:
    profile = load_profile(REPRODUCTIONS / "profiles.toml", "smoke")
    videos = dataset(256, 256)
    disk = cache_disk(videos, profile, 48, with_flow=True)
    frames = 512 * (10 + 12) / 2  # the generator's frames per region, uniform in [min_frames, frames]
    assert disk.frames == frames and disk.kind == "npy"
    assert disk.frame_bytes == frames * 48 * 48 * 3 + 512 * 128
    assert disk.flow_bytes == (frames - 512) * 48 * 48 * 2 + 512 * 128
    counted = cache_disk(videos, profile, 48, False, {r.video_id: 7 for r in (*videos.train, *videos.validation)})
    assert counted.frames == 512 * 7 and counted.flow_bytes == 0 and counted.frames_basis.startswith("counted")


def test_a_micro_table7_plan_prices_every_run_and_renders_the_totals(tmp_path: Path) -> None:
    (tmp_path / "profiles.toml").write_text(MICRO)
    profile = load_profile(tmp_path / "profiles.toml", "micro")
    videos = dataset(12, 6, classes=3)
    plan = plan_tables([load_table(REPRODUCTIONS / "table07.toml")], profile, videos)
    price = price_plan(plan, videos, profile, entries(tmp_path), "H100")
    assert {run.run_id for run in price.runs} == set(plan.runs) and price.seeds == (0,)
    trained = [run for run in price.runs if run.name != "imagenet (synthetic pretraining)"]
    assert all(run.train_clips == 2 * 12 for run in trained)  # 2 epochs of 3 batches of 4
    assert price.train_clips == sum(run.train_clips for run in price.runs)
    lines = price_lines(price)
    total = next(line for line in lines if line.strip().startswith("total"))
    assert f"{price.train_clips:,}" in total and f"{price.hours:,.1f}" in total
    assert any("no verdict (1 seed)" in line for line in lines)
    three = f"{expected_half_width(3, DEFAULT_SEED_SD):.2f}"
    assert any(f"with 3 seeds: ±{three} points" in line for line in lines)
    assert lines[-1] == f"3 seeds cost {3 * price.hours:,.1f} GPU-hours on H100"
    assert any(line.startswith("Cache of frames + TV-L1 flow at short side 32 (18 videos") for line in lines)
