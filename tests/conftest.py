"""Fixtures shared by the runner tests: Table 7's spec on the micro profile, and the table one uninterrupted
runner writes from it (what killed, concurrent, scheduled and distributed runners must reproduce); and a real
one-node SLURM cluster for the tests marked `slurm`."""

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from runner_cli import TESTS, environment, reproduce_command
from slurm_cluster import running_cluster
from test_reproduce import MICRO

SLURM_PROGRAMS = ("munged", "munge", "slurmctld", "slurmd", "sbatch", "scontrol", "squeue", "sinfo", "scancel")


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


@pytest.fixture(scope="session")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The environment (SLURM_CONF set) of a one-node SLURM cluster on localhost, started once for the tests marked
    `slurm` and stopped after them; skipped where SLURM is not installed or we are not root (munged and slurmd)."""
    if os.geteuid() != 0:
        pytest.skip("starting munged and slurmd needs root")
    missing = [program for program in SLURM_PROGRAMS if shutil.which(program) is None]
    if missing:
        pytest.skip(f"SLURM is not installed (no {', '.join(missing)}): `nox -s slurm` installs it")
    with running_cluster(tmp_path_factory.mktemp("slurm")) as cluster_environment:
        yield cluster_environment
