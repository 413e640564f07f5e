"""The one-node test cluster behaves as the SLURM features we rely on need: batch jobs, afterok dependencies, a
failed parent cancelling its children, requeue with SLURM_RESTART_COUNT, and `scancel --signal --batch` reaching the
Python process a batch script execs (how a preempted runner learns to checkpoint)."""

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.slurm

WAIT_S = 60.0
FINISHED = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "PREEMPTED", "BOOT_FAIL"}

# Runs under the batch script's `exec`: reports once its USR2 handler is installed, and exits 0 from the handler.
USR2_HANDLER = """\
import signal, sys, time
from pathlib import Path

def on_usr2(signum, frame):
    Path("usr2").write_text("USR2")
    sys.exit(0)

signal.signal(signal.SIGUSR2, on_usr2)
Path("ready").write_text("ready")
time.sleep(120)
"""


def sbatch(env: dict[str, str], folder: Path, *options: str, script: Path | None = None) -> str:
    """Submit a batch job running in `folder`; its id."""
    command = ["sbatch", "--parsable", f"--chdir={folder}", f"--output={folder}/slurm-%j.out", *options]
    submitted = subprocess.run([*command, *([str(script)] if script else [])], env=env, capture_output=True, text=True)
    assert submitted.returncode == 0, submitted.stderr
    return submitted.stdout.strip()


def job_state(env: dict[str, str], job: str) -> str:
    shown = subprocess.run(["scontrol", "-o", "show", "job", job], env=env, capture_output=True, text=True, check=True)
    match = re.search(r"\bJobState=(\S+)", shown.stdout)
    assert match, shown.stdout
    return match.group(1)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"no {what} after {WAIT_S:.0f} s"
        time.sleep(0.2)


def finished_state(env: dict[str, str], job: str) -> str:
    wait_for(lambda: job_state(env, job) in FINISHED, f"end of job {job}")
    return job_state(env, job)


def batch_script(folder: Path, name: str, body: str) -> Path:
    script = folder / name
    script.write_text(f"#!/bin/bash\n{body}\n")
    return script


def test_a_batch_job_writes_its_file_and_its_afterok_child_runs_after_it(
    slurm_cluster: dict[str, str], tmp_path: Path
) -> None:
    parent = sbatch(slurm_cluster, tmp_path, "--wrap", "sleep 2; echo parent >> order")
    child = sbatch(slurm_cluster, tmp_path, f"--dependency=afterok:{parent}", "--wrap", "echo child >> order")
    assert finished_state(slurm_cluster, parent) == "COMPLETED"
    assert finished_state(slurm_cluster, child) == "COMPLETED"
    assert (tmp_path / "order").read_text() == "parent\nchild\n"


def test_the_child_of_a_failing_parent_is_cancelled_and_never_runs(
    slurm_cluster: dict[str, str], tmp_path: Path
) -> None:
    parent = sbatch(slurm_cluster, tmp_path, "--wrap", "exit 3")
    child = sbatch(
        slurm_cluster, tmp_path, f"--dependency=afterok:{parent}", "--kill-on-invalid-dep=yes", "--wrap", "touch ran"
    )
    assert finished_state(slurm_cluster, parent) == "FAILED"
    assert finished_state(slurm_cluster, child) == "CANCELLED"
    assert not (tmp_path / "ran").exists()


def test_a_requeued_running_job_restarts_its_script_with_its_restart_count(
    slurm_cluster: dict[str, str], tmp_path: Path
) -> None:
    restarts = tmp_path / "restarts"
    script = batch_script(
        tmp_path,
        "job.sh",
        'echo "${SLURM_RESTART_COUNT:-0}" >> restarts\nif [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then sleep 120; fi',
    )
    job = sbatch(slurm_cluster, tmp_path, script=script)
    wait_for(lambda: restarts.exists() and restarts.read_text() == "0\n", f"first run of job {job}")
    subprocess.run(["scontrol", "requeue", job], env=slurm_cluster, check=True, capture_output=True)
    assert finished_state(slurm_cluster, job) == "COMPLETED"
    assert restarts.read_text() == "0\n1\n"


def test_scancel_signal_batch_reaches_the_python_process_the_script_execs(
    slurm_cluster: dict[str, str], tmp_path: Path
) -> None:
    (tmp_path / "handler.py").write_text(USR2_HANDLER)
    script = batch_script(tmp_path, "job.sh", f"exec {sys.executable} handler.py")
    job = sbatch(slurm_cluster, tmp_path, script=script)
    wait_for((tmp_path / "ready").exists, f"USR2 handler of job {job}")
    subprocess.run(["scancel", "--signal=USR2", "--batch", job], env=slurm_cluster, check=True, capture_output=True)
    assert finished_state(slurm_cluster, job) == "COMPLETED"  # exit 0 from the handler, not killed
    assert (tmp_path / "usr2").read_text() == "USR2"
