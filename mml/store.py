"""Run identity and the run store.

A run's identity is the sha256 of the canonical JSON of everything that changes its result: method, models (with
the identity of the run or weight file each is initialised from), backbone, recipe, dataset fingerprint, seed
and the hand-bumped `SEMANTICS` integer. Same identity means the same result: a stored run is reused,
never retrained. So that it does on any CPU, runs train and evaluate with a fixed intra-op thread count
(`CPU_THREADS`, `pinned_cpu_threads`), and tests/test_pinned_run.py retrains pinned runs to catch result changes
that kept the ids.

Layout of a store:
    runs/<id>/        finished runs: run.json, model<i>.safetensors, metrics.json (training history), DONE (last)
    runs/<id>/eval/<views>-val<validation>/  per view protocol and validation set (`evaluation_key`): scores<i>.npz
                            (per-video logits) and metrics.json (top-1/top-5)
    .partial/<id>/    unfinished runs: checkpoint.safetensors after each epoch (models, optimisers, epoch; resumable)
    locks/<id>.lock   one lock file per run (and per evaluation): two runners never train the same run at once
    cache/            decoded frames and optical flow, keyed by dataset fingerprint and frame size

Runners on several nodes (SLURM jobs) may share a store on NFS or Lustre, so a run's lock is a lease lock file
(`mml.lease`): created with O_EXCL, which is atomic on NFSv3+ and Lustre, naming its owner (host, pid, SLURM job) and
kept fresh by a heartbeat. flock is not used: NFS emulates it with fcntl locks (node-local under `local_lock`),
and Lustre is coherent only with its `flock` mount option (node-local under `localflock`, an error under `noflock`).
A lock of a killed process of the same host is taken over at once, one of another node once its heartbeat is
older than its lease (`mml.lease.DEFAULT_LEASE_S`; the nodes' clocks must agree to well within it).
Each runner first deletes the temporary files and staging folders (`mml.atomic`) that killed processes of its host
left in the store (`Store.sweep_orphans`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mml import __version__, atomic
from mml.init_source import InitialisedFrom
from mml.lease import LeaseLock
from mml.methods import METHODS, MethodSettings
from mml.spec import Recipe, ViewProtocol, identity

logger = logging.getLogger(__name__)

# Bump when training or evaluation behaviour changes in a way that changes results: every run id changes with it.
# tests/test_pinned_run.py fails when the results of its pinned runs change under the same ids (re-pin after a bump:
# `python -m tests.pinned_run`). 2: CPU training and evaluation pinned to `CPU_THREADS` intra-op threads. 3: portable
# CPU numerics (`mml.numerics`), OpenCV's TV-L1 through its baseline code, the cross-entropy terms recorded per epoch.
SEMANTICS = 3

# PyTorch's CPU results depend on its intra-op thread count (reductions are split per thread): the same run trained
# with 1 and with 2 threads ends with different weights. Runs train and evaluate with this many, whatever the
# machine's core count, so that a run id names one result (on a CPU, `--devices cpu,cpu` trains runs side by side).
CPU_THREADS = 1

# How deep `Store.sweep_orphans` looks: a run's evaluation staging folders (runs/<id>/eval/<temporary>) and the
# cache's temporary videos (cache/jpeg<side>/frames/<temporary>) are 4 levels down; the frames inside a finished
# video's folder, one level further, are not listed.
SWEEP_DEPTH = 4


def code_version() -> str:
    """The version of the code that writes tables, as their footnotes record it: package and training semantics."""
    return f"mml {__version__}, training semantics {SEMANTICS}"


@contextlib.contextmanager
def pinned_cpu_threads(threads: int = CPU_THREADS) -> Iterator[None]:
    """Train and evaluate with `threads` (by default `CPU_THREADS`) intra-op threads inside this block, here and in
    the processes it spawns (they read OMP_NUM_THREADS); the previous settings come back afterwards."""
    before, environment = torch.get_num_threads(), os.environ.get("OMP_NUM_THREADS")
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if environment is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = environment


@dataclass(frozen=True)
class ModelConfig(InitialisedFrom):
    """One model of a run.

    `init` is `random`, `imagenet:<weights name or file sha256>`, `imagenet:run:<run id>/0` (the synthetic
    pretraining stand-in for ImageNet), `run:<run id>/<model index>` (another run's model, fc included) or
    `checkpoint:sha256:<file sha256>` (the run is loaded from that weight file instead of trained).
    """

    modality: str = identity()
    init: str = identity()


@dataclass(frozen=True)
class RunConfig:
    """Everything that determines a run's result; `run_id` hashes it."""

    method: str = identity()
    models: tuple[ModelConfig, ...] = identity()
    arch: str = identity()
    recipe: Recipe = identity()
    dataset: str = identity()
    num_classes: int = identity()
    seed: int = identity()
    replica: int = identity(default=0)
    teacher: ModelConfig | None = identity(default=None)  # the frozen teacher of a MARS / D3D run
    target: str = identity(default="action")  # `action` classes, or `object` (the synthetic ImageNet stand-in)

    @property
    def run_id(self) -> str:
        return run_id(self)

    @property
    def upstream(self) -> tuple[str, ...]:
        """Ids of the runs whose models initialise this run's models (its DAG parents)."""
        models = (*self.models, *([self.teacher] if self.teacher else []))
        return tuple(dict.fromkeys(m.init_run[0] for m in models if m.init_run))


def identity_dict(value: Any, method: str | None = None) -> Any:
    """The JSON-ready content of a config; refuses dataclass fields not marked as identity or execution.

    Inside a run config (a dataclass with a `method`), a recipe's method settings enter as the recipe keys of the
    settings that the method reads (`mml.methods.settings`); outside one, only those hashed into every run."""
    if dataclasses.is_dataclass(value):
        method = getattr(value, "method", method)
        result = {}
        for item in dataclasses.fields(value):
            if "identity" not in item.metadata:
                raise TypeError(f"{type(value).__name__}.{item.name} is not marked identity() or execution()")
            if item.metadata.get("method_settings"):
                result.update(_read_settings(getattr(value, item.name), method))
            elif item.metadata["identity"]:
                result[item.name] = identity_dict(getattr(value, item.name), method)
        return result
    if isinstance(value, tuple | list):
        return [identity_dict(v, method) for v in value]
    if isinstance(value, dict):
        return {str(k): identity_dict(v, method) for k, v in value.items()}
    return value


def _read_settings(families: tuple[MethodSettings, ...], method: str | None) -> dict[str, Any]:
    """The method settings among `families` that enter a run of `method` (None: outside a run config)."""
    reader = METHODS.get(method) if method else None
    items: dict[str, Any] = {}
    for settings in families:
        read = reader.reads if reader and type(settings) is reader.settings else ()
        items.update(settings.identity_items(read))
    return items


def canonical_json(value: Any) -> str:
    """Key-order independent JSON text of a config."""
    return json.dumps(identity_dict(value), sort_keys=True, separators=(",", ":"))


def run_id(config: RunConfig) -> str:
    """The 16-hex-digit identity of a run."""
    text = canonical_json({"semantics": SEMANTICS, "run": identity_dict(config)})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def evaluation_key(views: ViewProtocol, validation_fingerprint: str) -> str:
    """The name of an evaluation of a run: its test-view protocol and the fingerprint of the validation videos it
    is measured on, so that evaluations on other validation videos (a larger set) lie beside it."""
    return f"{views.key}-val{validation_fingerprint[:12]}"


def write_json(path: Path, value: Any) -> None:
    """Write the store's JSON atomically (`mml.atomic`: flushed, then renamed): indented, keys sorted."""
    atomic.write_text(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


class Store:
    """A folder of finished runs, resumable partial runs, per-run locks and data caches."""

    def __init__(self, root: Path, cache: Path | None = None) -> None:
        self.root = Path(root)
        self.cache = Path(cache) if cache else self.root / "cache"

    def run_dir(self, rid: str) -> Path:
        return self.root / "runs" / rid

    def partial_dir(self, rid: str) -> Path:
        return self.root / ".partial" / rid

    def cache_dir(self) -> Path:
        """Where frame and flow caches live: `cache/` in the store unless given (real datasets need room)."""
        return self.cache

    def is_done(self, rid: str) -> bool:
        return (self.run_dir(rid) / "DONE").is_file()

    def status(self, rid: str) -> str:
        """`done`, `partial` (an interrupted run with a checkpoint) or `missing`."""
        if self.is_done(rid):
            return "done"
        return "partial" if (self.partial_dir(rid) / "checkpoint.safetensors").is_file() else "missing"

    def evaluation_dir(self, rid: str, key: str) -> Path:
        """The folder of a run's evaluation `key` (`evaluation_key`)."""
        return self.run_dir(rid) / "eval" / key

    def evaluation(self, rid: str, key: str) -> dict[str, Any] | None:
        """The stored top-1/top-5 of a run's models under a view protocol, or None if not evaluated yet."""
        path = self.evaluation_dir(rid, key) / "metrics.json"
        return json.loads(path.read_text()) if path.is_file() else None

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Hold the lock `name` (a run id, or a run's evaluation); a second runner, on this node or another, waits
        here instead of training or evaluating the same run twice. A lock whose process died is taken over: at once
        on its own host, after its lease from another node (`mml.lease`)."""
        path = self.root / "locks" / f"{name}.lock"
        path.parent.mkdir(parents=True, exist_ok=True)
        with LeaseLock(path):
            yield

    def sweep_orphans(self) -> None:
        """Delete the temporary files and staging folders (`mml.atomic`) that killed processes of this host left in
        the store and its cache; those of running processes, and of other hosts (whose pids mean nothing here), stay."""
        removed = atomic.remove_orphans(self.root, SWEEP_DEPTH)
        if not self.cache.resolve().is_relative_to(self.root.resolve()):
            removed += atomic.remove_orphans(self.cache, SWEEP_DEPTH - 1)
        if removed:
            names = ", ".join(str(path) for path in removed)
            logger.info(f"removed {len(removed)} leftovers of killed processes of this host: {names}")

    def begin(self, rid: str, force: bool = False) -> Path:
        """The partial folder of a run to (re)start; `force` discards an earlier partial state."""
        partial = self.partial_dir(rid)
        if force and partial.exists():
            shutil.rmtree(partial)
        partial.mkdir(parents=True, exist_ok=True)
        return partial

    def finish(self, rid: str) -> Path:
        """Move a completed partial run into the store: DONE is written last, then one directory rename."""
        partial = self.partial_dir(rid)
        (partial / "checkpoint.safetensors").unlink(missing_ok=True)
        atomic.write_bytes(partial / "DONE", b"")
        return _publish(partial, self.run_dir(rid))


def _publish(staging: Path, final: Path) -> Path:
    """Move a fully written folder into place with one rename, replacing an older one (renamed aside first, deleted
    last: `mml.atomic.replace_folder`).

    For a folder written over several processes (a resumable partial run); a folder written in one block is staged
    with `mml.atomic.staging_folder` instead."""
    atomic.replace_folder(staging, final)
    return final
