"""Several processes (GPUs, nodes) started by `torchrun`: the process group, and where each run trains in it.

A run of M models in a world of W ranks, W divisible by M, trains R = W // M replicas of each model: rank r trains
model r // R on shard r % R of every batch. The M ranks of one shard are *peers*: they see the same clips and
exchange their detached class scores (`all_gather`) for the mutual KL term, never their inputs. The R ranks of one
model are its *replicas*: DDP averages their gradients. When W is not divisible by M (a three-model run on two
ranks), rank 0 trains the run alone as a single process does while the other ranks wait.

Work that writes shared files (preparing data, finishing a run, evaluating, writing tables) happens on rank 0; the
others wait for it on a gloo group and then read what it wrote, so the store, the data and the cache must be on a file
system every node sees. A wait is bounded (`MML_RANK_WAIT_S` seconds, default `DEFAULT_WAIT`): rank 0 says when the
others have waited `NOTICE` for its work, and a rank that waits longer than the bound stops with an error naming the
work and the variable. Without torchrun (or with one process) nothing here communicates.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from mml.errors import MMLError

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Rank 0 may prepare a data set, evaluate runs or wait for another runner's lock while the other ranks wait: how long
# they wait at most (seconds in the environment variable), and after how long rank 0 says that they wait.
WAIT_VARIABLE = "MML_RANK_WAIT_S"
DEFAULT_WAIT = timedelta(hours=6)
NOTICE = timedelta(minutes=1)


class PeerFailed(MMLError):
    """Rank 0 failed in work done for every rank; it reports the error itself."""


@dataclass
class _World:
    control: dist.ProcessGroup  # gloo, timeout `wait`: waiting for rank 0 and moving objects to it
    wait: timedelta
    groups: dict[int, tuple[dist.ProcessGroup | None, dist.ProcessGroup | None]] = field(default_factory=dict)


_world: _World | None = None


def _member(group: dist.ProcessGroup | int) -> dist.ProcessGroup:
    """A group `dist.new_group` made with this rank in it: never its non-member marker (an int, -100)."""
    assert not isinstance(group, int), "this rank is in every group it keeps"
    return group


def rank_wait(environ: Mapping[str, str] = os.environ) -> timedelta:
    """How long a rank waits for another at most: `MML_RANK_WAIT_S` seconds, `DEFAULT_WAIT` when unset."""
    text = environ.get(WAIT_VARIABLE)
    if text is None:
        return DEFAULT_WAIT
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise MMLError(f"{WAIT_VARIABLE}={text!r}: expected a positive number of seconds")
    return timedelta(seconds=seconds)


def init(device: str) -> str:
    """Join the process group that torchrun describes (`WORLD_SIZE` > 1 in the environment): nccl on CUDA, gloo on
    the CPU. Returns the device this rank trains on: `cuda` becomes `cuda:LOCAL_RANK`; unchanged without torchrun."""
    global _world
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or _world is not None:
        return device
    wait = rank_wait()
    if device.startswith("cuda"):
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        device = f"cuda:{local}"
        dist.init_process_group("nccl", device_id=torch.device(device))
    else:
        dist.init_process_group("gloo")
    _world = _World(control=_member(dist.new_group(backend="gloo", timeout=wait)), wait=wait)
    return device


def shutdown() -> None:
    """Leave the process group (a no-op without one)."""
    global _world
    if _world is not None:
        dist.destroy_process_group()
        _world = None


def active() -> bool:
    """Whether this process is one of several ranks."""
    return _world is not None


def rank() -> int:
    """This process's global rank (0 without torchrun)."""
    return dist.get_rank() if _world is not None else 0


def on_rank0(work: Callable[[], T]) -> T:
    """`work()` on rank 0 only, its result sent to every rank: for work that writes shared files, or whose answer
    all ranks must agree on. If it fails there, the other ranks raise `PeerFailed`."""
    return _rank0(work, share=True)


def rank0_first(work: Callable[[], T]) -> T:
    """`work()` on rank 0, then on the other ranks: for work that fills a cache the others then read."""
    result = _rank0(work, share=False)
    return result if rank() == 0 else work()


def _rank0(work: Callable[[], T], share: bool) -> T:
    if _world is None:
        return work()
    what = _name(work)
    message: list[Any] = [None]
    if dist.get_rank() == 0:
        waiting = f"the other ranks have waited {_seconds(NOTICE)} for rank 0 ({what}); they wait at most"
        try:
            with _notice(f"{waiting} {_seconds(_world.wait)} ({WAIT_VARIABLE})"):
                result = work()
        except Exception:
            with _waiting(what):
                dist.broadcast_object_list([PeerFailed("rank 0 failed")], src=0, group=_world.control)
            raise
        message = [result if share else None]
    with _waiting(what):
        dist.broadcast_object_list(message, src=0, group=_world.control)
    if isinstance(message[0], PeerFailed):
        raise message[0]
    return result if dist.get_rank() == 0 else message[0]


def _name(work: Callable[..., object]) -> str:
    """What `work` does, for messages: its function's name (through `functools.partial`)."""
    while isinstance(work, functools.partial):
        work = work.func
    return getattr(work, "__name__", type(work).__name__)


def _seconds(span: timedelta) -> str:
    return f"{span.total_seconds():.0f} s"


@contextlib.contextmanager
def _notice(message: str) -> Iterator[None]:
    """Log `message` once if the block takes longer than `NOTICE` (from a timer thread; the block is not touched)."""
    timer = threading.Timer(NOTICE.total_seconds(), logger.info, [message])
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


