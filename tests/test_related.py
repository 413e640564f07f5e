"""The related methods end to end on the micro profile: G-Blend's Tab. 4, SKD-SRL's Tab. II and the comparison
table, G-Blend's weights surviving a resume, and the refusal of torchrun for single-process methods."""

import dataclasses
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from test_reproduce import MICRO, reproduce

from mml import distributed
from mml.data.cache import prepare
from mml.data.datasets import open_dataset
from mml.errors import MMLError
from mml.execution import Execution
from mml.methods import gblend
from mml.plan import plan_tables
from mml.runner import init_loader
from mml.spec import RELATED_TABLES, load_profile, load_table
from mml.store import Store
from mml.train import train_run

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"
ONE_EPOCH = ("--set", "recipe.epochs=1")


@pytest.fixture(scope="module")
def specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("specs")
    for name in RELATED_TABLES:
        shutil.copy(REPRODUCTIONS / f"{name}.toml", folder)
    (folder / "profiles.toml").write_text(MICRO)
    return folder


def rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("| ") and "---" not in line][1:]


def test_related_specs_validate() -> None:
    tables = {name: load_table(REPRODUCTIONS / f"{name}.toml") for name in RELATED_TABLES}
    methods = {run.method for run in tables["gblend_table4"].runs.values()}
    assert methods == {"ce", "late_fusion", "gblend", "gblend_online"}
    assert {run.method for run in tables["skd_table2"].runs.values()} == {"ce", "ce_aug", "kd", "self_kd", "skd_srl"}
    assert tables["methods"].metrics == ("top1", "top5", "video_gflops")
    assert {run.method for run in tables["adamml"].runs.values()} == {"ce", "ml", "weighted_fusion", "adamml"}
    assert all(t.claims for t in tables.values())


