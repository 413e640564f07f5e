"""Which code produced a result: the git commit of the checkout `mml` is imported from, and whether its code has
uncommitted changes. Generated files (tables, stores) are not code: a regeneration does not mark its own runs dirty."""

from __future__ import annotations

import subprocess
from pathlib import Path

import mml


def _git(folder: Path, *arguments: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(folder), *arguments], capture_output=True, text=True, check=False)
    except OSError:  # no git on this machine
        return None
    return done.stdout if done.returncode == 0 else None


def code_state(*folders: Path) -> tuple[str | None, bool | None]:
    """The commit of the checkout the package was imported from, and whether the package or any of `folders` inside
    that checkout (a folder of specs) has uncommitted changes; (None, None) when the package is not a tracked file of
    a git checkout (an installed copy) or git is missing."""
    package = Path(mml.__file__).resolve().parent
    if _git(package, "ls-files", "--error-unmatch", "__init__.py") is None:
        return None, None
    commit = _git(package, "rev-parse", "HEAD")
    if commit is None:
        return None, None
    top = Path((_git(package, "rev-parse", "--show-toplevel") or str(package)).strip())
    inside = [folder.resolve() for folder in folders if folder.resolve().is_relative_to(top)]
    status = _git(top, "status", "--porcelain", "--", *(str(folder) for folder in [package, *inside]))
    return commit.strip(), None if status is None else bool(status.strip())
