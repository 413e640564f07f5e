"""`mml reproduce ... --launcher slurm`: every missing run of the plan as one SLURM job, SLURM doing the scheduling.

The jobs of one invocation:
- a data job (`--prepare-only`, CPUs only) that decodes the frames and flow the runs read, once, before them;
- one job per run that needs training or evaluation (`--run <id>`), after the data job and the jobs of the runs it
  starts from (`afterok`; a failed parent cancels its children); a run over several GPUs or nodes starts torchrun
  inside its job (one task per node, `srun`);
- a table job, after all of them, that writes the tables from the store.

Each job runs this same command again (the launcher's options left out), so it plans the same runs and refuses one
whose id it computes otherwise. The store's ledger (`mml.slurm.ledger`) records each job; a later invocation adopts
the jobs SLURM still has queued or running, resubmits a run whose job ended without it (up to `max_failures` times,
then reports its log), and writes the tables itself once every run is in the store.

A run's job saves a checkpoint after every epoch. SLURM signals a job `signal_delay_s` before its time limit (or an
operator with `scancel --signal=USR2 --batch`): the job requeues itself and, started again under the same id, resumes
from the last finished epoch (`mml.slurm.requeue`).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import shlex
import sys
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

from mml.errors import MMLError
from mml.reproduce import Invocation, Outcome
from mml.runner import pending_work
from mml.slurm import commands
from mml.slurm.ledger import Entry, Ledger

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SlurmOptions:
    """Where and with what the jobs run: sbatch's partition, account and time limit (`HH:MM:SS` or `D-HH:MM:SS`),
    GPUs per node and nodes of each run, CPUs per task, extra sbatch options (`--qos=high`, `--constraint=a100`), how
    long before the time limit a job is signalled to requeue, how often a run's job may end without it before it is
    reported instead of resubmitted, and how often a job may requeue itself."""

    partition: str | None = None
    account: str | None = None
    time: str | None = None
    gpus_per_run: int = 1
    nodes_per_run: int = 1
    cpus_per_run: int = 8
    extra: tuple[str, ...] = ()
    signal_delay_s: int = 120
    max_failures: int = 3
    max_requeues: int = 20

    def __post_init__(self) -> None:
        for name in ("gpus_per_run", "nodes_per_run", "cpus_per_run", "signal_delay_s", "max_failures"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < (0 if name == "gpus_per_run" else 1):
                raise MMLError(f"slurm option {name}: expected a positive integer, got {value!r}")


# The command-line flags of the SLURM options (None: not given, the [slurm] table's value or the default holds).
_FLAGS = {
    "--partition": "partition",
    "--account": "account",
    "--time": "time",
    "--gpus-per-run": "gpus_per_run",
    "--nodes-per-run": "nodes_per_run",
    "--cpus-per-run": "cpus_per_run",
    "--sbatch-option": "extra",
}
# Options of the submitting command that its jobs do not repeat: each job is one run, in its own process.
_NOT_REPEATED = {"--launcher", "--slurm-config", "--devices", "--shards", *_FLAGS}


def add_slurm_arguments(parser: argparse.ArgumentParser, runs: bool = True) -> None:
    """`--launcher` and the SLURM options of `mml reproduce` (`runs`) or `mml prepare`; `--run` and
    `--prepare-only` are the jobs' own, `--shards` is prepare's."""
    group = parser.add_argument_group("SLURM (--launcher slurm)")
    group.add_argument(
        "--launcher",
        choices=("local", "slurm"),
        default="local",
        help="local: work here (default); slurm: submit the work as SLURM jobs and return",
    )
    group.add_argument(
        "--slurm-config", type=Path, metavar="FILE", help="a TOML file whose [slurm] table sets the options below"
    )
    group.add_argument("--partition", help="sbatch --partition")
    group.add_argument("--account", help="sbatch --account")
    group.add_argument("--time", metavar="LIMIT", help="sbatch --time of each run's job (or shard), e.g. 24:00:00")
    group.add_argument("--cpus-per-run", type=int, metavar="N", help="CPUs per task of a job (default 8)")
    group.add_argument(
        "--sbatch-option", action="append", metavar="OPTION", help="an extra sbatch option, e.g. --qos=high"
    )
    if runs:
        group.add_argument("--gpus-per-run", type=int, metavar="N", help="GPUs per node of a run (default 1)")
        group.add_argument("--nodes-per-run", type=int, metavar="N", help="nodes of a run (default 1)")
        group.add_argument("--run", help=argparse.SUPPRESS)  # a job's run: its training and evaluations only
        group.add_argument("--prepare-only", action="store_true", help=argparse.SUPPRESS)  # the data job
    else:
        group.add_argument(
            "--shards", type=int, default=1, metavar="N", help="a job array of N tasks, each a --shard (default 1)"
        )


def slurm_options(args: argparse.Namespace) -> SlurmOptions:
    """The options of a `[slurm]` table in `--slurm-config` (if given), each overridden by its flag."""
    values: dict[str, object] = {}
    if args.slurm_config is not None:
        try:
            table = tomllib.loads(args.slurm_config.read_text()).get("slurm", {})
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise MMLError(f"{args.slurm_config}: cannot read the SLURM options ({err})") from None
        known = {item.name for item in fields(SlurmOptions)}
        unknown = sorted(set(table) - known)
        if unknown:
            raise MMLError(
                f"{args.slurm_config}: [slurm] has unknown keys {', '.join(unknown)}; known: {sorted(known)}"
            )
        values.update(table)
        if "extra" in values:
            values["extra"] = tuple(values["extra"])  # type: ignore[arg-type]
    for flag, name in _FLAGS.items():
        given = getattr(args, flag[2:].replace("-", "_"), None)  # prepare has no GPU options
        if given is not None:
            values[name] = tuple(given) if name == "extra" else given
    try:
        return SlurmOptions(**values)  # type: ignore[arg-type]
    except (TypeError, MMLError) as err:
        raise MMLError(f"{args.slurm_config or 'slurm options'}: {err}") from None


def job_arguments(arguments: Sequence[str]) -> list[str]:
    """The arguments of `mml reproduce` that its jobs repeat: all but the launcher's own options."""
    if "--force" in arguments:
        raise MMLError(
            "--force with --launcher slurm: a requeued job would start its run again; "
            "delete the runs from the store instead"
        )
    if "--dry-run" in arguments:
        raise MMLError("--dry-run with --launcher slurm: a dry run submits nothing; leave --launcher out")
    kept: list[str] = []
    skip = False
    for word in arguments:
        if skip:
            skip = False
            continue
        name, equals, _ = word.partition("=")
        if name in _NOT_REPEATED:
            skip = not equals
            continue
        kept.append(word)
    return kept


