"""A lock that holds across the nodes of a cluster sharing one file system: a lock file naming its owner, kept alive
by a heartbeat, and taken over once that heartbeat stops.

`flock` is not coherent across nodes everywhere: NFS emulates it with fcntl locks (node-local under `local_lock`),
Lustre only with its `flock` mount option (`localflock`: node-local, `noflock`: fails with ENOSYS), and a lock could
vanish unnoticed (NFSv4 clients out of contact for longer than the server's lease, before Linux 3.12). Whether a
file exists, though, every node sees alike:

- Taking the lock creates the file with `os.open(O_CREAT | O_EXCL | O_WRONLY)`: atomic on local file systems, on
  Lustre and on NFSv3 and later (the link(2)-a-unique-file-and-count-its-links trick of flufl.lock is needed only for
  NFSv2). It holds its owner as JSON: host, pid, SLURM job (`SLURM_JOB_ID`, or null), when it was acquired, its
  lease, and a random token that tells this acquisition from any other.
- While it is held, a daemon thread touches the file every lease / 3: its mtime is the heartbeat.
- A waiter polls (every 0.2 s at first, backing off to 5 s). It logs once who holds the lock and since when, then a
  reminder every 5 minutes. It takes over a stale lock: at once when the owner is a process of this host that is
  gone (a killed runner), else once the heartbeat is older than the owner's lease (its process, or its node, is gone
  or hung). The heartbeat's age compares the file server's clock (the mtime) with the waiter's, so, as with
  flufl.lock, the nodes' clocks must agree to well within the lease (NTP does).
- Taking over is race-free between waiters: the stale file is renamed to a name of the taker's own (of two waiters,
  one rename succeeds; the other finds the file gone and waits on), checked to still be the file judged stale (same
  owner record, no heartbeat since; else it is linked back), and deleted; then the taker creates its own like any
  acquirer.
- Releasing deletes the file only if it still holds this acquisition's record: a lock taken over after its heartbeat
  stopped for a lease (a hung or suspended process) is the new owner's, and the old owner's heartbeat warns then.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType

from mml.atomic import process_alive, temporary_sibling
from mml.errors import MMLError

logger = logging.getLogger(__name__)

DEFAULT_LEASE_S = 120.0  # a heartbeat older than this marks a lock of another host (or a hung process) stale
FIRST_POLL_S, LAST_POLL_S = 0.2, 5.0  # a waiter's poll interval grows from the first to the last
REMINDER_S = 300.0  # how often a waiter logs that it is still waiting


@dataclass(frozen=True)
class Owner:
    """The holder of a lock, as its lock file records it."""

    host: str
    pid: int
    job: str | None  # the SLURM job id, or None outside SLURM
    acquired: str  # ISO 8601, UTC
    lease_s: float
    token: str  # unique to one acquisition

    def __str__(self) -> str:
        job = f", SLURM job {self.job}" if self.job else ""
        return f"{self.host} pid {self.pid}{job} since {self.acquired}"


@dataclass(frozen=True)
class _Seen:
    """A lock file as a waiter read it: its content, its heartbeat and its owner (None while the owner is still
    writing it, or if the file is not one of ours, e.g. an empty flock file of an older mml)."""

    content: bytes
    mtime_ns: int
    owner: Owner | None

    def holder(self) -> str:
        return str(self.owner) if self.owner else "an unknown owner"


class LeaseLock:
    """The lock file `path`, held by one process at a time on every node that shares its file system.

    A context manager (or `acquire` / `release`): entering waits until the lock is free or stale and takes it, or
    raises MMLError after `timeout_s` (None: waits as long as it takes). `lease_s`: see the module docstring."""

    def __init__(self, path: Path, lease_s: float = DEFAULT_LEASE_S, timeout_s: float | None = None) -> None:
        if not lease_s > 0:
            raise MMLError(f"{path}: lease_s must be positive, not {lease_s}")
        if timeout_s is not None and not timeout_s >= 0:
            raise MMLError(f"{path}: timeout_s must be zero or more, not {timeout_s}")
        self.path, self.lease_s, self.timeout_s = Path(path), lease_s, timeout_s
        self.host = socket.gethostname()
        self._fd: int | None = None
        self._content = b""
        self._stop = threading.Event()
        self._heartbeat: threading.Thread | None = None

    def __enter__(self) -> LeaseLock:
        self.acquire()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.release()

    def acquire(self) -> None:
        """Wait until the lock is ours (see the class docstring)."""
        if self._fd is not None:
            raise MMLError(f"{self.path}: this lock is already held by this object")
        started = time.monotonic()
        delay, announced, reminder = FIRST_POLL_S, b"", 0.0
        while not self._create():
            seen = _look(self.path)
            if seen is None:  # released meanwhile
                continue
            reason = self._stale(seen)
            if reason:
                self._take_over(seen, reason)
                continue
            now = time.monotonic()
            if seen.content != announced:
                logger.info(f"waiting for the lock {self.path}: held by {seen.holder()}")
                announced, reminder = seen.content, now + REMINDER_S
            elif now >= reminder:
                waited = (now - started) / 60
                logger.info(f"still waiting for the lock {self.path} ({waited:.0f} min): held by {seen.holder()}")
                reminder = now + REMINDER_S
            if self.timeout_s is not None and now - started >= self.timeout_s:
                raise MMLError(f"{self.path}: not acquired within {self.timeout_s:g} s: held by {seen.holder()}")
            time.sleep(delay if self.timeout_s is None else min(delay, started + self.timeout_s - now))
            delay = min(delay * 1.5, LAST_POLL_S)

    def release(self) -> None:
        """Stop the heartbeat and delete the lock file if it is still ours."""
        if self._fd is None:
            raise MMLError(f"{self.path}: released, but not held by this object")
        self._stop.set()
        assert self._heartbeat is not None  # started with the file
        self._heartbeat.join()
        os.close(self._fd)
        self._fd = None
        seen = _look(self.path)
        if seen is None:
            logger.warning(f"{self.path}: gone before its release (taken over after its heartbeat stopped?)")
        elif seen.content == self._content:
            self.path.unlink()
        else:
            logger.warning(f"{self.path}: left to {seen.holder()}, who took it over after its heartbeat stopped")

    def _create(self) -> bool:
        """Create the lock file with our owner record and start its heartbeat; False if it exists."""
        job = os.environ.get("SLURM_JOB_ID")
        acquired = datetime.now(UTC).isoformat(timespec="seconds")
        owner = Owner(self.host, os.getpid(), job, acquired, self.lease_s, uuid.uuid4().hex)
        content = (json.dumps(dataclasses.asdict(owner), sort_keys=True) + "\n").encode()
        try:
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            return False
        try:
            with open(fd, "wb", closefd=False) as handle:
                handle.write(content)
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            self.path.unlink(missing_ok=True)
            raise
        self._fd, self._content = fd, content
        self._stop.clear()
        self._heartbeat = threading.Thread(target=self._beat, name=f"heartbeat {self.path.name}", daemon=True)
        self._heartbeat.start()
        return True

    def _beat(self) -> None:
        """Touch our lock file every lease / 3 until released; stop (warning) once another owner has taken it over.

        It touches the file it created (by descriptor), never a new owner's file of the same name."""
        while not self._stop.wait(self.lease_s / 3):
            seen = _look(self.path)  # None: absent, or moved aside for a moment by a waiter checking it
            if seen is not None and seen.content != self._content:
                logger.warning(
                    f"{self.path}: lock lost to {seen.holder()}: this process's heartbeat stopped for longer than "
                    f"its lease ({self.lease_s:g} s); the work under the lock may now run twice"
                )
                return
            try:
                assert self._fd is not None  # the thread stops before the descriptor is closed
                os.utime(self._fd)
            except OSError as error:
                logger.warning(f"{self.path}: heartbeat failed: {error}")

    def _stale(self, seen: _Seen) -> str | None:
        """Why the lock `seen` is stale, or None while its owner may still be working."""
        owner = seen.owner
        if owner and owner.host == self.host and not process_alive(owner.pid):
            return f"its process {owner.pid} no longer runs on this host"
        lease = owner.lease_s if owner else self.lease_s
        age = time.time() - seen.mtime_ns / 1e9
        return f"no heartbeat for {age:.0f} s, longer than its lease ({lease:g} s)" if age > lease else None

    def _take_over(self, seen: _Seen, reason: str) -> None:
        """Remove the stale lock `seen` unless another waiter did first (the caller then tries to create ours)."""
        aside = temporary_sibling(self.path)
        try:
            os.rename(self.path, aside)
        except FileNotFoundError:
            return
        moved = _look(aside)
        if moved == seen:
            logger.info(f"{self.path}: taking over the lock of {seen.holder()}: {reason}")
        else:  # a newer lock (another waiter's, or an owner's that beat again) went aside: put it back
            try:
                os.link(aside, self.path)
            except FileExistsError:
                holder = moved.holder() if moved else "an unknown owner"
                logger.warning(f"{self.path}: could not put back the lock of {holder}: taken again meanwhile")
        aside.unlink(missing_ok=True)


def _look(path: Path) -> _Seen | None:
    """The lock file at `path` as it is now; None if there is none."""
    try:
        with open(path, "rb") as handle:
            content = handle.read()
            mtime_ns = os.fstat(handle.fileno()).st_mtime_ns
    except FileNotFoundError:
        return None
    return _Seen(content, mtime_ns, _owner(content))


def _owner(content: bytes) -> Owner | None:
    """The owner a lock file's content records; None if it records none (yet)."""
    try:
        owner = Owner(**json.loads(content))
    except (ValueError, TypeError):
        return None
    valid = isinstance(owner.host, str) and isinstance(owner.pid, int) and isinstance(owner.lease_s, int | float)
    return owner if valid else None
