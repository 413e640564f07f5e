"""A run's SLURM job that is signalled before its time limit (or by `scancel --signal=USR2 --batch`) requeues itself.

The signal ends the run where it is: its last checkpoint (written after every finished epoch) stays in the store's
partial folder, and the job asks SLURM to requeue it (`scontrol requeue`). SLURM starts the job's script again under
the same id; the run resumes from that checkpoint, so at most the epoch in progress is trained again, and since every
epoch's randomness derives from the seed and the epoch, the result is the uninterrupted one. A job requeues itself
at most `MML_MAX_REQUEUES` times (SLURM counts them in `SLURM_RESTART_COUNT`), then ends as failed.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Iterator
from types import FrameType

from mml.errors import MMLError
from mml.slurm import commands

logger = logging.getLogger(__name__)

SIGNAL = signal.SIGUSR2  # USR1 is NCCL's (submitit moved to USR2 for that reason)


class Preempted(BaseException):
    """SLURM asked the job to stop; a BaseException, so that no handler of ordinary errors keeps the run going."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Preempted(signal.Signals(signum).name)


@contextlib.contextmanager
def requeued_on_signal(environment: dict[str, str] | None = None) -> Iterator[None]:
    """Inside a SLURM job, a block that `SIGNAL` ends by requeueing the job; elsewhere a plain block.

    Raises:
        MMLError: when the job has already been requeued `MML_MAX_REQUEUES` times."""
    variables = os.environ if environment is None else environment
    job = variables.get("SLURM_JOB_ID")
    if job is None:
        yield
        return
    restarts = int(variables.get("SLURM_RESTART_COUNT", "0") or 0)
    limit = int(variables.get("MML_MAX_REQUEUES", "20"))
    before = signal.signal(SIGNAL, _stop)
    logger.info(f"SLURM job {job} (restart {restarts}): {SIGNAL.name} requeues it")
    try:
        yield
    except Preempted as stop:
        if restarts >= limit:
            raise MMLError(
                f"SLURM job {job}: {stop} after {restarts} requeues (the most allowed); not requeued"
            ) from None
        logger.info(f"SLURM job {job}: {stop}: requeueing; the run resumes from its last finished epoch")
        commands.requeue(job)
    finally:
        signal.signal(SIGNAL, before)