@dataclass
class SlurmExecutor:
    """Submits an invocation's missing runs as SLURM jobs (see the module docstring) and returns without waiting."""

    options: SlurmOptions
    arguments: list[str]
    python: str = sys.executable
    directory: Path = field(default_factory=Path.cwd)  # where the jobs start: the submitting command's folder

    def execute(self, invocation: Invocation) -> Outcome:
        store, ledger = invocation.store, Ledger(invocation.store)
        needed, parents = 0, {}
        for setup in invocation.setups:
            order = setup.plan.order()
            needed += len(order)
            todo, pending = pending_work(setup.plan, order, store, False, setup.dataset.regions)
            work = set(todo) | {rid for rid, _ in pending}
            for rid in order:
                if rid in work:
                    parents[rid] = [up for up in setup.plan.runs[rid].upstream if up in work]
        if not parents:
            return Outcome(needed=needed)
        digest = hashlib.sha256("\0".join(self.arguments).encode()).hexdigest()[:12]
        keys = [f"prepare-{digest}", *parents, f"tables-{digest}"]
        submission = Submission.of(ledger, keys, self.options.max_failures)
        prepare = None
        if any(not submission.active(rid) for rid in parents):  # new run jobs read the data this job prepares
            prepare = submission.ensure(keys[0], self._script(keys[0], ["--prepare-only"], ledger), [])
        jobs: dict[str, str] = {}
        blocked: list[str] = []
        for rid, ups in parents.items():
            if any(up not in jobs for up in ups):
                blocked.append(rid)
                continue
            after = [jobs[up] for up in ups] + ([prepare] if prepare else [])
            job = submission.ensure(rid, self._run_script(rid, ledger), after, run=True)
            if job is None:
                blocked.append(rid)
            else:
                jobs[rid] = job
        if blocked:
            failed = [submission.failed[rid] for rid in blocked if rid in submission.failed]
            raise MMLError(
                f"{len(blocked)} runs not submitted: " + "; ".join(failed) + " (the others start from these); "
                f"fix the cause, then delete their entries in {ledger.folder} to try again"
            )
        tables = submission.ensure(keys[-1], self._script(keys[-1], [], ledger), list(jobs.values()))
        logger.info(
            f"SLURM: {len(submission.submitted)} jobs submitted, {len(submission.adopted)} already queued or running "
            f"({len(parents)} runs to train or evaluate); tables by job {tables}; `mml status` lists them"
        )
        return Outcome(needed=needed, submitted=submission.submitted, complete=False)

    def _run_script(self, rid: str, ledger: Ledger) -> str:
        options = self.options
        command = ["-m", "mml", "reproduce", *self.arguments, "--run", rid]
        return batch_script(options, rid, ledger.log(rid), self.python, command, self.directory, requeue=True)

    def _script(self, key: str, extra: list[str], ledger: Ledger) -> str:
        """The batch script of the invocation's data or table job: CPUs only, no time limit of a run's."""
        command = ["-m", "mml", "reproduce", *self.arguments, *extra]
        return batch_script(self.options, key, ledger.log(key), self.python, command, self.directory, gpus=0, nodes=1)


