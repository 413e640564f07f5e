"""Running independent runs of a DAG at the same time, one per device (e.g. one per GPU of a machine).

Each run starts as soon as every run it depends on has finished and a device is free; it runs in its own spawned
process, so runs on different GPUs share nothing but the store (whose per-run locks and atomic writes make that
safe).
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TypeVar

from mml import logs
from mml.errors import MMLError

T = TypeVar("T")


def run_on_devices(
    order: Sequence[str],
    upstream: Mapping[str, set[str]],
    devices: Sequence[str],
    work: Callable[[str, str], T],
) -> dict[str, T]:
    """Call `work(run id, device)` for every run of `order` in a pool of `len(devices)` processes, each run after
    its `upstream` runs (those not in `order` count as done) and on a device no other run is using; returns each
    run's result.

    `work` must be picklable (a module-level function or a `functools.partial` of one).

    Raises:
        The first run's failure, once the runs already started have finished (no new one starts): our bad-input
        errors (`MMLError`) as they are, for a one-line report; anything else (a bug, out of memory) with the
        worker's traceback attached and a note naming the run and the device.
    """
    if not devices:
        raise ValueError("run_on_devices needs at least one device")
    waiting = list(order)
    finished: dict[str, T] = {}
    free = list(devices)
    running: dict[Future, tuple[str, str]] = {}
    failure: BaseException | None = None  # the first run's failure
    context = multiprocessing.get_context("spawn")
    # Spawned workers start without the command's logging setup: each sets it up, so runs report as in one process.
    with ProcessPoolExecutor(len(devices), mp_context=context, initializer=logs.configure) as pool:
        while waiting or running:
            ready = [rid for rid in waiting if all(up in finished or up not in order for up in upstream[rid])]
            while ready and free and failure is None:
                rid, device = ready.pop(0), free.pop(0)
                waiting.remove(rid)
                running[pool.submit(work, rid, device)] = (rid, device)
            if not running:
                if waiting and failure is None:
                    raise MMLError(f"runs {', '.join(waiting)} depend on runs that never finish")
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                rid, device = running.pop(future)
                free.append(device)
                error = future.exception()
                if error is not None:
                    if failure is None and not isinstance(error, MMLError):
                        error.add_note(f"(run {rid} on {device})")
                    failure = failure or error
                else:
                    finished[rid] = future.result()
            if failure is not None:
                waiting.clear()
    if failure is not None:
        raise failure
    return finished
