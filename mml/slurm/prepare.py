"""`mml prepare ... --launcher slurm --shards N`: frame decoding and TV-L1 flow as a SLURM job array over CPU nodes.

Task I of the array runs `mml prepare ... --shard I/N` (its own videos, its own report; resumable: what is cached is
not decoded again), and a merge job after the whole array (`afterok`) runs `mml prepare ...` once more, which finds
every video cached and writes the one report of the data set. A second invocation while they are queued or running
adopts them instead of submitting them twice.
"""

from __future__ import annotations

import hashlib
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from mml.errors import MMLError
from mml.slurm.executor import SlurmOptions, Submission, batch_script, job_arguments
from mml.slurm.ledger import Ledger
from mml.store import Store

logger = logging.getLogger(__name__)


def submit_prepare(
    options: SlurmOptions,
    arguments: Sequence[str],
    store: Store,
    shards: int,
    python: str = sys.executable,
    directory: Path | None = None,
) -> tuple[str, str]:
    """Submit (or adopt) the array of `shards` tasks and its merge job for `mml prepare arguments`; their job ids."""
    if shards < 1:
        raise MMLError(f"--shards {shards}: expected a positive number of shards")
    repeated = job_arguments(arguments)
    # A task uses the CPUs SLURM gave it, not every core of its node.
    workers = "" if "--workers" in " ".join(repeated) else "--workers $SLURM_CPUS_PER_TASK"
    digest = hashlib.sha256("\0".join([*repeated, str(shards)]).encode()).hexdigest()[:12]
    ledger, where = Ledger(store), directory or Path.cwd()
    keys = (f"shards-{digest}", f"merge-{digest}")
    submission = Submission.of(ledger, keys, options.max_failures)
    jobs: list[str] = []
    for key, array in ((keys[0], shards), (keys[1], None)):
        log = ledger.log(key, "%A_%a" if array else "%j")
        command = ["-m", "mml", "prepare", *repeated]
        words = f"{workers} --shard $SLURM_ARRAY_TASK_ID/{shards}" if array else workers
        script = batch_script(options, key, log, python, command, where, 0, 1, array=array, shell_words=words.strip())
        job = submission.ensure(key, script, list(jobs), array=bool(array))
        assert job is not None  # only a run's job is ever withheld
        what = f"an array of {shards} shards" if array else "the merge"
        adopted = key in submission.adopted
        logger.info(
            f"SLURM: job {job} ({key}) is already queued or running"
            if adopted
            else f"SLURM: job {job} submitted: {what}"
        )
        jobs.append(job)
    return jobs[0], jobs[1]
