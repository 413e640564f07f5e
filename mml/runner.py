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
import graphlib
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from mml import distributed
from mml.checkpoint import import_run
from mml.data.datasets import VideoDataset, prepare_frames
from mml.data.modalities import frames_needed
from mml.data.regions import InformativeRegions
from mml.errors import CheckpointError, MMLError, SpecError
from mml.evaluate import current_evaluation, evaluate_stored
from mml.execution import Execution
from mml.init_source import Checkpoint, Imagenet, ImagenetFile, PretrainRun, Random, RunModel, parse_init, upstream
from mml.methods import METHODS
from mml.methods.mutual import CE
from mml.models.i3d import I3D_2D_TWINS, I3D_ARCHS
from mml.models.init import imagenet_state_dict
from mml.models.tsm import ARCHS
from mml.schedule import run_on_devices
from mml.spec import Profile, Recipe, RunSpec, TableSpec, ViewProtocol, run_recipe
from mml.store import ModelConfig, RunConfig, Store
from mml.train import train_run

logger = logging.getLogger(__name__)

_NEW_FC_LR_MULT = 5  # the lr multiplier of a new fc's weights (`mml.models.init.param_groups`)


@dataclass
class Plan:
    """The runs a set of tables needs under one profile."""

    runs: dict[str, RunConfig] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    cells: dict[tuple[str, str, int], str] = field(default_factory=dict)
    evaluations: dict[str, set[ViewProtocol]] = field(default_factory=dict)
    checkpoints: dict[str, tuple[Path, ...]] = field(default_factory=dict)  # runs loaded from files, not trained

    def add(self, config: RunConfig, name: str) -> str:
        rid = config.run_id
        self.runs[rid] = config
        if name not in self.names.setdefault(rid, []):
            self.names[rid].append(name)
        return rid

    def order(self) -> list[str]:
        """Run ids with every run after the runs its models are initialised from."""
        graph = {rid: set(config.upstream) for rid, config in self.runs.items()}
        return list(graphlib.TopologicalSorter(graph).static_order())

    def run_id(self, table: str, run: str, seed: int) -> str:
        return self.cells[(table, run, seed)]

    def run_ids(self, table: str, run: str) -> list[str]:
        """The ids of spec run `run` of `table`, one per seed, in seed order."""
        return [rid for (t, r, _), rid in sorted(self.cells.items()) if (t, r) == (table, run)]


