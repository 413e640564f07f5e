"""Which code produced a result: the commit, and uncommitted changes to code only (not to generated files)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

import mml
from mml.checkpoint import provenance
from mml.gitstate import code_state


def _git(folder: Path, *arguments: str) -> None:
    subprocess.run(["git", "-C", str(folder), *arguments], check=True, capture_output=True)


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git checkout holding a package and a folder of specs, with `mml` pretending to be imported from it."""
    for file in ("mml/__init__.py", "specs/table.toml"):
        (tmp_path / file).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / file).write_text("x = 1\n")
    _git(tmp_path, "init", "-q")
    _git(tmp_path, "add", ".")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "first")
    monkeypatch.setattr(mml, "__file__", str(tmp_path / "mml" / "__init__.py"))
    return tmp_path


def test_generated_files_do_not_make_the_code_dirty(checkout: Path) -> None:
    (checkout / "tables").mkdir()
    (checkout / "tables" / "table7.md").write_text("a table\n")
    commit, dirty = code_state(checkout / "specs")
    assert re.fullmatch(r"[0-9a-f]{40}", commit or "") and dirty is False
    assert provenance()["git_commit"] == commit


def test_a_changed_package_or_spec_folder_is_dirty(checkout: Path) -> None:
    (checkout / "specs" / "table.toml").write_text("x = 2\n")
    assert code_state()[1] is False  # the specs folder counts only when named
    assert code_state(checkout / "specs")[1] is True
    (checkout / "mml" / "__init__.py").write_text("x = 2\n")
    assert code_state()[1] is True
    assert provenance()["git_commit"].endswith("-dirty")


def test_outside_git_the_commit_is_unknown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git here
    assert code_state() == (None, None)
    assert provenance()["git_commit"] == "unknown"


def test_an_installed_copy_has_no_commit(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    (tmp_path / "mml").mkdir()
    monkeypatch.setattr(mml, "__file__", str(tmp_path / "mml" / "__init__.py"))
    assert code_state() == (None, None)
