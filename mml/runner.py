"""From table specs to trained runs: resolve each spec run against a profile into a `RunConfig`, build the DAG of
initialisation dependencies, and execute the runs that are not in the store yet, in dependency order.

A run used by several tables (or twice in one) has one identity and is trained once. Under torchrun every rank
plans the same DAG and walks it in lockstep: rank 0 decides what to do (holding each run's lock), prepares data
and evaluates, and every rank takes its part in training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from mml import distributed, numerics
from mml.checkpoint import import_run
from mml.data.datasets import VideoDataset, prepare_frames
from mml.data.modalities import frames_needed
from mml.data.regions import InformativeRegions
from mml.errors import CheckpointError, MMLError
from mml.evaluate import current_evaluation, evaluate_stored
from mml.execution import Execution
from mml.init_source import ImagenetFile, parse_init, upstream
from mml.metrics import METRIC_LABELS
from mml.models.i3d import I3D_2D_TWINS
from mml.models.init import imagenet_state_dict
from mml.plan import Plan
from mml.reproduce import Setup
from mml.schedule import run_on_devices
from mml.spec import ViewProtocol
from mml.store import Store
from mml.train import train_run

logger = logging.getLogger(__name__)


def init_loader(store: Store, pretrained_path: Path | None):
    """The function that returns the state dict an `init` string names (see `train.build_models`): a stored run's
    model, the weight file `pretrained_path` (`imagenet:sha256:…`), or torchvision's weights of the arch."""

    def load(init: str, arch: str) -> dict[str, torch.Tensor]:
        source = parse_init(init)
        reference = upstream(source)
        if reference:
            path = store.run_dir(reference[0]) / f"model{reference[1]}.safetensors"
            if not path.is_file():
                raise CheckpointError(f"{path}: initialisation weights of {init} not found in the store")
            return load_file(str(path))
        if isinstance(source, ImagenetFile):
            if pretrained_path is None:
                raise CheckpointError(f"{init}: the weight file of this initialisation was not given")
            return imagenet_state_dict(I3D_2D_TWINS.get(arch, arch), pretrained_path)
        return imagenet_state_dict(I3D_2D_TWINS.get(arch, arch))

    return load


def _metrics_text(metrics: dict[str, float]) -> str:
    return " ".join(f"{METRIC_LABELS[key]} {value:.2f}" for key, value in metrics.items())


@dataclass(frozen=True)
class Summary:
    """What an execution did."""

    needed: int
    trained: list[str]


@dataclass(frozen=True)
class Job:
    """What one run of a setup needs: training (or resuming, or loading) if `train`, then its missing evaluations."""

    setup: Setup
    train: bool
    protocols: tuple[ViewProtocol, ...]


def execute(
    setups: Sequence[Setup],
    store: Store,
    run: Execution,
    force: bool = False,
    devices: Sequence[str] = (),
    only: Collection[str] | None = None,
    prepare_only: bool = False,
) -> Summary:
    """Train (or resume) every run of the setups' plans that is not done, in dependency order, each followed by its
    evaluations under every view protocol it needs that has no stored scores yet. Every setup's frames are prepared
    first, so that with several `devices` the runs of all setups share one schedule (`mml.schedule`): independent
    runs (and evaluations of runs already trained) go side by side, one per device, each after the runs it starts
    from.

    `only`: the runs whose jobs to do (a SLURM job's one run; the runs they start from must be in the store);
    `prepare_only`: prepare the frames the pending runs read, and train nothing.

    Under torchrun every rank calls this with the same plans; what rank 0 finds in the store decides for all.

    Raises:
        MMLError: CPU work in a process whose CPU numerics are not the requested ones (`mml.numerics.require`)."""
    numerics.require(devices or [run.device], compiled=run.compile)
    store.sweep_orphans()
    jobs: dict[str, Job] = {}
    needed = 0
    for setup in setups:
        order = [rid for rid in setup.plan.order() if only is None or rid in only]
        needed += len(order)
        pending_of = functools.partial(pending_work, setup.plan, order, store, force, setup.dataset.regions)
        todo, pending = distributed.on_rank0(pending_of)
        logger.info(f"{len(order)} runs needed: {len(order) - len(todo)} already in {store.root}, {len(todo)} to train")
        prepared = dataclasses.replace(setup, dataset=_prepared(setup, pending, store, run))
        for rid in order:
            protocols = tuple(protocol for r, protocol in pending if r == rid)
            if rid in todo or protocols:
                jobs[rid] = Job(prepared, rid in todo, protocols)
    todo = [rid for rid, job in jobs.items() if job.train]
    if prepare_only:
        return Summary(needed=needed, trained=[])
    if len(devices) > 1:
        if distributed.active():
            raise MMLError(
                "--devices trains several runs at once from one process; under torchrun every rank "
                "already takes its part of each run"
            )
        work = Jobs(jobs, store, run, force, todo)
        upstream = {rid: set(job.setup.plan.runs[rid].upstream) & set(todo) for rid, job in jobs.items()}
        outcome = run_on_devices(list(jobs), upstream, devices, work.on_device)
        trained = [rid for rid in todo if outcome[rid]]
    else:
        work = Jobs(jobs, store, dataclasses.replace(run, device=devices[0]) if devices else run, force, todo)
        loaders = {setup.pretrained_path: init_loader(store, setup.pretrained_path) for setup in setups}
        trained = [rid for rid, job in jobs.items() if work.do(rid, loaders[job.setup.pretrained_path])]
    return Summary(needed=needed, trained=trained)


