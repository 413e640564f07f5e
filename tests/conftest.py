"""Fixtures shared by the runner tests: Table 7's spec on the micro profile, and the table one uninterrupted
runner writes from it (what killed, concurrent, scheduled and distributed runners must reproduce)."""

import shutil
import subprocess
from pathlib import Path

import pytest
from runner_cli import TESTS, environment, reproduce_command
from test_reproduce import MICRO


@pytest.fixture(scope="session")
def table7_specs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("table7-specs")
    shutil.copy(TESTS.parent / "reproductions" / "table07.toml", folder)
    (folder / "profiles.toml").write_text(MICRO)
    return folder


@pytest.fixture(scope="session")
def uninterrupted(table7_specs: Path, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Table 7 on the micro profile from one uninterrupted runner."""
    root = tmp_path_factory.mktemp("uninterrupted")
    subprocess.run(reproduce_command(table7_specs, root), env=environment(), check=True, stdout=subprocess.DEVNULL)
    return (root / "tables" / "micro" / "table07.md").read_text()
