"""Atomic writes: the old content or the new, never a partial file or a leftover temporary."""

from pathlib import Path

import numpy as np
import pytest

from mml.atomic import atomic_file, staging_folder, write_bytes, write_text


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
