"""Write files and folders so that a reader (or a rerun after a crash) sees either the old state or the new one,
never a partial one: everything is written under a unique temporary name in the same folder, then renamed into place.

The one place for this in the package: the run store, the frame / flow cache, encoded videos, synthetic datasets
and evaluations all write through it. It imports nothing from `mml`, so every layer can use it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path


def temporary_sibling(path: Path) -> Path:
    """A unique hidden name beside `path` (pid and a random part), keeping its suffix so writers that choose a
    format from the suffix (numpy, video encoders) still do; same folder, so the final rename is atomic."""
    return path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:12]}.partial{path.suffix}")


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path to write; on leaving the block without an exception it replaces `path`, else it is
    removed. The parent folder is created."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path)
    try:
        yield temporary
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` atomically, flushed to disk before the rename (a crash cannot leave an empty file)."""
    with atomic_file(path) as temporary, open(temporary, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def write_text(path: Path, text: str) -> None:
    """Write UTF-8 `text` to `path` atomically."""
    write_bytes(path, text.encode())


@contextlib.contextmanager
def staging_folder(final: Path, *, replace: bool) -> Iterator[Path]:
    """Yield an empty temporary folder beside `final`; on leaving the block without an exception it becomes
    `final` with one rename, and on an exception (an interruption included) it is deleted.

    With `replace`, an existing `final` is replaced (a rerun supersedes it). Without it, an existing `final` wins:
    another process finished the same work first, and the staged copy is dropped.
    """
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary_sibling(final)
    staging.mkdir()
    try:
        yield staging
        if replace and final.exists():
            shutil.rmtree(final)
        try:
            os.replace(staging, final)
        except OSError:
            if replace or not final.is_dir():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