def file_sha256(path: Path) -> str:
    """The sha256 of a weight file (its identity in run ids); CheckpointError naming a missing file."""
    if not path.is_file():
        raise CheckpointError(f"{path}: weight file not found")
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class Resolver:
    """Turns spec runs into run configs for one profile and dataset.

    `pretrained_path` is a weight file for the "from ImageNet" init of the profile's backbone (`arch`): ImageNet
    weights in the sthv2 setup, Kinetics-400 weights ("from Kinetics") in the Charades setup. Without one, and for
    the deep backbone, torchvision's ImageNet weights of the run's backbone are used (inflated to 3D for I3D).
    """

    def __init__(self, profile: Profile, dataset: VideoDataset, pretrained_path: Path | None, plan: Plan) -> None:
        self.profile, self.dataset, self.plan = profile, dataset, plan
        self.pretrained_path = pretrained_path
        torchvision = profile.imagenet.source == "torchvision"
        self.pretrained_sha = file_sha256(pretrained_path) if pretrained_path and torchvision else None

    def _config(
        self,
        method: str,
        models: Sequence[ModelConfig],
        seed: int,
        replica: int,
        recipe: Recipe,
        arch: str,
        target: str = "action",
        teacher: ModelConfig | None = None,
    ) -> RunConfig:
        return RunConfig(
            method=method,
            models=tuple(models),
            arch=arch,
            recipe=recipe,
            dataset=self.dataset.fingerprint,
            num_classes=len(self.dataset.for_target(target).classes),
            target=target,
            seed=seed,
            replica=replica,
            teacher=teacher,
        )

    def arch(self, table: TableSpec, name: str) -> str:
        """The backbone of spec run `name`: the profile's `deep_arch` for a `deep` run, else its `arch`."""
        if not table.runs[name].deep:
            return self.profile.arch
        if self.profile.deep_arch is None:
            raise SpecError(
                f"{table.source}: runs.{name}: deep = true, but profile {self.profile.name!r} sets no deep_arch"
            )
        return self.profile.deep_arch

    def recipe_overrides(self, spec: RunSpec) -> dict[str, Any]:
        """A spec run's changes to the profile's recipe: a `deep` run trains the profile's `deep_segments` (when it
        sets them), then the run's own `recipe` table applies."""
        deep = {"segments": self.profile.deep_segments} if spec.deep and self.profile.deep_segments else {}
        return {**deep, **dict(spec.recipe)}

    def imagenet_init(self, seed: int, arch: str) -> str:
        """The `init` string of "from ImageNet" ("from Kinetics" in the Charades setup) for a model of `arch`: the
        weight file (of the profile's backbone), torchvision's weights, or the synthetic pretraining run of `arch` —
        single-frame RGB object recognition on the training videos (an appearance task, as ImageNet is), or for
        multi-label data a clip classification of each video's first action.

        The pretraining run decays its lr at the recipe's fractions of training (steps scaled to its own epochs),
        and trains at a fifth of the recipe's lr: it starts from random weights, yet like every new fc its fc learns
        5x (weight) / 10x (bias) faster (TSM's fine-tuning policy, `param_groups`), and at the recipe's lr that kept
        its loss above ln(classes) (smoke: epoch means 4.0-5.0, ln 32 = 3.47; Charades: up to 7.6, ln 6 = 1.8)."""
        source = self.profile.imagenet
        if source.source == "torchvision":
            if self.pretrained_path is not None and arch == self.profile.arch:
                assert self.pretrained_sha is not None  # hashed in __init__ for a torchvision source with a file
                return str(ImagenetFile(self.pretrained_sha))
            return str(Imagenet(str(({**ARCHS, **I3D_ARCHS})[arch].imagenet)))
        recipe = self.profile.recipe
        pretrain = self._config(
            CE.name,
            [ModelConfig(modality="RGB", init=str(Random()))],
            seed,
            0,
            dataclasses.replace(
                recipe.stretched(source.epochs),
                segments=source.segments,
                lr=recipe.lr / _NEW_FC_LR_MULT,
                sampling="uniform",
            ),
            arch,
            target="primary" if self.dataset.multilabel else "object",
        )
        return str(PretrainRun(self.plan.add(pretrain, "imagenet (synthetic pretraining)")))

    def resolve(self, table: TableSpec, name: str, seed: int) -> str:
        """The id of spec run `name` of `table` for `seed`, adding it and its upstream runs to the plan."""
        key = (table.id, name, seed)
        if key in self.plan.cells:
            return self.plan.cells[key]
        spec = table.runs[name]
        arch = self.arch(table, name)
        models = []
        for model, file in zip(spec.models, spec.checkpoints or [None] * len(spec.models)):
            if file is not None:
                init = str(Checkpoint(file_sha256(file)))
            elif isinstance(model.source, Imagenet):
                init = self.imagenet_init(seed, arch)
            elif model.init_run:
                upstream, index = model.init_run
                init = str(RunModel(self.resolve(table, upstream, seed), index))
            else:
                init = model.init
            models.append(ModelConfig(modality=model.modality, init=init))
        teacher = None
        if spec.teacher:
            teacher_run, index = spec.teacher
            if self.arch(table, teacher_run) != arch:
                raise SpecError(
                    f"{table.source}: runs.{name}.teacher: {teacher_run} trains {self.arch(table, teacher_run)}, "
                    f"the student {arch}; a teacher is built with its student's backbone"
                )
            modality = table.runs[teacher_run].models[index].modality
            teacher = ModelConfig(modality=modality, init=str(RunModel(self.resolve(table, teacher_run, seed), index)))
        where, overrides = f"{table.source}: runs.{name}.recipe", self.recipe_overrides(spec)
        method = METHODS[spec.method]
        given = run_recipe(self.profile.recipe, overrides, where)
        recipe = method.training_recipe(given)
        if "epochs" in overrides and recipe.epochs != given.epochs:
            reason = f"method {spec.method} trains {recipe.epochs} epochs (its stages), not the {given.epochs} given"
            raise SpecError(f"{where}: epochs: {reason}")
        config = self._config(spec.method, models, seed, spec.replica, recipe, arch, teacher=teacher)
        problem = method.check_recipe(config)
        if problem:
            raise SpecError(f"{where}: {problem[0]}: {problem[1]}")
        self.plan.cells[key] = self.plan.add(config, f"{table.id}:{name}")
        if spec.checkpoints:
            self.plan.checkpoints[config.run_id] = spec.checkpoints
        return self.plan.cells[key]


