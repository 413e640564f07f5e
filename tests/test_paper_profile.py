"""The paper profile (TSM ResNet-50, 8 frames, 224 crop, ImageNet weights from a file) started on the CPU on a tiny
data set in the real Something-Something-v2 layout, scaled down only by command-line overrides."""

import json
import shutil
from pathlib import Path

import cv2
import pytest
import torch
import torchvision

from mml.cli import main
from mml.data.synthetic import SyntheticConfig, ensure_sthv2

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"
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
