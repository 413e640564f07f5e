"""The executors that train an invocation's runs on this machine: `InProcess` (one run after another, or every rank
of a torchrun job together) and `DevicePool` (independent runs side by side, one per device: `mml.schedule`).

Both train every missing run before returning, so the tables are written right after; the SLURM executor
(`mml.slurm.executor`) submits jobs instead. Each implements `mml.reproduce.Executor`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass

import torch

from mml import distributed
from mml.errors import MMLError
from mml.execution import Execution
from mml.reproduce import Invocation, Outcome
from mml.runner import execute

MAX_CPU_RUNS = 8  # runs side by side on a CPU by default: each is a process with its own PyTorch and data buffers


@dataclass(frozen=True)
class InProcess:
    """Train in this process, one run at a time (under torchrun: every rank takes its part of each run).

    `only`: the runs whose jobs to do (see `mml.runner.execute`); `prepare_only`: prepare the data and stop."""

    run: Execution
    only: Collection[str] | None = None
    prepare_only: bool = False

    def execute(self, invocation: Invocation) -> Outcome:
        unknown = sorted(set(self.only or ()) - set(invocation.run_ids()))
        if unknown:
            raise MMLError(
                f"run {', '.join(unknown)} is not in this plan: mml's code or the command's arguments changed since "
                "its job was submitted; submit the jobs again"
            )
        request, store = invocation.request, invocation.store
        summary = execute(invocation.setups, store, self.run, request.force, (), self.only, self.prepare_only)
        complete = self.only is None and not self.prepare_only
        return Outcome(needed=summary.needed, trained=summary.trained, complete=complete)


@dataclass(frozen=True)
class DevicePool:
    """Train independent runs side by side, one per device of `devices` (`cuda:0,cuda:1` or `cpu,cpu`), each in its
    own process, each run after the runs it starts from."""

    run: Execution
    devices: Sequence[str]

    def __post_init__(self) -> None:
        if not self.devices:
            raise MMLError("a device pool needs at least one device")

    def execute(self, invocation: Invocation) -> Outcome:
        summary = execute(invocation.setups, invocation.store, self.run, invocation.request.force, self.devices)
        return Outcome(needed=summary.needed, trained=summary.trained)


def default_device() -> str:
    """`cuda` when PyTorch sees a GPU, else `cpu` (asked when a command runs, not when its options are parsed)."""
    return "cuda" if torch.cuda.is_available() else "cpu"


def default_devices(device: str, cpus: int) -> list[str]:
    """Where runs train without `--devices`: on a CPU of several cores, one run per core at once (at most
    `MAX_CPU_RUNS`), since each run trains on `CPU_THREADS` threads whatever the machine, so running them side by
    side changes no result and uses the cores one run alone cannot; elsewhere (a GPU, torchrun) one run at a time."""
    if device != "cpu" or distributed.active() or cpus < 2:
        return []
    return ["cpu"] * min(cpus, MAX_CPU_RUNS)
