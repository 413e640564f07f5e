"""Sessions: `nox -s tests` (the test suite), `nox -s reproduce -- table7` (regenerate paper tables),
`nox -s prepare -- sthv2 --data DIR` (decode a real dataset and extract its flow beforehand), `nox -s benchmark`
(time the CPU-side pieces), `nox -s lint` (ruff), `nox -s typecheck` (mypy)."""

import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "venv"
nox.options.reuse_existing_virtualenvs = True
nox.options.sessions = ["tests"]


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite on the CPU."""
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session(default=False)
def reproduce(session: nox.Session) -> None:
    """Regenerate paper tables: `nox -s reproduce -- table7 [--profile smoke] [--store DIR] [--data DIR]`."""
    session.install("-e", ".")
    session.run("python", "-m", "mml", "reproduce", *session.posargs)


@nox.session(default=False)
def prepare(session: nox.Session) -> None:
    """Fill the frame / flow cache of a real dataset: `nox -s prepare -- sthv2 --data DIR [--workers N]`."""
    session.install("-e", ".")
    session.run("python", "-m", "mml", "prepare", *session.posargs)


@nox.session(default=False)
def benchmark(session: nox.Session) -> None:
    """Time the CPU-side pieces (sampling, cache reads, modality inputs, losses, TV-L1): `nox -s benchmark`."""
    session.install("-e", ".[test]")
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
