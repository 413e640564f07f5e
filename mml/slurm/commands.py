"""The SLURM commands mml calls — `sbatch`, `squeue`, `scontrol` — and what their answers mean.

SLURM's accounting (`sacct`) is often off on small clusters, so a job's state comes from `squeue`, and for a job that
has left the queue from `scontrol show job` (which knows it for `MinJobAge` seconds, 300 by default); a job neither
knows is `GONE`, and only the store says whether it did its work.
"""

from __future__ import annotations

import getpass
import os
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from mml.errors import MMLError

# States of a job that is still going to run (or running): a second invocation adopts such a job.
ACTIVE = frozenset(
    {
        "PENDING",
        "CONFIGURING",
        "RUNNING",
        "COMPLETING",
        "SUSPENDED",
        "REQUEUED",
        "REQUEUE_FED",
        "REQUEUE_HOLD",
        "RESIZING",
        "PREEMPTED",
        "SIGNALING",
        "STAGE_OUT",
    }
)
GONE = "GONE"  # neither squeue nor scontrol knows the job any more


@dataclass(frozen=True)
class JobState:
    """A job as SLURM sees it: `state` (RUNNING, PENDING, COMPLETED, FAILED, …, or GONE), the time it has run
    (seconds), and why it waits (squeue's reason, e.g. `Dependency`)."""

    state: str
    elapsed_s: int = 0
    reason: str = ""

    @property
    def active(self) -> bool:
        return self.state in ACTIVE


def submission_environment(environment: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment jobs are submitted with: this one without the `SLURM_*` variables of a job we may be running
    in (a job submitted from inside a job would inherit its nodes, tasks and array index), `SLURM_CONF` kept."""
    source = os.environ if environment is None else environment
    return {key: value for key, value in source.items() if not key.startswith("SLURM_") or key == "SLURM_CONF"}


def _call(command: Sequence[str], stdin: str | None = None) -> str:
    """Run a SLURM command; its stdout, or an MMLError with the command and the first line of what it said."""
    try:
        done = subprocess.run(
            list(command), input=stdin, capture_output=True, text=True, env=submission_environment(), check=False
        )
    except FileNotFoundError:
        raise MMLError(f"{command[0]}: not found; --launcher slurm needs SLURM's commands on the PATH") from None
    if done.returncode != 0:
        said = (done.stderr.strip() or done.stdout.strip() or f"exit status {done.returncode}").splitlines()[0]
        raise MMLError(f"{' '.join(command[:2])}: {said}")
    return done.stdout


def submit(script: str, dependencies: Sequence[str] = ()) -> str:
    """Submit a batch script (its `#SBATCH` lines carry the options), after the jobs `dependencies` succeed; returns
    the new job's id. A dependency on a job that fails cancels this one (`--kill-on-invalid-dep=yes`) instead of
    leaving it pending forever."""
    command = ["sbatch", "--parsable", "--kill-on-invalid-dep=yes"]
    if dependencies:
        command.append("--dependency=afterok:" + ":".join(dependencies))
    answer = _call(command, stdin=script).strip()
    job = answer.split(";")[0]  # --parsable: "id" or "id;cluster"
    if not job.isdigit():
        raise MMLError(f"sbatch: unexpected answer {answer!r}, expected a job id")
    return job


def _seconds(text: str) -> int:
    """SLURM's elapsed time `[days-]hours:minutes:seconds` (or `minutes:seconds`) in seconds."""
    days, _, clock = text.rpartition("-")
    parts = [int(part) for part in clock.split(":") if part.isdigit()]
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds + int(days or 0) * 86400


def job_states(jobs: Sequence[str]) -> dict[str, JobState]:
    """The state of each job: one `squeue` call over this user's jobs (squeue refuses a list naming a job it forgot),
    then `scontrol show job` for those that left the queue."""
    if not jobs:
        return {}
    listed = _call(["squeue", "--noheader", "--states=all", "--format=%i|%T|%M|%r", f"--user={getpass.getuser()}"])
    queued = {}
    for line in listed.splitlines():
        job, state, elapsed, reason = (line.split("|") + ["", "", ""])[:4]
        queued[job.strip()] = JobState(state.strip(), _seconds(elapsed.strip()), reason.strip())
    return {job: queued[job] if job in queued else _shown(job) for job in jobs}


def _shown(job: str) -> JobState:
    """A job that squeue does not list, as `scontrol show job` still knows it; GONE once SLURM forgot it."""
    try:
        text = _call(["scontrol", "--oneliner", "show", "job", job])
    except MMLError:
        return JobState(GONE)
    fields = dict(item.split("=", 1) for item in text.split() if "=" in item)
    return JobState(fields.get("JobState", GONE), _seconds(fields.get("RunTime", "0")), fields.get("Reason", ""))


def requeue(job: str) -> None:
    """Put a running job back in the queue: SLURM stops it and starts its script again later, under the same id."""
    _call(["scontrol", "requeue", job])
