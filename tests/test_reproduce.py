"""End to end: `mml reproduce table7` on a micro synthetic profile, reuse of stored runs, and exact resume."""

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from mml.cli import main
from mml.data.cache import prepare
from mml.data.datasets import open_dataset
from mml.evaluate import evaluate_stored, load_scores
from mml.execution import Execution
from mml.executors import MAX_CPU_RUNS, default_devices
from mml.plan import plan_tables
from mml.runner import init_loader
from mml.spec import load_profile, load_table
from mml.store import Store
from mml.train import train_run

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"

# The smoke profile shrunk to seconds: 3 classes, 18 videos, 2 epochs.
MICRO = """
[micro]
description = "micro synthetic profile for the tests"
arch = "tsm_tiny"
seeds = [0]
[micro.dataset]
kind = "synthetic-sthv2"
synthetic = { num_classes = 3, train_per_class = 4, val_per_class = 2, min_frames = 8, frames = 10, height = 32, \
width = 40, seed = 0 }
[micro.imagenet]
source = "pretrain"
epochs = 1
segments = 1
[micro.recipe]
segments = 2
short_side = 32
input_size = 28
batch_size = 4
epochs = 2
lr = 0.01
lr_steps = [1]
dense_stride = 2
adamml.regions = 3
adamml.test_regions = 10
adamml.warmup = 0
adamml.alternations = 1
adamml.finetune = 0
adamml.policy_size = 16
adamml.policy_frames = 1
adamml.policy_width = 16
adamml.policy_hidden = 8
[micro.views]
dense = 0
uniform = 1
uniform_offset = 0.5

[micro.charades]
description = "micro synthetic multi-label profile for the tests"
arch = "i3d_tiny"
[micro.charades.dataset]
kind = "synthetic-charades"
synthetic = { num_classes = 3, train_videos = 8, test_videos = 6, min_frames = 12, frames = 16, height = 32, \
width = 40, seed = 0 }
[micro.charades.imagenet]
source = "pretrain"
epochs = 1
segments = 4
[micro.charades.recipe]
segments = 4
short_side = 32
input_size = 28
batch_size = 4
epochs = 1
lr = 0.01
lr_steps = [1]
sampling = "dense"
dense_stride = 2
[micro.charades.views]
dense = 2
uniform = 0

[micro.long]
description = "micro synthetic long videos for the tests (AdaMML)"
[micro.long.dataset]
synthetic = { num_classes = 3, train_per_class = 4, val_per_class = 2, min_frames = 6, frames = 6, height = 32, \
width = 40, seed = 0, regions = 3, informative_regions = 1 }
"""


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("specs")
    shutil.copy(REPRODUCTIONS / "table07.toml", folder)
    (folder / "profiles.toml").write_text(MICRO)
    return folder


def reproduce(specs: Path, root: Path, *extra: str, table: str = "table7") -> int:
    """`mml reproduce <table>` on the micro profile with the specs in `specs`, storing and writing under `root`, one
    run at a time in this process (`--devices cpu`), so that the tests see every run's messages and patches; the
    default of one run per core is what the subprocess tests (`runner_cli`) run."""
    folders = ["--specs", str(specs), "--store", str(root / "store"), "--out", str(root / "tables")]
    tables = table.split()  # one table or several, separated by spaces
    return main(["reproduce", *tables, "--profile", "micro", *folders, "--no-progress", "--devices", "cpu", *extra])


