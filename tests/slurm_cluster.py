"""A real one-node SLURM cluster on localhost for the tests marked `slurm` (`nox -s slurm`).

`running_cluster(folder)` writes a slurm.conf into `folder` (one node of 2 CPUs, no accounting, short timeouts and
requeue delay), starts munged when none runs, then slurmctld and slurmd in the foreground, waits until the node is
idle and yields the environment SLURM's commands need (SLURM_CONF set). On exit it cancels the cluster's jobs and
stops exactly the daemons it started, by their process; it removes nothing (the logs stay in `folder`)."""

import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

logger = logging.getLogger(__name__)

MUNGE_RUN = Path("/run/munge")
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
LOG_TAIL_LINES = 30

# Job state from squeue / scontrol (accounting is off, so sacct knows nothing); MinJobAge keeps a finished job
# visible for 300 s. cred_expire is also how long a requeued job waits before it may start again (default 120 s).
CONF = """\
ClusterName=mmltest
SlurmctldHost=localhost
SlurmUser=root
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
AuthType=auth/munge
AuthInfo=cred_expire=5
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd.pid
SlurmctldLogFile={folder}/slurmctld.log
SlurmdLogFile={folder}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerParameters=sched_interval=2
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
MinJobAge=300
JobRequeue=1
KillWait=5
MessageTimeout=5
SlurmctldTimeout=10
SlurmdTimeout=30
NodeName=localhost CPUs=2 RealMemory=20000 State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


class SlurmClusterError(RuntimeError):
    """The test cluster did not start; the message carries the daemons' log tails."""


def write_conf(folder: Path) -> Path:
    """slurm.conf for a cluster whose state, spool, pid and log files all live in `folder`, on two free ports."""
    for name in ("state", "spool"):
        (folder / name).mkdir(parents=True, exist_ok=True)
    ctld_port, slurmd_port = _free_port(), _free_port()
    while slurmd_port == ctld_port:
        slurmd_port = _free_port()
    conf = folder / "slurm.conf"
    conf.write_text(CONF.format(folder=folder, ctld_port=ctld_port, slurmd_port=slurmd_port))
    return conf


@contextmanager
def running_cluster(folder: Path) -> Iterator[dict[str, str]]:
    """Start the cluster described by `write_conf(folder)`; yield its environment; stop what was started."""
    conf = write_conf(folder)
    environment = {**os.environ, "SLURM_CONF": str(conf)}
    logs = [folder / "slurmctld.log", folder / "slurmd.log"]
    with ExitStack() as stack:
        if not _munged_runs():
            MUNGE_RUN.mkdir(parents=True, exist_ok=True)
            munged = ["munged", "--foreground", "--force", f"--seed-file={folder}/munged.seed"]
            process = stack.enter_context(_daemon(munged, folder / "munged.out", environment))  # logs there
            _wait_for_munge(process, folder / "munged.out")
            logger.info("started munged: it stops with the cluster")
        processes = [
            stack.enter_context(_daemon(["slurmctld", "-D", "-f", str(conf)], folder / "slurmctld.out", environment)),
            stack.enter_context(_daemon(["slurmd", "-D", "-f", str(conf)], folder / "slurmd.out", environment)),
        ]
        stack.callback(_cancel_jobs, environment)  # runs first on exit: no job outlives its slurmd
        _wait_until_idle(environment, processes, [*logs, *folder.glob("*.out")])
        yield environment


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return int(probe.getsockname()[1])


def _munged_runs() -> bool:
    """Whether any munged process runs on this machine (a system one serves our daemons as well)."""
    for comm in Path("/proc").glob("[0-9]*/comm"):
        try:
            if comm.read_text().strip() == "munged":
                return True
        except OSError:  # the process ended while we looked
            continue
    return False


def _wait_for_munge(process: subprocess.Popen[bytes], log: Path) -> None:
    """Wait until munged answers: a credential can be encoded."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while subprocess.run(["munge", "-n"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode != 0:
        if process.poll() is not None:
            raise SlurmClusterError(f"munged exited with {process.returncode}\n{_tails([log])}")
        if time.monotonic() > deadline:
            raise SlurmClusterError(f"munged does not answer after {START_TIMEOUT_S:.0f} s\n{_tails([log])}")
        time.sleep(0.2)


@contextmanager
def _daemon(command: list[str], output: Path, environment: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    """Run `command` (a daemon kept in the foreground) until the block ends, then stop it and wait for it."""
    with output.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=environment)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            logger.warning("%s ignored SIGTERM for %.0f s: killing it", command[0], STOP_TIMEOUT_S)
            process.kill()
            process.wait()


def _wait_until_idle(environment: dict[str, str], processes: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    state = ""
    while time.monotonic() < deadline:
        for process in processes:
            if process.poll() is not None:
                raise SlurmClusterError(f"{process.args[0]} exited with {process.returncode}\n{_tails(logs)}")
        query = subprocess.run(["sinfo", "-h", "-o", "%t"], env=environment, capture_output=True, text=True)
        state = query.stdout.strip() or query.stderr.strip()
        if state == "idle":
            return
        time.sleep(0.5)
    raise SlurmClusterError(f"the node is not idle after {START_TIMEOUT_S:.0f} s (sinfo: {state!r})\n{_tails(logs)}")


def _cancel_jobs(environment: dict[str, str]) -> None:
    """Cancel every job still pending or running on the cluster and wait until none runs."""
    active = ["squeue", "-h", "-o", "%i", "-t", "PENDING,RUNNING,SUSPENDED,COMPLETING,CONFIGURING,REQUEUED"]
    deadline = time.monotonic() + STOP_TIMEOUT_S
    while time.monotonic() < deadline:
        jobs = subprocess.run(active, env=environment, capture_output=True, text=True).stdout.split()
        if not jobs:
            return
        subprocess.run(["scancel", *jobs], env=environment, capture_output=True)
        time.sleep(0.5)
    logger.warning("jobs still active on the test cluster after %.0f s", STOP_TIMEOUT_S)


def _tails(logs: list[Path]) -> str:
    parts = []
    for log in logs:
        if log.exists():
            lines = log.read_text(errors="replace").splitlines()[-LOG_TAIL_LINES:]
            parts.append(f"--- {log} (last {len(lines)} lines)\n" + "\n".join(lines))
    return "\n".join(parts) or "(no daemon log was written)"