def _prepared(setup: Setup, pending: list[tuple[str, ViewProtocol]], store: Store, run: Execution) -> VideoDataset:
    """The setup's dataset once the frames (and flow) its pending runs read are prepared, without the videos that
    could not be."""
    plan, dataset = setup.plan, setup.dataset
    for short_side in sorted({plan.runs[rid].recipe.short_side for rid, _ in pending}):
        runs = [plan.runs[rid] for rid, _ in pending if plan.runs[rid].recipe.short_side == short_side]
        modalities = {m.modality for config in runs for m in (*config.models, config.teacher) if m}
        needed = max(frames_needed(sorted(modalities), config.recipe.segments) for config in runs)
        skipped = distributed.on_rank0(
            functools.partial(_skipped, dataset, store, short_side, "Flow" in modalities, needed, run)
        )
        dataset = dataset.without(skipped)
    return dataset


@dataclass(frozen=True)
class Jobs:
    """The jobs of one execution and what they share: the store, how runs execute, whether to retrain, and the runs
    to train (numbered in the messages). Picklable, for the processes of the device schedule."""

    jobs: dict[str, Job]
    store: Store
    run: Execution
    force: bool
    todo: list[str]

    def do(self, rid: str, loader: Callable[[str, str], dict[str, torch.Tensor]]) -> bool:
        """Run `rid`'s job: train it if it needs training, then evaluate it under each protocol it still lacks.
        Returns whether this call trained (or loaded) it."""
        job = self.jobs[rid]
        trained = job.train and self._train(rid, loader)
        for protocol in job.protocols:
            self._evaluate(rid, protocol)
        return trained

    def on_device(self, rid: str, device: str) -> bool:
        """`do` in a process of the device schedule: on `device`, without progress bars (they would interleave).

        The process imports mml afresh, so it refuses a run whose id it computes otherwise than the plan did: mml's
        code changed on disk while the command ran, and the run would be stored under an id no table looks for."""
        setup = self.jobs[rid].setup
        computed = setup.plan.runs[rid].run_id
        if computed != rid:
            raise MMLError(
                f"run {rid}: this worker computes its id as {computed}: mml's code changed while the command "
                "ran; run the command again"
            )
        on_device = dataclasses.replace(self, run=dataclasses.replace(self.run, device=device, progress=False))
        return on_device.do(rid, init_loader(self.store, setup.pretrained_path))

    def _evaluate(self, rid: str, protocol: ViewProtocol) -> dict:
        """Evaluate run `rid` under `protocol` (on rank 0) unless it is stored; its metrics."""
        setup = self.jobs[rid].setup
        config = setup.plan.runs[rid]
        cache = setup.dataset.frame_source(self.store.cache_dir(), config.recipe.short_side)
        data = setup.dataset.for_target(config.target)
        work = functools.partial(evaluate_stored, self.store, config, protocol, data, cache, self.run)
        return distributed.on_rank0(work)

    def _train(self, rid: str, loader: Callable[[str, str], dict[str, torch.Tensor]]) -> bool:
        """Train, resume or load run `rid` under its lock unless another runner has meanwhile, then evaluate it
        under the profile's views and print its metrics. Returns whether this call trained (or loaded) it."""
        store, setup = self.store, self.jobs[rid].setup
        plan, config = setup.plan, setup.plan.runs[rid]
        with store.lock(rid) if distributed.rank() == 0 else contextlib.nullcontext():
            action = distributed.on_rank0(functools.partial(_action, plan, store, rid, self.force))
            if action is None:
                return False
            models = " + ".join(m.modality for m in config.models)
            number = f"[{self.todo.index(rid) + 1}/{len(self.todo)}]"
            logger.info(f"{number} {action} {rid} ({config.method}: {models}) for {', '.join(plan.names[rid])}")
            if rid in plan.checkpoints:
                distributed.on_rank0(functools.partial(import_run, config, plan.checkpoints[rid], store))
            else:
                if self.force:
                    distributed.on_rank0(functools.partial(store.begin, rid, force=True))
                data = setup.dataset.for_target(config.target)
                cache = setup.dataset.frame_source(store.cache_dir(), config.recipe.short_side)
                train_run(config, data, cache, store, self.run, loader)
        metrics = self._evaluate(rid, setup.scale.views)["models"]
        logger.info(f"    {rid}: " + "; ".join(f"model {i}: " + _metrics_text(m) for i, m in enumerate(metrics)))
        return True


def pending_work(
    plan: Plan, order: list[str], store: Store, force: bool, regions: InformativeRegions | None
) -> tuple[list[str], list[tuple[str, ViewProtocol]]]:
    """The runs to train, and the (run, view protocol) evaluations to do, in order (`regions`: the dataset's, see
    `current_evaluation`)."""
    todo = [rid for rid in order if force or not store.is_done(rid)]
    pending = [
        (rid, protocol)
        for rid in order
        for protocol in sorted(plan.evaluations[rid], key=lambda p: p.key)
        if rid in todo or current_evaluation(store, rid, plan.evaluation_key(rid, protocol), regions) is None
    ]
    return todo, pending


def _skipped(
    dataset: VideoDataset, store: Store, short_side: int, with_flow: bool, needed: int, run: Execution
) -> set[str]:
    """Prepare the dataset's frames (and flow) at `short_side`; the ids of the videos that could not be."""
    usable, _ = prepare_frames(
        dataset, store.cache_dir(), short_side, with_flow, needed, run.prepare_workers, run.progress
    )
    kept = {r.video_id for r in (*usable.train, *usable.validation)}
    return {r.video_id for r in (*dataset.train, *dataset.validation)} - kept


def _action(plan: Plan, store: Store, rid: str, force: bool) -> str | None:
    """What to do with a run under its lock: `training`, `resuming` or `loading`; None once another runner did it."""
    if store.is_done(rid) and not force:
        return None
    if rid in plan.checkpoints:
        return "loading"
    return "resuming" if store.status(rid) == "partial" and not force else "training"
