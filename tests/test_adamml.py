"""AdaMML end to end on the micro profile: its stages, its stored decisions, an exact resume inside the
alternating stage, and the refusal of bad specs."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_reproduce import MICRO, reproduce

from mml.data.cache import prepare
from mml.data.datasets import open_dataset
from mml.errors import SpecError
from mml.evaluate import load_scores, save_scores
from mml.execution import Execution
from mml.methods.adamml import FINETUNE, MAIN, POLICY_PHASE, WARMUP, AdaMMLSettings, phase, temperature
from mml.plan import plan_tables
from mml.runner import init_loader
from mml.spec import Recipe, load_profile, load_table
from mml.store import Store
from mml.train import train_run

SPEC = """\
# A test table of AdaMML on the micro profile: unimodal runs, their weighted fusion and AdaMML over them.
id = "table95"
title = "AdaMML"
setup = "long"
metrics = ["top1", "top5", "informative_flow"]
columns = ["Model", "Top-1 / Top-5 / Flow informative - other"]
rows = [
  ["RGB CE", { run = "rgb", model = 0, paper = [], id = "rgb" }],
  ["Flow CE", { run = "flow", model = 0, paper = [], id = "flow" }],
  ["Weighted fusion", { run = "fusion", model = 2, paper = [], id = "fusion" }],
  ["AdaMML", { run = "adamml", model = 2, paper = [], id = "adamml" }],
]

[runs.rgb]
method = "ce"
models = [{ modality = "RGB", init = "imagenet" }]

[runs.flow]
method = "ce"
models = [{ modality = "Flow", init = "imagenet" }]

[runs.fusion]
method = "weighted_fusion"
models = [{ modality = "RGB", init = "run:rgb/0" }, { modality = "Flow", init = "run:flow/0" }]
recipe = { adamml.regions = 2, adamml.test_regions = 3 }

[runs.adamml]
method = "adamml"
models = [{ modality = "RGB", init = "run:rgb/0" }, { modality = "Flow", init = "run:flow/0" }]