@pytest.mark.slow
def test_gblend_table4_end_to_end(specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    # Two epochs with super-epochs of one: online G-Blend estimates twice, offline once over both epochs.
    extra = ("--set", "recipe.gblend.super_epoch=1", "--set", "recipe.gblend.warmup=1")
    assert reproduce(specs, tmp_path, *extra, table="gblend_table4") == 0
    out = capsys.readouterr().out
    assert "9 runs needed" in out  # 8 spec runs and the ImageNet stand-in
    text = (tmp_path / "tables" / "micro" / "gblend_table4.md").read_text()
    table = rows(text)
    assert len(table) == 10 and text.count("**no verdict (1 seed)**: ") == 7
    assert re.search(r"\| G-Blend \(offline\) +\| 73\.10 / 90\.80 +\| \d+\.\d\d / \d+\.\d\d \(n=1\) +\| [+-]", table[2])
    assert re.search(r"\| Naive late fusion +\| — +\| \d+\.\d\d / \d+\.\d\d \(n=1\) +\| — ", table[5])
    store = Store(tmp_path / "store")
    estimates = {}
    for run in store.root.glob("runs/*/run.json"):
        config = json.loads(run.read_text())["config"]
        metrics = json.loads((run.parent / "metrics.json").read_text())
        evaluation = json.loads(next(run.parent.glob("eval/*/metrics.json")).read_text())
        if config["method"] in ("late_fusion", "gblend", "gblend_online"):
            assert len(evaluation["models"]) == len(config["models"]) + 1  # the branches, then the fused head
            assert (run.parent / "fused.safetensors").is_file()
        if config["method"].startswith("gblend"):
            estimates[(config["method"], len(config["models"]))] = metrics["gblend"]
    assert [e["start"] for e in estimates[("gblend_online", 2)]] == [0, 1]
    assert [(e["start"], e["epochs"]) for e in estimates[("gblend", 3)]] == [(0, 2)]
    for runs in estimates.values():
        for estimate in runs:
            heads = list(estimate["weights"])
            assert heads[-1] == "fused" and len(estimate["losses"]) == len(heads)
            assert sum(estimate["weights"].values()) == pytest.approx(1.0)


@pytest.mark.slow
def test_skd_table2_end_to_end(specs: Path, tmp_path: Path) -> None:
    assert reproduce(specs, tmp_path, *ONE_EPOCH, table="skd_table2") == 0
    text = (tmp_path / "tables" / "micro" / "skd_table2.md").read_text()
    table = rows(text)
    assert len(table) == 5 and text.count("**no verdict (1 seed)**: ") == 4
    assert re.search(r"\| SKD-SRL +\| itself +\| 69\.80 +\| \d+\.\d\d \(n=1\) +\| [+-]\d+\.\d\d", table[4])
    runs = (tmp_path / "store").glob("runs/*/run.json")
    stored = {json.loads(path.read_text())["config"]["method"]: path.parent for path in runs}
    assert set(load_file(str(stored["skd_srl"] / "siamese.safetensors"))) >= {"projector.weight"}
    assert not (stored["self_kd"] / "siamese.safetensors").exists()


@pytest.mark.slow
def test_methods_table_with_measured_cost(specs: Path, tmp_path: Path) -> None:
    one_stage = ("--set", "recipe.adamml.alternations=0", "--set", "recipe.adamml.finetune=1")  # AdaMML in 1 epoch
    assert reproduce(specs, tmp_path, *ONE_EPOCH, *one_stage, table="methods") == 0
    table = rows((tmp_path / "tables" / "micro" / "methods.md").read_text())
    assert len(table) == 14
    cells = [row.split("|") for row in table]  # method, model, paper, ours = top-1 / top-5 / GFLOPs per video, Δ
    cost = {f"{cell[1].strip()} {cell[2].strip()}": float(cell[4].split("/")[2].split()[0]) for cell in cells}
    rgb = cost["CE RGB"]
    assert rgb > 0 and cost["SKD-SRL RGB"] == rgb and cost["G-Blend (offline) its RGB branch"] == rgb
    assert cost["KD (Hinton et al.) RGB, RGB teacher (SKD-SRL's setup)"] == rgb  # the teacher costs nothing at test
    assert cost["CE Flow (the teacher)"] > rgb  # a 10-channel first conv
    assert cost["G-Blend (offline) RGB + Flow, fused head"] > cost["CE Flow (the teacher)"] + rgb - 1e-4
    # AdaMML: its policy on each of its 10 test segments, the two networks on the segments it selects.
    adamml = cost["AdaMML CE RGB + CE Flow, per-segment policy"]
    assert 0 < adamml < 10 * (rgb + cost["CE Flow (the teacher)"]) + 10 * rgb


def _online_run(specs: Path, tmp_path: Path):
    # Three epochs in super-epochs [0, 2) and [2, 3): an interruption after epoch 1 falls inside the first one.
    settings = ["recipe.epochs=3", "recipe.gblend.super_epoch=1", "recipe.gblend.warmup=2"]
    profile = load_profile(specs / "profiles.toml", "micro", settings)
    dataset = open_dataset(profile.dataset, None, tmp_path / "data", progress=False)
    plan = plan_tables([load_table(specs / "gblend_table4.toml")], profile, dataset)
    target = plan.run_id("gblend_table4", "gblend_online_rf", 0)
    return profile, dataset, plan, target


@pytest.mark.slow
def test_gblend_resume_keeps_weights_and_super_epoch(
    specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile, dataset, plan, target = _online_run(specs, tmp_path)
    estimated_at = []
    original = gblend.estimate_histories

    def counted(*args, **kwargs):
        estimated_at.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(gblend, "estimate_histories", counted)
    stand_in = plan.runs[target].models[0].init_run[0]
    run = Execution(progress=False)
    results = {}
    for name, interrupt in (("straight", False), ("interrupted", True)):
        store = Store(tmp_path / name)
        cache = dataset.frame_source(store.cache_dir(), profile.recipe.short_side)
        prepare(cache, (*dataset.train, *dataset.validation), with_flow=True, workers=1, progress=False)
        loader = init_loader(store, None)
        train_run(plan.runs[stand_in], dataset.for_target("object"), cache, store, run, loader)
        if interrupt:
            train_run(plan.runs[target], dataset, cache, store, run, loader, stop_after_epoch=1)
            assert store.status(target) == "partial" and len(estimated_at) == 1
            estimated_at.clear()
        train_run(plan.runs[target], dataset, cache, store, run, loader)
        # Straight: both super-epochs estimated; resumed inside the first: its weights come from the checkpoint.
        assert len(estimated_at) == (1 if interrupt else 2)
        estimated_at.clear()
        metrics = json.loads((store.run_dir(target) / "metrics.json").read_text())
        weights = {name: load_file(str(store.run_dir(target) / f"{name}.safetensors")) for name in ("model0", "fused")}
        results[name] = (metrics, weights)
    straight, interrupted = results["straight"], results["interrupted"]
    assert straight[0] == interrupted[0] and [e["start"] for e in straight[0]["gblend"]] == [0, 2]
    for name, tensors in straight[1].items():
        assert all(torch.equal(tensors[k], interrupted[1][name][k]) for k in tensors), name
    assert np.isfinite(straight[0]["history"][-1]["loss"]).all()


def test_single_process_methods_refuse_torchrun(specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    profile, dataset, plan, target = _online_run(specs, tmp_path)
    monkeypatch.setattr(distributed, "active", lambda: True)
    with pytest.raises(MMLError, match=r"method gblend_online trains in one process only; run it without torchrun"):
        train_run(plan.runs[target], dataset, None, Store(tmp_path / "store"), Execution(progress=False), None)


def test_gflops_are_counted_not_written_down() -> None:
    from mml.report.cost import inference_gflops
    from mml.spec import Recipe, ViewProtocol
    from mml.store import ModelConfig, RunConfig

    recipe = Recipe(segments=2, short_side=48, input_size=32, batch_size=4, epochs=1, lr=0.01, lr_steps=(1,))
    models = (ModelConfig("RGB", "random"), ModelConfig("Flow", "random"))
    fusion = RunConfig("gblend", models, "tsm_tiny", recipe, "d" * 64, 5, 0)
    views = ViewProtocol()
    rgb, flow, fused = (inference_gflops(fusion, index, views) for index in range(3))
    assert 0 < rgb < flow  # Flow's first conv reads 10 channels per frame
    assert fused == pytest.approx(rgb + flow, rel=1e-3) and fused > rgb + flow  # plus the fused classifier
    longer = RunConfig("ce", models[:1], "tsm_tiny", dataclasses.replace(recipe, segments=4), "d" * 64, 5, 0)
    assert inference_gflops(longer, 0, views) == pytest.approx(2 * rgb)  # a 2D network: per frame
    assert inference_gflops(longer, 0, ViewProtocol(crop_size=64)) == pytest.approx(8 * rgb, rel=0.05)


def test_kd_and_two_view_steps_compute_their_losses() -> None:
    import torch.nn.functional as F

    from mml.distributed import Layout
    from mml.methods import METHODS, Training
    from mml.methods.distillation import KDSettings, soft_distillation
    from mml.methods.skd_srl import SKDSettings, simsiam_loss
    from mml.models.fusion import pooled_features
    from mml.networks import network
    from mml.spec import Recipe
    from mml.store import ModelConfig, RunConfig
    from mml.train import Outputs

    def training(config, auxiliary, teacher=None) -> Training:
        def unused(*args):
            raise AssertionError("a step trains no epoch and builds no clips")

        nets = [Outputs(student)]
        return Training(config, [student], nets, teacher, auxiliary, Layout(1), "cpu", {}, [], unused, 0, unused)

    recipe = Recipe(segments=2, short_side=32, input_size=32, batch_size=4, epochs=1, lr=0.01, lr_steps=(1,))
    rgb = ModelConfig("RGB", "random")
    kd = RunConfig("kd", (rgb,), "tsm_tiny", recipe, "d" * 64, 5, 0, teacher=ModelConfig("Flow", "run:0/0"))
    torch.manual_seed(0)
    student, teacher = network(kd, "RGB").eval(), network(kd, "Flow").eval()
    inputs = {"RGB": torch.randn(3, 6, 32, 32), "Flow": torch.randn(3, 20, 32, 32)}
    labels = torch.tensor([0, 1, 4])
    (loss,) = METHODS["kd"].step(training(kd, {}, teacher), inputs, labels)
    logits, soft = student(inputs["RGB"]), teacher(inputs["Flow"])
    kd_settings = recipe.settings(KDSettings)
    expected = F.cross_entropy(logits, labels) + kd_settings.alpha * soft_distillation(logits, soft, kd_settings.tau)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)

    views = [{"RGB": torch.randn(3, 6, 32, 32)}, {"RGB": torch.randn(3, 6, 32, 32)}]
    p1, p2 = (student(view["RGB"]) for view in views)
    ce_aug = dataclasses.replace(kd, method="ce_aug", teacher=None)
    (two,) = METHODS["ce_aug"].step(training(ce_aug, {}), views, labels)
    assert two.item() == pytest.approx((F.cross_entropy(p1, labels) + F.cross_entropy(p2, labels)).item(), rel=1e-5)
    skd = dataclasses.replace(ce_aug, method="skd_srl")
    head = METHODS["skd_srl"].auxiliary(skd, [student])["siamese"].eval()
    (with_similarity,) = METHODS["skd_srl"].step(training(skd, {"siamese": head}), views, labels)
    self_kd = dataclasses.replace(ce_aug, method="self_kd")
    (without,) = METHODS["self_kd"].step(training(self_kd, {}), views, labels)
    (z1, v1), (z2, v2) = (head(pooled_features(student, student.features(view["RGB"]))) for view in views)
    similarity = recipe.settings(SKDSettings).beta * simsiam_loss(z1, z2, v1, v2)
    assert (with_similarity - without).item() == pytest.approx(similarity.item(), rel=1e-4, abs=1e-6)
