"""`reproduce`: plan the runs some paper tables need, have an executor train what is missing, write the tables.

The library function behind `mml reproduce` (the command only parses its arguments into a `Request`):

    from mml.reproduce import Request, reproduce
    from mml.executors import InProcess
    reproduce(Request(tables=("table7",), profile="smoke"), InProcess(Execution()))

Where the runs train is the executor's business (`mml.executors`): in this process, on a pool of local devices, or as
SLURM jobs (`mml.slurm`). An executor that trains everything before returning lets `reproduce` write the tables at
once; one that only submits jobs leaves them to its last job (and to any later invocation, from the store).
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from mml import distributed
from mml.data.datasets import VideoDataset, open_dataset
from mml.errors import MMLError
from mml.plan import Plan, plan_tables
from mml.spec import ALL_GROUP, SETUPS, Profile, TableSpec, load_profile, load_table, table_path, table_paths
from mml.store import Store

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Request:
    """What to reproduce, from which specs and data, into which store and output folder.

    `tables`: table ids (table7, 07, 7), groups (`all`, `related`); `overrides`: `KEY=VALUE` changes of the profile
    (`--set`); `checkpoints`: `[TABLE:]RUN=FILE[,FILE]` runs loaded from weight files; `seeds`: the seeds to plan
    instead of the profile's; `command`: the command line the tables record as theirs."""

    tables: tuple[str, ...]
    profile: str = "smoke"
    specs: Path = Path("reproductions")
    store: Path = Path("store")
    out: Path = Path("tables")
    cache: Path | None = None
    data: Path | None = None
    charades_data: Path | None = None
    imagenet: Path | None = None
    kinetics: Path | None = None
    overrides: tuple[str, ...] = ()
    checkpoints: tuple[str, ...] = ()
    seeds: tuple[int, ...] | None = None
    force: bool = False
    progress: bool = True
    command: str = "mml reproduce"


@dataclass(frozen=True)
class Setup:
    """One dataset's part of an invocation (sthv2, Charades or long videos): its profile, tables, dataset, plan, the
    weight file of its "from ImageNet" init (see `mml.plan.Resolver`)."""

    scale: Profile
    tables: tuple[TableSpec, ...]
    dataset: VideoDataset
    plan: Plan
    pretrained_path: Path | None = None


@dataclass(frozen=True)
class Invocation:
    """A planned request: the profile, the chosen tables in the order asked, one `Setup` per dataset, the store."""

    request: Request
    profile: Profile
    tables: tuple[TableSpec, ...]
    setups: tuple[Setup, ...]
    store: Store

    def run_ids(self) -> list[str]:
        """Every planned run, each setup's in dependency order."""
        return [rid for setup in self.setups for rid in setup.plan.order()]


@dataclass(frozen=True)
class Outcome:
    """What an executor did: how many runs the plan needs, which it trained (or loaded) here, which it handed to a
    scheduler as jobs, and whether every run is now in the store (then the tables can be written)."""

    needed: int
    trained: list[str] = field(default_factory=list)
    submitted: list[str] = field(default_factory=list)
    complete: bool = True


def plan(request: Request) -> Invocation:
    """Open each chosen table's dataset (a synthetic one is generated on first use) and plan its runs."""
    paths = table_paths(request.specs, list(request.tables))
    tables = with_checkpoints([load_table(path) for path in paths], request.checkpoints)
    profile = load_profile(request.specs / "profiles.toml", request.profile, list(request.overrides))
    if request.seeds is not None:
        profile = with_seeds(profile, request.seeds)
    store = Store(request.store, request.cache)
    setups = []
    for name in SETUPS:
        chosen = tuple(table for table in tables if table.setup == name)
        if chosen:
            scale = profile.setup(name)
            charades = name == "charades"
            data, pretrained = (
                (request.charades_data, request.kinetics) if charades else (request.data, request.imagenet)
            )
            progress = request.progress and distributed.rank() == 0
            dataset = distributed.rank0_first(
                functools.partial(open_dataset, scale.dataset, data, store.root / "data", progress)
            )
            setups.append(Setup(scale, chosen, dataset, plan_tables(chosen, scale, dataset, pretrained), pretrained))
    return Invocation(request, profile, tuple(tables), tuple(setups), store)