[runs.adamml.recipe]
epochs = 6
adamml.regions = 2
adamml.test_regions = 3
adamml.warmup = 1
adamml.alternations = 2
adamml.finetune = 1
adamml.policy_frames = 1
adamml.policy_size = 16
"""


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("specs")
    (folder / "table95.toml").write_text(SPEC)
    (folder / "profiles.toml").write_text(MICRO)
    return folder


def test_stages_and_temperature_follow_the_epoch() -> None:
    recipe = Recipe(
        segments=2, short_side=32, input_size=28, batch_size=4, epochs=8, lr=0.01, lr_steps=(9,),
        method_settings=(
            AdaMMLSettings(warmup=2, alternations=2, finetune=2, temperature=5.0, temperature_decay=0.5),
        ),
    )  # fmt: skip
    stages = [phase(recipe, epoch)[0] for epoch in range(8)]
    assert stages == [WARMUP, WARMUP, MAIN, POLICY_PHASE, MAIN, POLICY_PHASE, FINETUNE, FINETUNE]
    assert [temperature(recipe, epoch) for epoch in range(8)] == [5, 5, 5, 5, 2.5, 2.5, 1.25, 1.25]


@pytest.mark.slow
def test_adamml_table_end_to_end_stores_decisions(specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert reproduce(specs, tmp_path, table="table95") == 0
    text = (tmp_path / "tables" / "micro" / "table95.md").read_text()
    assert "| AdaMML " in text and "| Weighted fusion " in text
    runs = {p.parent.name: p.parent for p in (tmp_path / "store" / "runs").glob("*/run.json")}
    adamml = [d for d in runs.values() if '"adamml"' in (d / "run.json").read_text()]
    assert len(adamml) == 1
    assert set(load_file(str(adamml[0] / "fusion.safetensors"))) == {"free"}  # M - 1 free fusion weights
    assert "heads.1.weight" in load_file(str(adamml[0] / "policy.safetensors"))
    scores = next((adamml[0] / "eval").glob("*/scores2.npz"))
    with np.load(scores) as stored:
        decisions, informative = stored["decisions"], stored["informative"]
    ids, labels, logits = load_scores(scores)
    assert decisions.shape == (len(ids), 3, 2) and decisions.dtype == bool  # 3 test segments, 2 modalities
    assert logits.shape == (len(ids), 3)
    # The micro long videos are 3 regions of 6 frames. The 3 dense test segments (2 frames 2 apart) start at frames
    # 0, 5 and 10, so their middles (frames 1.5, 6.5 and 11.5) lie in regions 0, 1 and 1: whether each segment is
    # informative follows the video's entry in regions.json.
    regions = json.loads(next((tmp_path / "store" / "data").glob("*/regions.json")).read_text())
    for flags, video_id in zip(informative, ids, strict=True):
        assert flags.tolist() == [0 in regions[video_id], 1 in regions[video_id], 1 in regions[video_id]]
    assert "Flow informative" in text
    # An evaluation stored before the flags existed is evaluated again, with them, and nothing is trained.
    save_scores(scores, list(ids), labels, logits, decisions=decisions)
    assert reproduce(specs, tmp_path, table="table95") == 0
    assert "5 runs needed: 5 already in" in capsys.readouterr().out
    with np.load(scores) as stored:
        assert np.array_equal(stored["informative"], informative) and np.array_equal(stored["decisions"], decisions)
    # The policy's training choices, one record per epoch: every epoch sees the same segments, each used on at most
    # all of them, and the record follows the stages.
    selection = json.loads((adamml[0] / "metrics.json").read_text())["adamml_selection"]
    assert [r["epoch"] for r in selection] == [1, 2, 3, 4, 5, 6]
    assert [r["stage"] for r in selection] == [WARMUP, MAIN, POLICY_PHASE, MAIN, POLICY_PHASE, FINETUNE]
    assert len({r["segments"] for r in selection}) == 1 and selection[0]["segments"] % 2 == 0  # 2 regions a video
    assert all(len(r["used"]) == 2 and 0 <= min(r["used"]) <= max(r["used"]) <= r["segments"] for r in selection)


def _adamml_run(specs: Path, tmp_path: Path):
    profile = load_profile(specs / "profiles.toml", "micro").setup("long")
    dataset = open_dataset(profile.dataset, None, tmp_path / "data", progress=False)
    plan = plan_tables([load_table(specs / "table95.toml")], profile, dataset)
    store, run = Store(tmp_path / "store"), Execution(progress=False)
    cache = dataset.frame_source(store.cache_dir(), profile.recipe.short_side)
    prepare(cache, (*dataset.train, *dataset.validation), with_flow=True, workers=1, progress=False)
    loader = init_loader(store, None)
    target = plan.run_id("table95", "adamml", 0)
    for rid in plan.order():
        if rid != target:
            train_run(plan.runs[rid], dataset.for_target(plan.runs[rid].target), cache, store, run, loader)
    return plan.runs[target], dataset, cache, store, run, loader


@pytest.mark.slow
def test_resume_inside_the_alternating_stage_equals_no_interruption(specs: Path, tmp_path: Path) -> None:
    config, dataset, cache, store, run, loader = _adamml_run(specs, tmp_path / "a")
    whole = train_run(config, dataset, cache, store, run, loader)
    config, dataset, cache, store, run, loader = _adamml_run(specs, tmp_path / "b")
    # Stop after the warm-up and the first pair: the resumed run trains the policy again, from Adam's stored state.
    assert train_run(config, dataset, cache, store, run, loader, stop_after_epoch=3).name == config.run_id
    resumed = train_run(config, dataset, cache, store, run, loader)
    for name in ("model0", "model1", "policy", "fusion"):
        first, second = load_file(str(whole / f"{name}.safetensors")), load_file(str(resumed / f"{name}.safetensors"))
        assert first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first), name
    records = [json.loads((d / "metrics.json").read_text())["adamml_selection"] for d in (whole, resumed)]
    assert records[0] == records[1] and len(records[0]) == 6


def _spec_with(tmp_path: Path, old: str, new: str) -> Path:
    path = tmp_path / "table95.toml"
    assert old in SPEC
    path.write_text(SPEC.replace(old, new))
    return path


def test_a_policy_run_without_its_recognition_runs_is_refused(tmp_path: Path) -> None:
    path = _spec_with(
        tmp_path,
        'method = "adamml"\nmodels = [{ modality = "RGB", init = "run:rgb/0" }',
        'method = "adamml"\nmodels = [{ modality = "RGB", init = "imagenet" }',
    )
    with pytest.raises(SpecError, match=r"table95.toml: runs\.adamml\.models\[0\]\.init: method adamml starts from"):
        load_table(path)


def test_a_modality_the_policy_cannot_tell_apart_is_refused(tmp_path: Path) -> None:
    path = _spec_with(
        tmp_path,
        '{ modality = "Flow", init = "run:flow/0" }]\n\n[runs.adamml.recipe]',
        '{ modality = "RGB", init = "run:rgb/0" }]\n\n[runs.adamml.recipe]',
    )
    with pytest.raises(SpecError, match=r"runs\.adamml\.models: method adamml selects among two or more distinct"):
        load_table(path)


def test_an_adamml_run_trains_its_stages_whatever_the_recipe_epochs(specs: Path, tmp_path: Path) -> None:
    profile = load_profile(specs / "profiles.toml", "micro")
    dataset = open_dataset(profile.dataset, None, tmp_path / "data", progress=False)
    # Without `epochs` in the spec: the stages' 1 + 2 x 3 + 1 epochs, the recipe's lr steps stretched to them.
    path = _spec_with(tmp_path, "epochs = 6\nadamml.regions = 2\n", "adamml.alternations = 3\nadamml.regions = 2\n")
    path.write_text(path.read_text().replace("adamml.alternations = 2\n", ""))
    plan = plan_tables([load_table(path)], profile, dataset)
    recipe = plan.runs[plan.run_id("table95", "adamml", 0)].recipe
    fusion = plan.runs[plan.run_id("table95", "fusion", 0)].recipe
    assert (recipe.epochs, fusion.epochs) == (8, profile.recipe.epochs)
    assert recipe.lr_steps == tuple(round(s * 8 / profile.recipe.epochs) for s in profile.recipe.lr_steps)
    # An `epochs` that contradicts the stages is refused, naming the key.
    path = _spec_with(tmp_path, "epochs = 6\n", "epochs = 5\n")
    with pytest.raises(SpecError, match=r"runs\.adamml\.recipe: epochs: method adamml trains 6 epochs \(its stages\)"):
        plan_tables([load_table(path)], profile, dataset)