@pytest.mark.slow
def test_table7_end_to_end_then_nothing_to_train(specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert reproduce(specs, tmp_path) == 0
    first = capsys.readouterr().out
    assert "11 runs needed: 0 already in" in first and "11 trained" in first
    markdown = (tmp_path / "tables" / "micro" / "table07.md").read_text()
    latex = (tmp_path / "tables" / "micro" / "table07.tex").read_text()
    rows = [line for line in markdown.splitlines() if re.match(r"^\| [1-7] ", line)]
    assert len(rows) == 7
    assert all(re.search(r"\| \d+\.\d\d / \d+\.\d\d \(n=1\) +\| [+-]\d+\.\d\d / [+-]\d+\.\d\d", row) for row in rows)
    assert latex.count(r"\\") >= 8 and r"\bottomrule" in latex

    assert reproduce(specs, tmp_path) == 0
    second = capsys.readouterr().out
    assert "11 runs needed: 11 already in" in second and "0 trained" in second
    assert (tmp_path / "tables" / "micro" / "table07.md").read_text() == markdown

    assert reproduce(specs, tmp_path, "--dry-run") == 0
    listing = capsys.readouterr().out.splitlines()
    runs = listing[: listing.index(next(line for line in listing if line.startswith("Price on")))]
    assert len(runs) == 11 and all(line.startswith("done") for line in runs)  # then the price


@pytest.mark.slow
def test_resume_after_interruption_equals_uninterrupted_run(specs: Path, tmp_path: Path) -> None:
    profile = load_profile(specs / "profiles.toml", "micro")
    table = load_table(specs / "table07.toml")
    dataset = open_dataset(profile.dataset, None, tmp_path / "data", progress=False)
    plan = plan_tables([table], profile, dataset)
    run = Execution(progress=False)
    # The MML run A (RGB + Flow) after its upstream chain: the ImageNet stand-in, then "RGB from ImageNet".
    target = plan.run_id("table07", "A", 0)
    rgb = plan.run_id("table07", "rgb", 0)
    chain = [plan.runs[rgb].upstream[0], rgb, target]
    results = {}
    for name, interrupt in (("straight", False), ("interrupted", True)):
        store = Store(tmp_path / name)
        cache = dataset.frame_source(store.cache_dir(), profile.recipe.short_side)
        prepare(cache, (*dataset.train, *dataset.validation), with_flow=True, workers=1, progress=False)
        loader = init_loader(store, None)
        for rid in chain:
            if interrupt and rid == target:
                partial = train_run(plan.runs[rid], dataset, cache, store, run, loader, stop_after_epoch=1)
                assert store.status(rid) == "partial" and (partial / "checkpoint.safetensors").is_file()
            train_run(plan.runs[rid], dataset, cache, store, run, loader)
        evaluation = evaluate_stored(store, plan.runs[target], profile.views, dataset, cache, run)
        history = json.loads((store.run_dir(target) / "metrics.json").read_text())
        _, _, flow_logits = load_scores(
            store.evaluation_dir(target, plan.evaluation_key(target, profile.views)) / "scores1.npz"
        )
        weights = load_file(str(store.run_dir(target) / "model0.safetensors"))
        results[name] = (evaluation, history, flow_logits, weights)
    straight, interrupted = results["straight"], results["interrupted"]
    assert straight[0] == interrupted[0] and straight[1] == interrupted[1]
    assert len(straight[1]["history"]) == profile.recipe.epochs
    np.testing.assert_array_equal(straight[2], interrupted[2])
    assert all(torch.equal(straight[3][k], interrupted[3][k]) for k in straight[3])


def test_bad_spec_is_a_one_line_error(specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "specs"
    shutil.copytree(specs, broken)
    text = (
        (broken / "table07.toml")
        .read_text()
        .replace('init = "run:A/0" }, { modality = "Flow"', 'init = "run:Z/0" }, { modality = "Flow"', 1)
    )
    (broken / "table07.toml").write_text(text)
    assert reproduce(broken, tmp_path) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"mml: error: {broken / 'table07.toml'}: runs.B.models[0].init: run 'Z' is not defined")
    assert "\n" not in error


@pytest.mark.slow
def test_every_cell_kind_end_to_end(specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """MARS, D3D, ML, ensembles, other test views, an ensemble matrix with heatmaps, a triple ranking, claims."""
    folder = tmp_path / "specs"
    shutil.copytree(Path(__file__).parent / "specs", folder)
    shutil.copy(specs / "profiles.toml", folder)
    assert reproduce(folder, tmp_path, table="all") == 0
    out = capsys.readouterr().out
    # rgb, flow, mars, d3d, mml, dense, diff + the ImageNet stand-in: shared runs are trained once.
    assert "8 runs needed: 0 already in" in out and "8 trained" in out
    tables = tmp_path / "tables" / "micro"
    rows = (tables / "table90.md").read_text()
    assert rows.count("| RGB") == 6 and "RGB + Flow ensemble" in rows
    verdict = r"- \*\*no verdict \(1 seed\)\*\*: MML beats CE \(top1: Δ [+−]\d+\.\d\d over 1 seed, [01]/1 seeds ahead\)"
    assert re.search(verdict, rows)
    assert "Resolvable here: nothing — 1 seed" in rows
    assert re.search(r"models behind this table (learned|did not learn)", rows)
    assert (tables / "table90_curves.png").stat().st_size > 1000
    matrix = (tables / "table91.md").read_text()
    assert re.search(r"\| Flow CE +\| \d+\.\d\d/\d+\.\d\d \(60\.00/85\.00\)", matrix)
    assert all((tables / f"table91_heatmap.{ext}").stat().st_size > 1000 for ext in ("png", "pdf"))
    assert not (tables / "table91_paper_heatmap.png").exists()  # the paper matrix has an empty cell
    triples = (tables / "table92.md").read_text()
    # 2 x 2 x 1 triples: the single Diff model is in all four, positions 0 + 1 + 2 + 3 = 6.
    assert re.search(r"\| Diff +\| CE +\| 8 +\| 1 +\| 6 +\| 1 +\|", triples)
    assert re.search(r"\| RGB +\| MML +\| 3 +\| 1 +\| [12345] +\| [12] +\|", triples)
    assert "RGB CE is a better partner than RGB MML" in (tables / "REPORT.md").read_text()
    # Each run is evaluated once per view protocol it needs: the dense run under both protocols.
    store = Store(tmp_path / "store")
    evaluated = sorted(p.name.partition("-val")[0] for p in store.root.glob("runs/*/eval/*"))
    assert evaluated.count("dense1-uniform2-offset0") == 1
    assert reproduce(folder, tmp_path, table="all") == 0
    assert "8 runs needed: 8 already in" in capsys.readouterr().out


@pytest.mark.slow
def test_charades_setup_end_to_end(specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Tab. 6: multi-label synthetic Charades, I3D, BCE, MARS / D3D / MML divided by the classes, mAP."""
    folder = tmp_path / "specs"
    folder.mkdir()
    shutil.copy(REPRODUCTIONS / "table06.toml", folder)
    shutil.copy(specs / "profiles.toml", folder)
    assert reproduce(folder, tmp_path, table="table6") == 0
    out = capsys.readouterr().out
    assert "9 runs needed" in out and "9 trained" in out  # 8 spec runs + the Kinetics stand-in
    text = (tmp_path / "tables" / "micro" / "table06.md").read_text()
    rows = [line for line in text.splitlines() if re.match(r"^\| (Ordinary|MARS|D3D|MML) ", line)]
    assert len(rows) == 7
    assert re.search(r"\| 33\.72 +\| \d+\.\d\d \(n=1\) +\| [+-]\d+\.\d\d +\| 15\.81 +\|", rows[0])
    assert text.count("**no verdict (1 seed)**: ") == 7
    evaluation = json.loads(next((tmp_path / "store" / "runs").glob("*/eval/dense2-*/metrics.json")).read_text())
    assert set(evaluation["models"][0]) == {"map"}


def test_cpu_trains_one_run_per_core_by_default() -> None:
    assert default_devices("cpu", 2) == ["cpu", "cpu"]
    assert default_devices("cpu", 64) == ["cpu"] * MAX_CPU_RUNS
    assert default_devices("cpu", 1) == []
    assert default_devices("cuda", 16) == []


ONE_RUN = """
id = "{id}"
title = "One run"
{setup}
columns = ["Model", "Score"]
rows = [["CE", {{ run = "rgb", model = 0, paper = [], views = {views} }}]]

[runs.rgb]
method = "ce"
models = [{{ modality = "RGB", init = "imagenet" }}]
"""


@pytest.mark.slow
def test_both_setups_and_the_evaluations_of_stored_runs_share_one_device_schedule(
    specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With several devices, the runs of the sthv2 and the Charades tables go to one schedule (so the Charades
    stand-in pretraining trains beside sthv2 runs instead of after them all), and so do the evaluations a table asks
    of runs already stored, each done by the job of its run."""
    folder = tmp_path / "specs"
    folder.mkdir()
    shutil.copy(specs / "profiles.toml", folder)
    uniform, dense = (
        "{ dense = 0, uniform = 1, uniform_offset = 0.5 }",
        "{ dense = 2, uniform = 0, uniform_offset = 0 }",
    )
    (folder / "table80.toml").write_text(ONE_RUN.format(id="table80", setup="", views=uniform))
    charades = 'setup = "charades"\nmetrics = ["map"]'
    (folder / "table81.toml").write_text(ONE_RUN.format(id="table81", setup=charades, views=dense))
    schedules = []

    def in_this_process(order, upstream, devices, work):  # run_on_devices, one job after another
        schedules.append((list(order), {rid: set(up) for rid, up in upstream.items()}))
        return {rid: work(rid, devices[0]) for rid in order}

    monkeypatch.setattr("mml.runner.run_on_devices", in_this_process)
    common = ["--specs", str(folder), "--store", str(tmp_path / "store"), "--out", str(tmp_path / "tables")]
    assert (
        main(
            ["reproduce", "table80", "table81", "--profile", "micro", *common, "--no-progress", "--devices", "cpu,cpu"]
        )
        == 0
    )
    ((order, upstream),) = schedules
    store = Store(tmp_path / "store")
    setups = {json.loads((store.run_dir(rid) / "run.json").read_text())["config"]["arch"] for rid in order}
    assert len(order) == 4 and setups == {"tsm_tiny", "i3d_tiny"}  # two stand-in pretrainings, two CE runs
    assert sum(not up for up in upstream.values()) == 2  # both pretrainings can start at once
    # Another table asks the stored sthv2 CE run for a dense view: its evaluation is the one job scheduled.
    (folder / "table82.toml").write_text(ONE_RUN.format(id="table82", setup="", views=dense))
    assert main(["reproduce", "table82", "--profile", "micro", *common, "--no-progress", "--devices", "cpu,cpu"]) == 0
    ((evaluated, none),) = schedules[1:]
    assert len(evaluated) == 1 and none == {evaluated[0]: set()}
    (key,) = (p.name for p in store.run_dir(evaluated[0]).glob("eval/dense2-uniform0-offset0-val*"))
    assert store.evaluation(evaluated[0], key) is not None


@pytest.mark.slow
def test_adamml_tables_end_to_end(specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """The shipped AdaMML specs on the long setup: GFLOPs per video, selection per modality, the relative claim."""
    folder = tmp_path / "specs"
    folder.mkdir()
    for name in ("adamml_table2", "adamml"):
        shutil.copy(REPRODUCTIONS / f"{name}.toml", folder)
    shutil.copy(specs / "profiles.toml", folder)
    assert reproduce(folder, tmp_path, table="adamml_table2 adamml") == 0
    out = capsys.readouterr().out
    # rgb, flow, diff, two fusions, the MML run, its fusion, two AdaMML runs + the ImageNet stand-in, on one dataset.
    assert "10 runs needed: 0 already in" in out and "10 trained" in out
    tables = tmp_path / "tables" / "micro"

    def ours(text: str, *labels: str) -> list[float]:
        """The measured values of the row whose leading cells are `labels`."""
        lead = r" +\| ".join(re.escape(label) for label in labels)
        found = re.search(rf"^\| {lead} +\|[^|]*\| ([-\d. /]+) \(n=1\)", text, re.M)
        assert found, (labels, text)
        return [float(value) for value in found.group(1).split(" / ")]

    supplementary = (tables / "adamml_table2.md").read_text()
    rgb, flow, fused = (ours(supplementary, label) for label in ("RGB", "Flow", "Weighted Fusion (RGB + Flow)"))
    # Each single model on the 10 test segments, the fusion both networks on the same 10 segments.
    assert fused[1] == pytest.approx(rgb[1] + flow[1], abs=2e-3) and rgb[1] < flow[1]
    assert "RGBDiff is a competitive stand-in for flow" in supplementary
    text = (tables / "adamml.md").read_text()
    fusion, adamml = (ours(text, method, "CE RGB + CE Flow") for method in ("Weighted fusion", "AdaMML"))
    assert fusion[1] == pytest.approx(fused[1], abs=2e-3)  # the same networks on the same segments
    assert fusion[2:] == [100.0, 100.0, 0.0, 0.0]  # both networks on every segment: informative or not alike
    assert all(0 <= share <= 100 for share in adamml[2:4]) and all(-100 <= gap <= 100 for gap in adamml[4:])
    assert "RGB, Flow informative − other (points)" in text
    assert re.search(r"saves at least 35 % .* \(video_gflops: Δ [+−]\d+\.\d\d % over 1 seed", text)
    assert "Flow used (%)" in text and "GFLOPs per video" in text