def plan_tables(
    tables: Sequence[TableSpec], profile: Profile, dataset: VideoDataset, pretrained_path: Path | None = None
) -> Plan:
    """Every run (and upstream run) that `tables` need for each seed of the profile, and the view protocols each
    run is evaluated with: the profile's, and those that result cells ask for. `pretrained_path`: see `Resolver`."""
    plan = Plan()
    resolver = Resolver(profile, dataset, pretrained_path, plan)
    for seed in profile.seeds:
        for table in tables:
            for name in table.runs:
                resolver.resolve(table, name, seed)
            for cell in table.cells():
                for run, _ in cell.members:
                    plan.evaluations.setdefault(plan.run_id(table.id, run, seed), set()).add(
                        cell.views or profile.views
                    )
    for rid in plan.runs:
        plan.evaluations.setdefault(rid, set()).add(profile.views)
    return plan


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
    names = {"top1": "top-1", "top5": "top-5", "map": "mAP"}
    return " ".join(f"{names[key]} {value:.2f}" for key, value in metrics.items())


@dataclass(frozen=True)
class Summary:
    """What an execution did."""

    needed: int
    trained: list[str]


@dataclass(frozen=True)
class Setup:
    """One dataset's part of an invocation (a setup: sthv2, Charades or long videos): the plan of its tables, the
    profile's view protocol (whose metrics are printed after each training), the dataset and the weight file of its
    "from ImageNet" init (see `Resolver`)."""

    plan: Plan
    views: ViewProtocol
    dataset: VideoDataset
    pretrained_path: Path | None = None


@dataclass(frozen=True)
class Job:
    """What one run of a setup needs: training (or resuming, or loading) if `train`, then its missing evaluations."""

    setup: Setup
    train: bool
    protocols: tuple[ViewProtocol, ...]


def execute(
    setups: Sequence[Setup], store: Store, run: Execution, force: bool = False, devices: Sequence[str] = ()
) -> Summary:
    """Train (or resume) every run of the setups' plans that is not done, in dependency order, each followed by its
    evaluations under every view protocol it needs that has no stored scores yet. Every setup's frames are prepared
    first, so that with several `devices` the runs of all setups share one schedule (`mml.schedule`): independent
    runs (and evaluations of runs already trained) go side by side, one per device, each after the runs it starts
    from.

    Under torchrun every rank calls this with the same plans; what rank 0 finds in the store decides for all."""
    jobs: dict[str, Job] = {}
    needed = 0
    for setup in setups:
        order = setup.plan.order()
        needed += len(order)
        work = functools.partial(_work, setup.plan, order, store, force, setup.dataset.regions)
        todo, pending = distributed.on_rank0(work)
        logger.info(f"{len(order)} runs needed: {len(order) - len(todo)} already in {store.root}, {len(todo)} to train")
        prepared = dataclasses.replace(setup, dataset=_prepared(setup, pending, store, run))
        for rid in order:
            protocols = tuple(protocol for r, protocol in pending if r == rid)
            if rid in todo or protocols:
                jobs[rid] = Job(prepared, rid in todo, protocols)
    todo = [rid for rid, job in jobs.items() if job.train]
    if len(devices) > 1:
        if distributed.active():
            raise MMLError(
                "--devices trains several runs at once from one process; under torchrun every rank "
                "already takes its part of each run"
            )
        upstream = {rid: set(job.setup.plan.runs[rid].upstream) & set(todo) for rid, job in jobs.items()}
        outcome = run_on_devices(
            list(jobs), upstream, devices, functools.partial(_job_on_device, jobs, store, run, force, todo)
        )
        trained = [rid for rid in todo if outcome[rid]]
    else:
        run = dataclasses.replace(run, device=devices[0]) if devices else run
        loaders = {setup.pretrained_path: init_loader(store, setup.pretrained_path) for setup in setups}
        trained = [
            rid
            for rid, job in jobs.items()
            if _job(jobs, store, run, loaders[job.setup.pretrained_path], force, todo, rid)
        ]
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


