"""`mml reproduce table7 --launcher slurm` and `mml prepare --launcher slurm --shards 3` against a real one-node
SLURM cluster (`nox -s slurm`): the table equals the in-process one cell for cell; a second invocation while jobs wait
submits nothing; a job signalled in the middle of its run requeues itself and resumes; a job that fails shows as
failed in `mml status` with its log, and the next invocation submits it again; three shards fill the same cache as
one process."""

import json
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from runner_cli import environment, reproduce_command

from mml.store import Store

WAIT_S = 900.0  # the whole of micro Table 7 through the queue: 13 jobs, 2 at a time on 2 CPUs
SLURM = ["--launcher", "slurm", "--gpus-per-run", "0", "--cpus-per-run", "1"]


def wait_for(condition: Callable[[], bool], what: str, seconds: float = WAIT_S, poll: float = 1.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"gave up waiting for {what}"
        time.sleep(poll)


def launch(specs: Path, root: Path, env: dict[str, str]) -> str:
    done = subprocess.run(
        reproduce_command(specs, root, *SLURM), env={**environment(), **env}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def status(specs: Path, root: Path, env: dict[str, str]) -> str:
    command = reproduce_command(specs, root)
    command[command.index("reproduce")] = "status"
    done = subprocess.run(command, env={**environment(), **env}, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def ledger(root: Path) -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text()) for path in (root / "store" / "slurm").glob("*.json")}


def queued(env: dict[str, str]) -> list[str]:
    listed = subprocess.run(["squeue", "--noheader", "--format=%i"], env=env, capture_output=True, text=True)
    return listed.stdout.split()


def planned_runs(specs: Path, root: Path) -> list[str]:
    """The planned runs in dependency order, as a dry run lists them: the ImageNet stand-in first."""
    listed = subprocess.run(
        [*reproduce_command(specs, root), "--dry-run"], env=environment(), capture_output=True, text=True, check=True
    )
    return [line.split()[1] for line in listed.stdout.splitlines() if line.startswith(("missing", "done", "partial"))]


def table(root: Path) -> Path:
    return root / "tables" / "micro" / "table07.md"


@pytest.mark.slurm
def test_table7_through_slurm(
    slurm_cluster: dict[str, str], table7_specs: Path, uninterrupted: str, tmp_path: Path
) -> None:
    store, runs = Store(tmp_path / "store"), planned_runs(table7_specs, tmp_path)
    broken = store.partial_dir(runs[-1]) / "checkpoint.safetensors"  # a run no other starts from: its job fails
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a checkpoint")

    said = launch(table7_specs, tmp_path, slurm_cluster)
    assert "13 jobs submitted" in said, said  # the data job, 11 runs, the table job
    jobs = ledger(tmp_path)
    assert len(jobs) == 13
    again = launch(table7_specs, tmp_path, slurm_cluster)
    assert "0 jobs submitted" in again, again
    assert ledger(tmp_path) == jobs

    # A run that trains after the ImageNet stand-in is frozen as soon as it starts (its partial folder appears),
    # signalled, and let go: the signal arrives in the middle of its training, whatever the machine's speed.
    signalled = runs[1]
    job = jobs[signalled]["job"]
    wait_for(lambda: store.partial_dir(signalled).is_dir() or store.is_done(signalled), "the run to start", poll=0.02)
    for name in ("STOP", "USR2", "CONT"):
        subprocess.run(["scancel", f"--signal={name}", "--batch", job], env=slurm_cluster, check=True)
        assert name != "STOP" or not store.is_done(signalled), "the run ended before it could be signalled"

    # The broken run's job fails, which cancels the table job; the status names it with its log.
    wait_for(lambda: not set(queued(slurm_cluster)) & {entry["job"] for entry in jobs.values()}, "the jobs")
    shown = status(table7_specs, tmp_path, slurm_cluster)
    assert next(line for line in shown.splitlines() if runs[-1] in line).startswith("failed"), shown
    log = jobs[runs[-1]]["log"]
    assert f"job log: {log}" in shown and "11 runs: 10 done, 1 failed" in shown, shown
    assert "not a resumable checkpoint" in Path(log).read_text()
    assert not table(tmp_path).exists()
    signalled_log = Path(jobs[signalled]["log"]).read_text()
    assert "requeueing" in signalled_log and "(restart 1)" in signalled_log, signalled_log

    # Mended, the next invocation submits what is missing: the data job, the failed run and the table job.
    broken.unlink()
    said = launch(table7_specs, tmp_path, slurm_cluster)
    assert "3 jobs submitted" in said, said
    assert ledger(tmp_path)[runs[-1]]["failures"] == 1
    wait_for(lambda: table(tmp_path).is_file(), "the table job")
    assert table(tmp_path).read_text() == uninterrupted
    assert "11 runs: 11 done" in status(table7_specs, tmp_path, slurm_cluster)


@pytest.mark.slurm
def test_prepare_over_three_shards_equals_one_process(
    slurm_cluster: dict[str, str], table7_specs: Path, tmp_path: Path
) -> None:
    run = {"env": {**environment(), **slurm_cluster}, "capture_output": True, "text": True, "check": True}
    data = tmp_path / "data"
    # The micro data set, generated by planning it; then prepared by one process and by a SLURM array of 3 shards.
    subprocess.run([*reproduce_command(table7_specs, tmp_path), "--dry-run", "--data", str(data)], **run)
    prepare = [sys.executable, "-m", "mml", "prepare", "sthv2", "--data", str(data), "--profile", "micro"]
    prepare += ["--specs", str(table7_specs), "--no-progress"]
    subprocess.run([*prepare, "--store", str(tmp_path / "one")], **run)
    sharded = [*prepare, "--store", str(tmp_path / "sharded"), "--launcher", "slurm", "--shards", "3"]
    first = subprocess.run([*sharded, "--cpus-per-run", "1"], **run).stdout
    again = subprocess.run([*sharded, "--cpus-per-run", "1"], **run).stdout
    assert again.count("already queued or running") == 2, again  # the array and the merge are adopted
    jobs = [word for word in first.split() if word.isdigit()]
    wait_for(lambda: not set(queued(slurm_cluster)) & set(jobs), "the array and its merge", 300)

    def cache(store: str) -> dict[str, bytes]:
        root = tmp_path / store / "cache"
        files = [p for p in root.rglob("*") if p.is_file() and ".shard-" not in p.name]
        return {str(p.relative_to(root)): p.read_bytes() for p in files}

    assert len(list((tmp_path / "sharded" / "cache").rglob("*.shard-*-of-3.json"))) == 3
    assert cache("sharded") == cache("one")


def test_a_job_refuses_a_run_its_plan_does_not_have(table7_specs: Path, tmp_path: Path) -> None:
    """A job plans again with the code on disk: a run id it does not plan (the code changed since submission) is
    refused in one line, not skipped as if done."""
    done = subprocess.run(
        [*reproduce_command(table7_specs, tmp_path), "--run", "0" * 16],
        env=environment(),
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and f"run {'0' * 16} is not in this plan" in done.stderr, done.stderr
