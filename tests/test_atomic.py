"""Atomic writes: the old content or the new, never a partial file or a leftover temporary; the leftovers of killed
processes are swept."""

import hashlib
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from mml.atomic import (
    atomic_file,
    host_tag,
    orphaned,
    remove_orphans,
    replace_folder,
    staging_folder,
    temporary_sibling,
    write_bytes,
    write_text,
)


def test_write_replaces_content_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "deep" / "metrics.json"
    write_text(target, "old")
    write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert sorted(p.name for p in target.parent.iterdir()) == ["metrics.json"]


def test_interrupted_file_write_keeps_the_old_content(tmp_path: Path) -> None:
    target = tmp_path / "scores.npy"
    write_text(target, "old")
    with pytest.raises(KeyboardInterrupt), atomic_file(target) as temporary:
        temporary.write_text("half")
        raise KeyboardInterrupt
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["scores.npy"]


def test_temporary_keeps_the_suffix_for_format_choosing_writers(tmp_path: Path) -> None:
    target = tmp_path / "flow.npy"
    with atomic_file(target) as temporary:
        assert temporary.suffix == ".npy" and temporary.parent == tmp_path
        np.save(temporary, np.arange(3))
    assert np.load(target).tolist() == [0, 1, 2]


def test_staging_folder_moves_in_whole_or_not_at_all(tmp_path: Path) -> None:
    final = tmp_path / "run"
    with pytest.raises(RuntimeError), staging_folder(final, replace=True) as staging:
        (staging / "a").write_text("1")
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []
    with staging_folder(final, replace=True) as staging:
        (staging / "a").write_text("1")
    assert [p.name for p in final.iterdir()] == ["a"]


def test_staging_folder_replace_or_keep_an_existing_folder(tmp_path: Path) -> None:
    final = tmp_path / "video"
    with staging_folder(final, replace=True) as staging:
        (staging / "first").write_text("")
    with staging_folder(final, replace=False) as staging:  # another process finished first: its folder stays
        (staging / "second").write_text("")
    assert [p.name for p in final.iterdir()] == ["first"]
    with staging_folder(final, replace=True) as staging:
        (staging / "third").write_text("")
    assert [p.name for p in final.iterdir()] == ["third"]
    assert [p.name for p in tmp_path.iterdir()] == ["video"]


def _dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def test_temporary_names_carry_pid_and_host(tmp_path: Path) -> None:
    name = temporary_sibling(tmp_path / "scores0.npz").name
    assert name.startswith(f".scores0.{os.getpid()}.{host_tag()}") and name.endswith(".partial.npz")
    assert not orphaned(tmp_path / name)  # this process runs


def test_orphans_of_dead_processes_of_this_host_are_removed_and_others_kept(tmp_path: Path) -> None:
    other_host = hashlib.sha256(f"not-{socket.gethostname()}".encode()).hexdigest()[:12]
    dead, random_part = _dead_pid(), "0" * 12
    folder = tmp_path / "runs" / "0123456789abcdef" / "eval"
    folder.mkdir(parents=True)
    paths = {
        "dead": folder / f".metrics.{dead}.{host_tag()}{random_part}.partial.json",
        "dead_staging": folder / f".views.{dead}.{host_tag()}{random_part}.partial",
        "live": folder / f".metrics.{os.getpid()}.{host_tag()}{random_part}.partial.json",
        "other_host": folder / f".metrics.{dead}.{other_host}{random_part}.partial.json",  # its pid means nothing here
        "no_host": folder / f".metrics.{dead}.{random_part}.partial.json",  # named by an older mml: host unknown
        "too_deep": tmp_path / "a" / "b" / "c" / "d" / f".x.{dead}.{host_tag()}{random_part}.partial",
        "finished": folder / "metrics.json",
    }
    for name, path in paths.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        if name.endswith("staging"):
            path.mkdir()
            (path / "scores0.npz").write_bytes(b"half")
        else:
            path.write_text("{}")
    removed = remove_orphans(tmp_path, depth=4)
    assert sorted(removed) == sorted([paths["dead"], paths["dead_staging"]])
    assert {name for name, path in paths.items() if path.exists()} == {
        "live",
        "other_host",
        "no_host",
        "too_deep",
        "finished",
    }
    assert remove_orphans(tmp_path / "missing", depth=4) == []


def test_a_replaced_folder_stays_whole_until_the_new_one_is_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    final, new = tmp_path / "run", tmp_path / "new"
    for folder, content in ((final, "old"), (new, "new")):
        folder.mkdir()
        (folder / "model0.safetensors").write_text(content)
        (folder / "DONE").write_text("")

    def crash(source: Path, target: Path) -> None:
        raise KeyboardInterrupt  # killed between moving the old folder aside and moving the new one in

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        replace_folder(new, final)
    monkeypatch.undo()
    (aside,) = [path for path in tmp_path.iterdir() if path.name.startswith(".run.")]
    assert (aside / "model0.safetensors").read_text() == "old" and (aside / "DONE").is_file()
    assert (new / "model0.safetensors").read_text() == "new" and not final.exists()
    shutil.rmtree(aside)
    replace_folder(new, final)
    assert (final / "model0.safetensors").read_text() == "new" and (final / "DONE").is_file()
    replace_folder(final, tmp_path / "moved")  # no older folder to replace
    assert [p.name for p in tmp_path.iterdir()] == ["moved"]
