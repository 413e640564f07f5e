"""Runs loaded from weight files instead of trained: named in a spec or with `--checkpoint` on the command line, in
the original TSM / MML code's layout, then evaluated, ensembled and used as inits like trained runs."""

import shutil
from pathlib import Path

import pytest
import torch
from layouts import save_original
from safetensors.torch import load_file
from test_reproduce import MICRO, reproduce

from mml.models.tsm import build_tsm
from mml.spec import load_table
from mml.store import Store

SPEC = """
id = "table93"
title = "Runs loaded from checkpoints"
columns = ["Model", "Top-1 / Top-5"]
rows = [
  ["released RGB", { run = "released", model = 0, paper = [50.0, 80.0] }],
  ["Flow from released RGB", { run = "flow", model = 0, paper = [45.0, 75.0] }],
]

[runs.released]
method = "ce"
models = [{ modality = "RGB" }]
checkpoints = ["released_rgb.pth.tar"]

[runs.flow]
method = "ce"
models = [{ modality = "Flow", init = "run:released/0" }]
"""


@pytest.fixture
def specs(tmp_path: Path) -> Path:
    folder = tmp_path / "specs"
    folder.mkdir()
    (folder / "profiles.toml").write_text(MICRO)
    (folder / "table93.toml").write_text(SPEC)
    torch.manual_seed(5)
    released = build_tsm("tsm_tiny", in_channels=3, num_classes=3, segments=2)  # micro: 3 classes, 2 segments
    save_original(released, folder / "released_rgb.pth.tar")
    torch.save(released.state_dict(), folder / "ours_layout.pth")
    return folder


@pytest.mark.slow
def test_a_spec_run_loaded_from_an_original_code_checkpoint(specs: Path, tmp_path: Path, capsys) -> None:
    assert reproduce(specs, tmp_path, table="table93") == 0
    out = capsys.readouterr().out
    assert "2 runs needed" in out and "2 trained" in out and "loading" in out  # the file loaded, Flow trained
    store = Store(tmp_path / "store")
    loaded = [p for p in store.root.glob("runs/*/run.json") if "checkpoint:sha256:" in p.read_text()]
    assert len(loaded) == 1
    weights = load_file(str(loaded[0].parent / "model0.safetensors"))
    assert torch.equal(weights["layer1.0.conv1.weight"], torch.load(specs / "ours_layout.pth")["layer1.0.conv1.weight"])
    assert (loaded[0].parent / "eval").is_dir()
    assert "| Flow from released RGB" in (tmp_path / "tables" / "micro" / "table93.md").read_text()


@pytest.mark.slow
def test_command_line_checkpoint_replaces_training(specs: Path, tmp_path: Path, capsys) -> None:
    """The Flow run loaded from an RGB file (its first conv averaged to 10 channels) instead of trained."""
    file = specs / "ours_layout.pth"
    assert reproduce(specs, tmp_path, "--checkpoint", f"table93:flow={file}", table="table93") == 0
    out = capsys.readouterr().out
    assert out.count("] loading ") == 2 and "] training " not in out
    assert reproduce(specs, tmp_path, "--checkpoint", f"nosuchrun={file}", table="table93") == 2
    assert "no chosen table has a run 'nosuchrun'" in capsys.readouterr().err


def test_a_checkpoint_of_the_wrong_shape_is_refused_in_one_line(specs: Path, tmp_path: Path, capsys) -> None:
    wrong = build_tsm("tsm_tiny", in_channels=3, num_classes=174, segments=2)
    save_original(wrong, specs / "released_rgb.pth.tar")
    assert reproduce(specs, tmp_path, table="table93") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"mml: error: {specs / 'released_rgb.pth.tar'}: does not fit the TSMResNet model")
    assert "fc.weight (174, " in error and "\n" not in error


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ('checkpoints = ["released_rgb.pth.tar"]', 'checkpoints = ["a.pth", "b.pth"]'),
        ('models = [{ modality = "RGB" }]', 'models = [{ modality = "RGB", init = "imagenet" }]'),
    ],
)
def test_spec_checkpoint_errors(specs: Path, change: str, message: str) -> None:
    path = specs / "table93.toml"
    path.write_text(SPEC.replace(change, message, 1))
    with pytest.raises(Exception, match=r"table93.toml: runs\.released\.(checkpoints|models\[0\]\.init)"):
        load_table(path)


def test_missing_checkpoint_file(specs: Path, tmp_path: Path, capsys) -> None:
    shutil.move(specs / "released_rgb.pth.tar", tmp_path / "elsewhere.pth")
    assert reproduce(specs, tmp_path, table="table93") == 2
    assert capsys.readouterr().err.strip() == f"mml: error: {specs / 'released_rgb.pth.tar'}: weight file not found"


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("garbage.safetensors", "cannot read weights: SafetensorError"),
        ("garbage.pth", "refused: the weights-only unpickler rejects it"),
        ("wrong_shape.pth", "does not fit the TSMResNet model: shape mismatch fc.weight (174, 512) vs model (3, 512)"),
    ],
)
def test_a_command_line_checkpoint_that_import_would_refuse_is_refused_when_planning(
    specs: Path, tmp_path: Path, capsys, kind: str, reason: str
) -> None:
    file = tmp_path / kind
    if kind.startswith("garbage"):
        file.write_bytes(b"not a weight file")
    else:
        torch.save(build_tsm("tsm_tiny", in_channels=3, num_classes=174, segments=2).state_dict(), file)
    assert reproduce(specs, tmp_path, "--checkpoint", f"table93:flow={file}", "--dry-run", table="table93") == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith(f"mml: error: {file}: {reason}"), error
    assert "\n" not in error


def test_a_command_line_checkpoint_that_fits_is_planned(specs: Path, tmp_path: Path, capsys) -> None:
    """The RGB file fits the Flow run (its first conv is averaged to 10 channels, as import_run does)."""
    file = specs / "ours_layout.pth"
    assert reproduce(specs, tmp_path, "--checkpoint", f"table93:flow={file}", "--dry-run", table="table93") == 0
    listed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("missing ")]
    assert len(listed) == 2 and "Flow from checkpoint:sha256:" in listed[1]
