"""The lease lock: one holder at a time across processes, stale locks taken over (at once for a dead process of this
host, after the lease for another host's), race-free takeover, a heartbeat that keeps a held lock fresh, and a
release that never deletes a new owner's lock."""

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from mml import lease
from mml.errors import MMLError
from mml.lease import LeaseLock

REPOSITORY = Path(__file__).parent.parent

# A process that takes the lock `rounds` times, writing `enter` and `exit` lines (with its pid) to a shared log
# while it holds it; two such processes overlap only if the lock lets two holders in at once.
CONTENDER = """
import os, sys, time
from pathlib import Path
from mml.lease import LeaseLock
lock_path, log_path, rounds = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
for _ in range(rounds):
    with LeaseLock(lock_path, lease_s=30):
        with open(log_path, "a") as log:
            log.write(f"enter {os.getpid()}\\n")
        time.sleep(0.05)
        with open(log_path, "a") as log:
            log.write(f"exit {os.getpid()}\\n")
"""


def dead_pid() -> int:
    """The pid of a process of this host that has exited."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return int(done.stdout)


def write_lock(path: Path, host: str, pid: int, lease_s: float, age_s: float = 0.0) -> bytes:
    """A lock file of another owner, its heartbeat `age_s` seconds old."""
    owner = {"host": host, "pid": pid, "job": "4242", "acquired": "2026-01-01T00:00:00+00:00", "lease_s": lease_s}
    content = json.dumps({**owner, "token": "f" * 32}).encode()
    path.write_bytes(content)
    beat = time.time() - age_s
    os.utime(path, (beat, beat))
    return content


def owner_token(path: Path) -> str:
    return json.loads(path.read_text())["token"]


def test_contending_processes_hold_the_lock_one_at_a_time(tmp_path: Path) -> None:
    lock, log = tmp_path / "run.lock", tmp_path / "holders.log"
    env = {**os.environ, "PYTHONPATH": str(REPOSITORY)}
    command = [sys.executable, "-c", CONTENDER, str(lock), str(log), "5"]
    contenders = [subprocess.Popen(command, env=env) for _ in range(2)]
    assert [contender.wait(timeout=120) for contender in contenders] == [0, 0]
    lines = log.read_text().splitlines()
    assert len(lines) == 20
    for enter, leave in zip(lines[::2], lines[1::2]):  # each holder leaves before the next enters
        assert enter.split()[0] == "enter" and leave == f"exit {enter.split()[1]}"
    assert len({line.split()[1] for line in lines}) == 2
    assert not lock.exists()


def test_a_lock_of_a_dead_process_of_this_host_is_taken_over_at_once(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    write_lock(path, socket.gethostname(), dead_pid(), lease_s=3600)  # heartbeat fresh, lease long: only the pid
    with LeaseLock(path, timeout_s=30):
        owner = json.loads(path.read_text())
        assert (owner["host"], owner["pid"], owner["lease_s"]) == (socket.gethostname(), os.getpid(), 120.0)
    assert not path.exists()


def test_a_lock_of_another_host_is_taken_over_only_after_its_lease(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "run.lock"
    write_lock(path, "node-elsewhere", os.getpid(), lease_s=60, age_s=30)  # its pid means nothing here
    with caplog.at_level(logging.INFO, logger="mml.lease"), pytest.raises(MMLError) as error:
        LeaseLock(path, timeout_s=1.5).acquire()
    assert str(error.value).startswith(f"{path}: not acquired within 1.5 s: held by node-elsewhere pid {os.getpid()}")
    assert "SLURM job 4242" in str(error.value)
    waiting = [r.getMessage() for r in caplog.records if "waiting for the lock" in r.getMessage()]
    assert len(waiting) == 1 and "node-elsewhere" in waiting[0]  # one line, not one per poll
    assert owner_token(path) == "f" * 32
    beat = time.time() - 90
    os.utime(path, (beat, beat))  # its heartbeat stopped longer ago than its lease
    with LeaseLock(path, timeout_s=30):
        assert json.loads(path.read_text())["host"] == socket.gethostname()
    assert not path.exists()


def race(path: Path, start: threading.Barrier, release: threading.Event, outcomes: list[str]) -> None:
    """Wait for the lock `path` together with another thread; the winner holds it until `release` is set, so the
    other one times out."""
    lock = LeaseLock(path, timeout_s=1)
    start.wait()
    try:
        lock.acquire()
    except MMLError:
        outcomes.append("waited")
        return
    outcomes.append("won")
    release.wait()
    lock.release()


def test_two_waiters_racing_for_one_stale_lock_one_wins(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    for _ in range(5):
        write_lock(path, socket.gethostname(), dead_pid(), lease_s=3600)
        start, release, outcomes = threading.Barrier(2), threading.Event(), []
        arguments = (path, start, release, outcomes)
        waiters = [threading.Thread(target=race, args=arguments) for _ in range(2)]
        for waiter in waiters:
            waiter.start()
        deadline = time.monotonic() + 60
        while len(outcomes) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        release.set()
        for waiter in waiters:
            waiter.join(timeout=60)
        assert sorted(outcomes) == ["waited", "won"]
        assert [p.name for p in tmp_path.iterdir()] == []  # released, and no file left aside


def test_a_takeover_that_moved_a_newer_lock_aside_puts_it_back(tmp_path: Path) -> None:
    """The interleaving the rename guards against: waiter B judged the lock stale, but A took it over first."""
    path = tmp_path / "run.lock"
    write_lock(path, "node-elsewhere", 1, lease_s=1, age_s=3600)
    first, second = LeaseLock(path), LeaseLock(path)
    seen = lease._look(path)
    first_sight, second_sight = first._stale(seen), second._stale(seen)
    assert seen is not None and first_sight and second_sight  # both judge it stale
    first._take_over(seen, first_sight)
    assert first._create()
    token = owner_token(path)
    second._take_over(seen, second_sight)  # renames the first's fresh lock aside, sees it is not the stale one
    assert owner_token(path) == token and [p.name for p in tmp_path.iterdir()] == ["run.lock"]
    first.release()
    assert not path.exists()


def test_the_heartbeat_keeps_a_held_lock_fresh(tmp_path: Path) -> None:
    path = tmp_path / "run.lock"
    with LeaseLock(path, lease_s=0.6):
        past = time.time() - 3600
        os.utime(path, (past, past))
        deadline = time.monotonic() + 30
        while path.stat().st_mtime < past + 1800 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert path.stat().st_mtime > past + 1800


def test_a_released_lock_that_was_taken_over_keeps_the_new_owner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "run.lock"
    hung = LeaseLock(path, lease_s=0.6)  # its owner stops beating for longer than the lease: a hung process
    hung.acquire()
    path.rename(tmp_path / "aside")  # taken over: the stale file is moved aside and deleted, a new one created
    (tmp_path / "aside").unlink()
    new = write_lock(path, "node-elsewhere", 7, lease_s=60, age_s=3600)
    with caplog.at_level(logging.WARNING, logger="mml.lease"):
        deadline = time.monotonic() + 30
        while "lock lost" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        hung.release()
    assert "lock lost to node-elsewhere pid 7" in caplog.text and "left to node-elsewhere" in caplog.text
    assert path.read_bytes() == new
    assert path.stat().st_mtime < time.time() - 1800  # the old owner's heartbeat never touched the new owner's file


def test_invalid_settings_are_refused(tmp_path: Path) -> None:
    with pytest.raises(MMLError, match="lease_s must be positive"):
        LeaseLock(tmp_path / "run.lock", lease_s=0)
    with pytest.raises(MMLError, match="timeout_s must be zero or more"):
        LeaseLock(tmp_path / "run.lock", timeout_s=-1)