def with_seeds(profile: Profile, seeds: Sequence[int]) -> Profile:
    """The profile with `seeds` in place of its own, in its setups (Charades, long videos) too."""
    if not seeds or any(seed < 0 for seed in seeds) or len(set(seeds)) != len(seeds):
        raise MMLError(f"--seeds {','.join(map(str, seeds))}: expected distinct non-negative integers")
    chosen = tuple(seeds)
    charades = dataclasses.replace(profile.charades, seeds=chosen) if profile.charades else None
    long = dataclasses.replace(profile.long, seeds=chosen) if profile.long else None
    return dataclasses.replace(profile, seeds=chosen, charades=charades, long=long)


def with_checkpoints(tables: list[TableSpec], options: Sequence[str]) -> list[TableSpec]:
    """The tables with the runs named by `[TABLE:]RUN=FILE[,FILE]` loaded from those files (a RUN without TABLE: in
    every chosen table that has it)."""
    for option in options:
        target, equals, files = option.partition("=")
        table_id, _, run = target.rpartition(":")
        if not equals or not run or not files:
            raise MMLError(f"--checkpoint {option!r}: expected [TABLE:]RUN=FILE[,FILE]")
        chosen = [t for t in tables if run in t.runs and (not table_id or t.id == table_path(Path(), table_id).stem)]
        if not chosen:
            raise MMLError(f"--checkpoint {option!r}: no chosen table has a run {run!r}")
        paths = [Path(name) for name in files.split(",")]
        tables = [
            dataclasses.replace(t, runs={**t.runs, run: t.runs[run].loaded_from(paths)}) if t in chosen else t
            for t in tables
        ]
    return tables


def reproduce(request: Request, executor: Executor) -> Outcome:
    """Plan `request`, let `executor` train (or submit) what is missing, and write the tables once every run is in
    the store; returns what the executor did."""
    started = time.monotonic()
    invocation = plan(request)
    outcome = executor.execute(invocation)
    minutes = (time.monotonic() - started) / 60
    if not outcome.complete:
        logger.info(
            f"{len(outcome.submitted)} jobs submitted for {outcome.needed} runs; the tables are written by the last "
            "job, or by this command again once they are done"
        )
        return outcome
    written = write_tables(invocation) if distributed.rank() == 0 else []
    trained = len(outcome.trained)
    done = f"{outcome.needed} runs needed, {trained} trained or loaded, {outcome.needed - trained} reused"
    logger.info(f"Done in {minutes:.1f} min: {done} from {invocation.store.root}.")
    logger.info("Tables: " + ", ".join(str(p) for p in written))
    return outcome


def write_tables(invocation: Invocation) -> list[Path]:
    """Write every chosen table from the store (and REPORT.md when the request asked for `all`)."""
    from mml.report.build import write_outputs, write_summary  # matplotlib and pandas: only when tables are written
    from mml.report.export import write_records
    from mml.report.results import StoredResults

    request, out = invocation.request, invocation.request.out / invocation.profile.name
    written, reports = [], {}
    for setup in invocation.setups:
        for table in setup.tables:
            results = StoredResults(invocation.store, setup.plan, setup.scale, table)
            reports[table.id], paths = write_outputs(results, request.command, out)
            written += paths
    written += write_records([reports[table.id] for table in invocation.tables], out)  # one family for the p-values
    if ALL_GROUP in request.tables:  # every table of the invocation on one page
        written.append(write_summary([reports[table.id] for table in invocation.tables], out))
    return written


class Executor(Protocol):
    """Where the runs of an invocation train: `execute` trains (or submits) every run the plan needs that is not in
    the store, with its evaluations, and says what it did (`mml.executors`, `mml.slurm`)."""

    def execute(self, invocation: Invocation) -> Outcome: ...
