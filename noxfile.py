"""Sessions: `nox -s tests` (the test suite, less the `slurm` tests), `nox -s slurm` (the tests against a real
one-node SLURM cluster: installs SLURM's Debian packages when missing, needs root), `nox -s reproduce -- table7`
(regenerate paper tables), `nox -s prepare -- sthv2 --data DIR` (decode a real dataset and extract its flow
beforehand), `nox -s benchmark` (time the CPU-side pieces), `nox -s lint` (ruff), `nox -s typecheck` (mypy).

Every session that installs the package pins torch and torchvision with `constraints.txt`: pyproject.toml states
only ranges, so a user's `pip install` keeps their own CUDA build of torch."""

import shutil
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]

CONSTRAINTS = ("-c", "constraints.txt")
SLURM_PACKAGES = ("slurmctld", "slurmd", "slurm-client", "munge")


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite on the CPU; the `slurm` tests run in `nox -s slurm` (posargs replace `-m "not slurm"`)."""
    session.install("-e", ".[test]", *CONSTRAINTS)
    session.run("pytest", *(session.posargs or ["-m", "not slurm"]))


@nox.session(default=False)
def slurm(session: nox.Session) -> None:
    """Run the tests marked `slurm` against a one-node SLURM cluster that they start and stop themselves.

    Needs root: installs SLURM's Debian packages when `slurmctld` is missing, then starts munged (when none runs),
    slurmctld and slurmd. The tests run in the `tests` session's environment, built here if missing (as for
    `typecheck`: CI installs torch's 6 GB CUDA build once)."""
    if shutil.which("slurmctld") is None:
        apt = {"DEBIAN_FRONTEND": "noninteractive"}
        session.run("apt-get", "update", env=apt, external=True)
        session.run("apt-get", "install", "-y", *SLURM_PACKAGES, env=apt, external=True)
    envdir = Path(session.virtualenv.location).parent
    session.run(sys.executable, "-m", "nox", "--envdir", str(envdir), "-s", "tests", "--install-only", external=True)
    python = envdir / "tests" / "bin" / "python"
    session.run(str(python), "-m", "pytest", "-m", "slurm", *session.posargs, external=True)


@nox.session(default=False)
def reproduce(session: nox.Session) -> None:
    """Regenerate paper tables: `nox -s reproduce -- table7 [--profile smoke] [--store DIR] [--data DIR]`."""
    session.install("-e", ".", *CONSTRAINTS)
    session.run("python", "-m", "mml", "reproduce", *session.posargs)


@nox.session(default=False)
def prepare(session: nox.Session) -> None:
    """Fill the frame / flow cache of a real dataset: `nox -s prepare -- sthv2 --data DIR [--workers N]`."""
    session.install("-e", ".", *CONSTRAINTS)
    session.run("python", "-m", "mml", "prepare", *session.posargs)


@nox.session(default=False)
def benchmark(session: nox.Session) -> None:
    """Time the CPU-side pieces (sampling, cache reads, modality inputs, losses, TV-L1): `nox -s benchmark`."""
    session.install("-e", ".[test]", *CONSTRAINTS)
    session.run(
        "pytest", "benchmark", "--benchmark-enable", "--benchmark-columns=min,mean,stddev,rounds", *session.posargs
    )


@nox.session(default=False)
def lint(session: nox.Session) -> None:
    """Check style with ruff (pinned: a new ruff's rules would fail unchanged code)."""
    session.install("ruff==0.17.6")
    session.run("ruff", "check", "mml", "tests", "benchmark", "noxfile.py", "setup.py")


@nox.session(default=False)
def typecheck(session: nox.Session) -> None:
    """Check the types of `mml/` with mypy (pinned; settings in pyproject.toml's [tool.mypy]).

    mypy reads the installed packages of the `tests` session's environment, which this session builds if it is
    missing: torch's build here is a CUDA one of about 6 GB, and CI then installs it once, not twice."""
    session.install("mypy==2.4.1")
    envdir = Path(session.virtualenv.location).parent
    session.run(sys.executable, "-m", "nox", "--envdir", str(envdir), "-s", "tests", "--install-only", external=True)
    session.run("mypy", "--python-executable", str(envdir / "tests" / "bin" / "python"), *session.posargs)
