"""What a plan's runs are doing, for `mml status` and `mml reproduce --dry-run`.

A run is `done` (in the store), `queued` or `running` (its SLURM job, as the store's ledger names it and SLURM sees
it), `failed` (its job ended without it: the log says why; the next invocation resubmits it), `partial` (a
checkpoint waits to be resumed) or `missing`. A running run shows its epoch and ETA from the `progress.json` its
trainer writes after each epoch (`mml.progress`), and where its log and TensorBoard event files are.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from mml.errors import MMLError
from mml.price import TRAINING_SETTING, load_throughputs, price_lines, price_plan
from mml.progress import LOG_FILE, PROGRESS_FILE, TENSORBOARD_DIR, duration
from mml.reproduce import Invocation
from mml.slurm import commands
from mml.slurm.ledger import Entry, Ledger
from mml.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunStatus:
    """One run's state, its SLURM job (if any), progress and files."""

    run_id: str
    state: str
    job: Entry | None = None
    job_state: commands.JobState | None = None
    progress: dict | None = None
    folder: Path | None = None

    def line(self, names: list[str]) -> str:
        words = [f"{self.state:8}", self.run_id]
        if self.job is not None and self.job_state is not None:
            words.append(f"job {self.job.job} ({self.job_state.state.lower()}, {duration(self.job_state.elapsed_s)})")
        if self.progress and self.state != "done":
            eta = duration(self.progress["eta_s"])
            words.append(f"epoch {self.progress['epoch']}/{self.progress['epochs']}, ETA {eta}")
        return "  ".join(words) + f"  [{', '.join(names)}]"

    def files(self) -> list[str]:
        """Where to look: the job's log (for a job that is not done), the run's log and TensorBoard events."""
        shown = []
        if self.job is not None and self.state != "done":
            shown.append(f"    job log: {self.job.log}")
        if self.folder is not None:
            for label, name in (("training log", LOG_FILE), ("tensorboard", TENSORBOARD_DIR)):
                if (self.folder / name).exists():
                    shown.append(f"    {label}: {self.folder / name}")
        return shown


def run_statuses(invocation: Invocation) -> dict[str, RunStatus]:
    """The status of every planned run (one `squeue` call for the jobs the ledger names)."""
    store, ledger = invocation.store, Ledger(invocation.store)
    rids = invocation.run_ids()
    entries = {rid: ledger.read(rid) for rid in rids}
    jobs = [entry.job for rid, entry in entries.items() if entry and not store.is_done(rid)]
    try:
        states = commands.job_states(jobs)
    except MMLError as err:
        logger.warning(f"the SLURM jobs' states are unknown: {err}")
        states = {job: commands.JobState("UNKNOWN") for job in jobs}
    return {rid: _status(store, rid, entries[rid], states) for rid in rids}


def _status(store: Store, rid: str, entry: Entry | None, states: dict[str, commands.JobState]) -> RunStatus:
    stored = store.status(rid)
    folder = store.run_dir(rid) if stored == "done" else store.partial_dir(rid)
    progress_file = folder / PROGRESS_FILE
    progress = json.loads(progress_file.read_text()) if progress_file.is_file() else None
    present = folder if folder.is_dir() else None
    if stored == "done" or entry is None or entry.job not in states:
        return RunStatus(rid, stored, entry if stored != "done" else None, None, progress, present)
    job_state = states[entry.job]
    if job_state.state == "UNKNOWN":
        state = stored
    elif job_state.active:
        state = "running" if job_state.state in ("RUNNING", "COMPLETING", "CONFIGURING") else "queued"
    else:
        state = "failed"
    return RunStatus(rid, state, entry, job_state, progress, present)


def status_lines(invocation: Invocation) -> list[str]:
    """`mml status`: a line per run (and where its files are), then the count of each state."""
    statuses = run_statuses(invocation)
    names = {rid: names for setup in invocation.setups for rid, names in setup.plan.names.items()}
    lines = []
    for rid, status in statuses.items():
        lines.append(status.line(names[rid]))
        lines += status.files()
    counts = Counter(status.state for status in statuses.values())
    lines.append(f"{len(statuses)} runs: " + ", ".join(f"{count} {state}" for state, count in sorted(counts.items())))
    lines.append(f"(at {time.strftime('%Y-%m-%d %H:%M:%S')}, store {invocation.store.root})")
    return lines


def dry_run_lines(
    invocation: Invocation, specs: Path, gpu: str, setting: str = TRAINING_SETTING, seed_sd: float | None = None
) -> list[str]:
    """`--dry-run`: each run as done / partial / missing with what it trains, then each setup's price on `gpu`
    (throughput figures from `specs`' throughput.toml, the trainer's speed `setting`, see `mml.price`)."""
    store = invocation.store
    lines = []
    for setup in invocation.setups:
        for rid in setup.plan.order():
            config = setup.plan.runs[rid]
            models = " + ".join(f"{m.modality} from {m.init}" for m in config.models)
            names = ", ".join(setup.plan.names[rid])
            lines.append(f"{store.status(rid):8} {rid}  {config.method}: {models}  [{names}]")
    entries = load_throughputs(specs)
    for setup in invocation.setups:
        price = price_plan(setup.plan, setup.dataset, setup.scale, entries, gpu, setting, seed_sd, store.cache_dir())
        lines += price_lines(price)
    return lines
