"""Write files and folders so that a reader (or a rerun after a crash) sees either the old state or the new one,
never a partial one: everything is written under a unique temporary name in the same folder, then renamed into place.

The one place for this in the package: the run store, the frame / flow cache, encoded videos, synthetic datasets
and evaluations all write through it. It imports nothing from `mml`, so every layer can use it.

A temporary name carries the pid and the host of the process that writes it, so that `remove_orphans` can tell the
leftovers of a killed process (of this host: a pid means nothing on another node sharing the folder) from the
files that running processes are still writing.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

# `.<stem>.<pid>.<host tag><random>.partial<suffix>`; the host tag is `host_tag()`, the random part 12 hex digits.
_TEMPORARY = re.compile(r"\..*\.(?P<pid>\d+)\.(?P<host>[0-9a-f]{12})[0-9a-f]{12}\.partial.*")


def host_tag() -> str:
    """This host's part of a temporary name: 12 hex digits of the sha256 of its hostname (hex, so that names keep
    the form `.<stem>.<pid>.<hex>.partial<suffix>` that `mml.data.cache` parses; fixed length, whatever the name)."""
    return hashlib.sha256(socket.gethostname().encode()).hexdigest()[:12]


def temporary_sibling(path: Path) -> Path:
    """A unique hidden name beside `path` (pid, host tag and a random part), keeping its suffix so writers that
    choose a format from the suffix (numpy, video encoders) still do; same folder, so the final rename is atomic."""
    return path.with_name(f".{path.stem}.{os.getpid()}.{host_tag()}{uuid.uuid4().hex[:12]}.partial{path.suffix}")


def process_alive(pid: int) -> bool:
    """Whether process `pid` of this host runs (a process of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def orphaned(path: Path) -> bool:
    """Whether `path` is a temporary file or folder (`temporary_sibling`) of a process of this host that is gone."""
    match = _TEMPORARY.fullmatch(path.name)
    return match is not None and match["host"] == host_tag() and not process_alive(int(match["pid"]))


def remove_orphans(folder: Path, depth: int) -> list[Path]:
    """Delete the temporary files and folders that killed processes of this host left in `folder`, up to `depth`
    levels down (not inside a temporary folder, removed whole; symbolic links are not followed); the removed ones.

    Those of running processes, and of other hosts, stay."""
    removed: list[Path] = []
    try:
        entries = list(os.scandir(folder))
    except (FileNotFoundError, NotADirectoryError):
        return removed
    for entry in entries:
        path = Path(entry.path)
        if orphaned(path):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            removed.append(path)
        elif depth > 1 and entry.is_dir(follow_symlinks=False):
            removed += remove_orphans(path, depth - 1)
    return removed


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
        if replace:
            replace_folder(staging, final)
        else:
            try:
                os.replace(staging, final)
            except OSError:
                if not final.is_dir():
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def replace_folder(source: Path, final: Path) -> None:
    """Move the folder `source` to `final` (same file system), replacing an existing `final`: the old one is renamed
    aside first and deleted only once the new one is in place, so `final` is never a half-deleted folder, and a crash
    in between leaves both whole (the old one under a temporary name, for `remove_orphans`)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    old = temporary_sibling(final)
    with contextlib.suppress(FileNotFoundError):
        os.rename(final, old)
    os.replace(source, final)
    shutil.rmtree(old, ignore_errors=True)