@contextlib.contextmanager
def _waiting(what: str) -> Iterator[None]:
    """Around a collective of the control group, in which this rank may wait long for another: a message once it has
    waited `NOTICE` (shown on rank 0: the logs show only errors of the other ranks), and the group's timeout or a
    lost peer as a one-line `MMLError` instead of gloo's RuntimeError."""
    world = _world
    if world is None:  # no group: the collective's own call says so (`_control`)
        yield
        return
    me = dist.get_rank()
    whom = "the other ranks" if me == 0 else "rank 0"
    start = time.monotonic()
    waiting = f"rank {me} has waited {_seconds(NOTICE)} for {whom} ({what}); it waits at most"
    try:
        with _notice(f"{waiting} {_seconds(world.wait)} ({WAIT_VARIABLE})"):
            yield
    except RuntimeError as error:  # gloo's timeout and a closed connection (DistBackendError is one too)
        waited = timedelta(seconds=time.monotonic() - start)
        if waited >= world.wait or "timed out" in str(error).lower():
            raise MMLError(
                f"rank {me} waited {_seconds(waited)} for {whom} ({what}) and gave up; "
                f"raise {WAIT_VARIABLE} (now {_seconds(world.wait)}) if that work takes longer"
            ) from error
        reason = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise MMLError(f"rank {me} lost {whom} after {_seconds(waited)} ({what}): {reason}") from error


@dataclass(frozen=True)
class Layout:
    """Where this process stands in one run of `models` models trained by `world` ranks (1: one process trains
    them all): `replicas` ranks per model, `peers` the group of the M ranks of this rank's shard (None when M = 1),
    `replica_group` the R ranks of this rank's model (None when R = 1)."""

    models: int
    world: int = 1
    rank: int = 0
    replicas: int = 1
    peers: dist.ProcessGroup | None = None
    replica_group: dist.ProcessGroup | None = None

    @property
    def model(self) -> int:
        """The model this rank trains (when world > 1)."""
        return self.rank // self.replicas

    @property
    def shard(self) -> int:
        """Which of the R parts of every batch this rank trains on."""
        return self.rank % self.replicas

    @property
    def held(self) -> tuple[int, ...]:
        """Indices of the models this process trains."""
        return tuple(range(self.models)) if self.world == 1 else (self.model,)

    @property
    def stream(self) -> tuple[int, ...]:
        """Extra parts of this rank's dropout seed, so that ranks draw independent masks (none in one process)."""
        return () if self.world == 1 else (self.model, self.shard)

    @property
    def lead(self) -> bool:
        """Whether this process writes the run into the store (global rank 0)."""
        return self.rank == 0

    def wrap(self, networks: Sequence[nn.Module]) -> list[nn.Module]:
        """The networks of `held`, under DDP over this model's replicas when it has several."""
        if self.replica_group is None:
            return list(networks)
        return [DistributedDataParallel(network, process_group=self.replica_group) for network in networks]

    def exchange(self, messages: Sequence[Tensor]) -> list[Tensor]:
        """Every model's message (detached class scores of this shard), in model order, from those of `held`."""
        if self.peers is None:
            return list(messages)
        (own,) = messages
        gathered = [torch.empty_like(own) for _ in range(self.models)]
        dist.all_gather(gathered, own.contiguous(), group=self.peers)
        return gathered

    def reduce(self, losses: Sequence[Tensor], share: float) -> list[float]:
        """Every model's loss on the whole batch from this process's losses, `share` being the fraction of the batch
        this rank's shard holds (the same on every rank)."""
        if self.world == 1:
            return [loss.item() for loss in losses]
        values = torch.zeros(self.models, dtype=torch.float64, device=losses[0].device)
        values[self.model] = losses[0].detach().double() * share
        dist.all_reduce(values)
        return values.tolist()

    def gather(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        """The union on rank 0 of the tensors of the ranks of shard 0 (those of `held` in one process); {} elsewhere."""
        if self.world == 1:
            return tensors
        parts: list[Any] | None = [None] * self.world if self.lead else None
        with _waiting("gathering the trained weights"):
            dist.gather_object(tensors if self.shard == 0 else {}, parts, dst=0, group=_control())
        return {key: value for part in parts or [] for key, value in part.items()}

    def share(self, value: T) -> T:
        """Rank 0's `value` on every rank."""
        if self.world == 1:
            return value
        message = [value]
        with _waiting("sharing rank 0's value"):
            dist.broadcast_object_list(message, src=0, group=_control())
        return message[0]

    def barrier(self) -> None:
        """Wait until every rank gets here (rank 0 may have long work to finish)."""
        if self.world > 1:
            with _waiting("barrier"):
                dist.barrier(group=_control())


def _control() -> dist.ProcessGroup:
    if _world is None:
        raise RuntimeError("mml.distributed: no process group; call init() first")
    return _world.control


def layout(models: int) -> Layout | None:
    """Where this process trains a run of `models` models: all of them in one process without torchrun; one model
    on one shard per rank when the world splits into `models` equal parts; None when it does not (rank 0 then
    trains the run alone)."""
    if _world is None:
        return Layout(models)
    world = dist.get_world_size()
    if world % models:
        return None
    replicas = world // models
    if models not in _world.groups:
        # Every rank creates every group, in the same order (new_group is collective); cached per model count.
        peers = [
            dist.new_group([s + m * replicas for m in range(models)]) if models > 1 else None for s in range(replicas)
        ]
        reps = [
            dist.new_group(list(range(m * replicas, (m + 1) * replicas))) if replicas > 1 else None
            for m in range(models)
        ]
        me = dist.get_rank()
        # Rank me is in peer group me % replicas (m = me // replicas) and in replica group me // replicas.
        peer, rep = peers[me % replicas], reps[me // replicas]
        _world.groups[models] = (None if peer is None else _member(peer), None if rep is None else _member(rep))
    peer_group, replica_group = _world.groups[models]
    return Layout(models, world, dist.get_rank(), replicas, peer_group, replica_group)
