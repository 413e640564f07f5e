"""The plan of an invocation: which runs a set of tables needs under one profile, as data.

Each spec run is resolved against the profile into a `RunConfig` (whose hash is its run id); a run initialised from
another run's model depends on it, which makes the runs a DAG (`Plan.order`). Planning trains nothing and imports no
trainer: the runner (`mml.runner`) executes a plan, the report (`mml.report`) reads a plan's runs from the store, and
`mml.price` prices one. A run used by several tables (or twice in one) has one identity and is planned once.
"""

from __future__ import annotations

import dataclasses
import graphlib
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mml.checkpoint import check_checkpoint_files
from mml.data.datasets import VideoDataset
from mml.errors import CheckpointError, SpecError
from mml.init_source import Checkpoint, Imagenet, ImagenetFile, PretrainRun, Random, RunModel
from mml.methods import METHODS
from mml.methods.mutual import CE
from mml.models.i3d import I3D_ARCHS
from mml.models.init import NEW_FC_LR_MULT
from mml.models.tsm import ARCHS
from mml.spec import Profile, Recipe, RunSpec, TableSpec, ViewProtocol, run_recipe
from mml.store import ModelConfig, RunConfig, evaluation_key


@dataclass
class Plan:
    """The runs a set of tables needs under one profile."""

    runs: dict[str, RunConfig] = field(default_factory=dict)
    names: dict[str, list[str]] = field(default_factory=dict)
    cells: dict[tuple[str, str, int], str] = field(default_factory=dict)
    evaluations: dict[str, set[ViewProtocol]] = field(default_factory=dict)
    checkpoints: dict[str, tuple[Path, ...]] = field(default_factory=dict)  # runs loaded from files, not trained
    validation_sets: dict[str, str] = field(default_factory=dict)  # training split fingerprint -> validation split's

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

    def evaluation_key(self, rid: str, views: ViewProtocol) -> str:
        """The name of run `rid`'s evaluation under `views` on its data set's validation videos."""
        return evaluation_key(views, self.validation_sets[self.runs[rid].dataset])

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
        plan.validation_sets[dataset.training_fingerprint] = dataset.validation_fingerprint
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
            dataset=self.dataset.training_fingerprint,
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
                lr=recipe.lr / NEW_FC_LR_MULT,
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
        if spec.checkpoints and config.run_id not in self.plan.checkpoints:
            check_checkpoint_files(config, spec.checkpoints)
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