def batch_script(
    options: SlurmOptions,
    key: str,
    log: Path,
    python: str,
    command: list[str],
    directory: Path,
    gpus: int | None = None,
    nodes: int | None = None,
    requeue: bool = False,
    array: int | None = None,
    shell_words: str = "",
) -> str:
    """The batch script of job `key` (of `array` tasks, if given): sbatch options, then `python command` in
    `directory` — under torchrun, one task per node, when the job has several GPUs or nodes (default: a run's) —
    followed by `shell_words` as they are, for the job's shell to expand (`$SLURM_ARRAY_TASK_ID`)."""
    gpus = options.gpus_per_run if gpus is None else gpus
    nodes = options.nodes_per_run if nodes is None else nodes
    lines = [
        "#!/bin/bash",
        f"#SBATCH --job-name=mml-{key}",
        f"#SBATCH --output={log}",
        "#SBATCH --open-mode=append",
        f"#SBATCH --nodes={nodes}",
        "#SBATCH --ntasks-per-node=1",
        f"#SBATCH --cpus-per-task={options.cpus_per_run}",
    ]
    lines += [f"#SBATCH --array=0-{array - 1}"] if array else []
    lines += [f"#SBATCH --gpus-per-node={gpus}"] if gpus else []
    lines += [f"#SBATCH --partition={options.partition}"] if options.partition else []
    lines += [f"#SBATCH --account={options.account}"] if options.account else []
    lines += [f"#SBATCH --time={options.time}"] if options.time and (requeue or array) else []
    distributed = gpus > 1 or nodes > 1
    if requeue:
        # Single process: the signal reaches the batch shell, which is our process (exec). Under torchrun it goes
        # to the job step's tasks; their checkpoints per epoch are what a requeue resumes from.
        lines += ["#SBATCH --requeue", f"#SBATCH --signal={'' if distributed else 'B:'}USR2@{options.signal_delay_s}"]
    lines += [f"#SBATCH {option}" for option in options.extra]
    if distributed:
        head = '$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)'
        launch = (
            f"srun --kill-on-bad-exit=1 {shlex.quote(python)} -m torch.distributed.run "
            f"--nnodes=$SLURM_JOB_NUM_NODES --nproc-per-node={gpus} --rdzv-backend=c10d "
            f'--rdzv-endpoint="{head}:$((29500 + SLURM_JOB_ID % 1000))" --rdzv-id=$SLURM_JOB_ID ' + shlex.join(command)
        )
    else:
        launch = shlex.join([python, *command])
    launch += f" {shell_words}" if shell_words else ""
    lines += [
        f"export MML_MAX_REQUEUES={options.max_requeues}",
        f"cd {shlex.quote(str(directory))}",
        f"exec {launch}",
    ]
    return "\n".join(lines) + "\n"


@dataclass
class Submission:
    """One invocation's submissions: adopts a key's job that SLURM still runs, else submits a new one."""

    ledger: Ledger
    entries: dict[str, Entry | None]
    states: dict[str, commands.JobState]
    max_failures: int

    @classmethod
    def of(cls, ledger: Ledger, keys: Sequence[str], max_failures: int) -> Submission:
        """The submissions of `keys`: their ledger entries, and SLURM's view of those jobs (one query)."""
        entries = {key: ledger.read(key) for key in keys}
        states = commands.job_states([entry.job for entry in entries.values() if entry])
        return cls(ledger, entries, states, max_failures)

    def __post_init__(self) -> None:
        self.submitted: list[str] = []
        self.adopted: list[str] = []
        self.failed: dict[str, str] = {}  # key → why it is not submitted again

    def active(self, key: str) -> bool:
        """Whether SLURM still has the job of `key` queued or running."""
        entry = self.entries[key]
        return entry is not None and self.states[entry.job].active

    def ensure(self, key: str, script: str, after: list[str], run: bool = False, array: bool = False) -> str | None:
        """The job of `key`: its queued or running job, or a new one after the jobs `after` (a job array: its tasks
        log to one file each). A run's job that ended while the run still needs work counts as a failure; after
        `max_failures` the run is not submitted (None)."""
        entry = self.entries[key]
        if entry is not None and self.active(key):
            self.adopted.append(key)
            return entry.job
        failures, counted = (entry.failures, entry.counted) if entry else (0, "")
        if run and entry is not None and counted != entry.job:
            failures, counted = failures + 1, entry.job
            state = self.states[entry.job].state
            logger.warning(f"run {key}: job {entry.job} ended ({state}) without the run; its log: {entry.log}")
        if entry is not None and failures >= self.max_failures:
            self.ledger.write(key, Entry(entry.job, entry.log, failures, counted))
            self.failed[key] = f"run {key} failed {failures} times, last log {entry.log}"
            return None
        self.ledger.log(key).parent.mkdir(parents=True, exist_ok=True)  # sbatch fails a job it cannot log
        job = commands.submit(script, after)
        log = self.ledger.log(key, f"{job}_*" if array else job)
        self.ledger.write(key, Entry(job, str(log), failures, counted))
        self.submitted.append(key)
        return job