def _job(
    jobs: dict[str, Job],
    store: Store,
    run: Execution,
    loader: Callable[[str, str], dict[str, torch.Tensor]],
    force: bool,
    todo: list[str],
    rid: str,
) -> bool:
    """Run `rid`'s job: train it if it needs training, then evaluate it under each protocol it still lacks. Returns
    whether this call trained (or loaded) it."""
    job = jobs[rid]
    setup = job.setup
    trained = job.train and _train_one(setup.plan, setup.views, setup.dataset, store, run, loader, force, todo, rid)
    config = setup.plan.runs[rid]
    cache = setup.dataset.frame_source(store.cache_dir(), config.recipe.short_side)
    data = setup.dataset.for_target(config.target)
    for protocol in job.protocols:
        distributed.on_rank0(functools.partial(evaluate_stored, store, config, protocol, data, cache, run))
    return trained


def _train_one(
    plan: Plan,
    views: ViewProtocol,
    dataset: VideoDataset,
    store: Store,
    run: Execution,
    loader: Callable[[str, str], dict[str, torch.Tensor]],
    force: bool,
    todo: list[str],
    rid: str,
) -> bool:
    """Train, resume or load run `rid` under its lock unless another runner has meanwhile, then evaluate it under
    the profile's views and print its metrics. Returns whether this call trained (or loaded) it."""
    config = plan.runs[rid]
    data = dataset.for_target(config.target)
    cache = dataset.frame_source(store.cache_dir(), config.recipe.short_side)
    with store.lock(rid) if distributed.rank() == 0 else contextlib.nullcontext():
        action = distributed.on_rank0(functools.partial(_action, plan, store, rid, force))
        if action is None:
            return False
        models = " + ".join(m.modality for m in config.models)
        number = f"[{todo.index(rid) + 1}/{len(todo)}]"
        logger.info(f"{number} {action} {rid} ({config.method}: {models}) for {', '.join(plan.names[rid])}")
        if rid in plan.checkpoints:
            distributed.on_rank0(functools.partial(import_run, config, plan.checkpoints[rid], store))
        else:
            if force:
                distributed.on_rank0(functools.partial(store.begin, rid, force=True))
            train_run(config, data, cache, store, run, loader)
    evaluation = distributed.on_rank0(functools.partial(evaluate_stored, store, config, views, data, cache, run))
    metrics = evaluation["models"]
    logger.info(f"    {rid}: " + "; ".join(f"model {i}: " + _metrics_text(m) for i, m in enumerate(metrics)))
    return True


def _job_on_device(
    jobs: dict[str, Job], store: Store, run: Execution, force: bool, todo: list[str], rid: str, device: str
) -> bool:
    """`_job` in a process of the device schedule: on `device`, without progress bars (they would interleave).

    The process imports mml afresh, so it refuses a run whose id it computes otherwise than the plan did: mml's code
    changed on disk while the command ran, and the run would be stored under an id no table looks for."""
    computed = jobs[rid].setup.plan.runs[rid].run_id
    if computed != rid:
        raise MMLError(
            f"run {rid}: this worker computes its id as {computed}: mml's code changed while the command "
            "ran; run the command again"
        )
    run = dataclasses.replace(run, device=device, progress=False)
    loader = init_loader(store, jobs[rid].setup.pretrained_path)
    return _job(jobs, store, run, loader, force, todo, rid)


def _work(
    plan: Plan, order: list[str], store: Store, force: bool, regions: InformativeRegions | None
) -> tuple[list[str], list[tuple[str, ViewProtocol]]]:
    """The runs to train, and the (run, view protocol) evaluations to do, in order (`regions`: the dataset's, see
    `current_evaluation`)."""
    todo = [rid for rid in order if force or not store.is_done(rid)]
    pending = [
        (rid, protocol)
        for rid in order
        for protocol in sorted(plan.evaluations[rid], key=lambda p: p.key)
        if rid in todo or current_evaluation(store, rid, protocol.key, regions) is None
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
