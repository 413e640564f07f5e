"""A non-editable install carries the specs and the licence, and states the package's one version; the package
states torch ranges (a cluster's CUDA build stays) that our sessions' pins (constraints.txt) satisfy."""

import email
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import mml
from mml.cli import default_specs

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("pyproject.toml", "setup.py", "README.md", "LICENSE", "mml", "reproductions")


def test_the_wheel_holds_every_spec_the_licence_and_the_version(tmp_path: Path) -> None:
    project = tmp_path / "project"
    for name in SOURCES:  # a copy, so the build leaves nothing in the checkout
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            project.mkdir(exist_ok=True)
            shutil.copy(source, project / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q"]
    subprocess.run([*command, "-w", str(tmp_path / "wheel"), str(project)], check=True, capture_output=True)
    (wheel,) = (tmp_path / "wheel").glob("mml-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = email.message_from_bytes(archive.read(f"mml-{mml.__version__}.dist-info/METADATA"))
    specs = {f"mml/reproductions/{path.name}" for path in (ROOT / "reproductions").glob("*.toml")}
    assert "mml/reproductions/profiles.toml" in specs and specs <= names
    assert {"mml/cli.py", "mml/data/cache.py", f"mml-{mml.__version__}.dist-info/licenses/LICENSE"} <= names
    assert metadata["Version"] == mml.__version__ and metadata["License-Expression"] == "MIT"


def test_specs_default_to_the_checkout_else_to_the_installed_copy(tmp_path: Path) -> None:
    assert default_specs() == ROOT / "reproductions"
    installed = tmp_path / "site-packages" / "mml"
    (installed / "reproductions").mkdir(parents=True)
    assert default_specs(installed) == installed / "reproductions"


def test_torch_is_a_range_that_the_pinned_constraints_satisfy() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    lines = (ROOT / "constraints.txt").read_text().splitlines()
    pins = dict(line.split("==") for line in lines if line and not line.startswith("#"))
    assert set(pins) == {"torch", "torchvision"}
    for name, pinned in pins.items():
        (floor,) = [match[1] for entry in dependencies if (match := re.fullmatch(rf"{name}>=([\d.]+)", entry))]
        assert tuple(map(int, pinned.split("."))) >= tuple(map(int, floor.split("."))), name
