"""Table specs and scale profiles: typed, validated dataclasses read from TOML.

A *table spec* (`reproductions/tableNN.toml`) names the runs a paper table needs, how they are initialised from each
other, and which model of which run fills which cell, with the paper's numbers. A *profile*
(`reproductions/profiles.toml`) says at which scale to run them: dataset, backbone, recipe, seeds, test views.
Every error names the file, the key and the reason on one line.
"""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mml.data.rawframes import RawframesConfig
from mml.errors import SpecError

DISTILLATION = ("mars", "d3d", "kd")  # one student and a frozen teacher
TWO_VIEWS = ("ce_aug", "self_kd", "skd_srl")  # one model trained on two augmented views of each clip (SKD-SRL)
LATE_FUSION = ("late_fusion", "gblend", "gblend_online")  # one network of per-modality branches (G-Blend)
METHODS = ("ce", "ml", *DISTILLATION, *TWO_VIEWS, *LATE_FUSION)
SINGLE_LABEL_ONLY = ("kd", *TWO_VIEWS, *LATE_FUSION)  # softmax methods: not for the multi-label setup
MODALITY_NAMES = ("RGB", "Flow", "Diff")
SAMPLINGS = ("uniform", "dense", "both")
KL_FORMS = ("probs", "logits")
DATASET_KINDS = ("synthetic-sthv2", "sthv2", "rawframes", "synthetic-charades", "charades")
SETUPS = ("sthv2", "charades")
ACCURACY_METRICS = ("top1", "top5", "map")
METRICS = (*ACCURACY_METRICS, "gflops")  # gflops: measured inference cost per clip, not an accuracy
IMAGENET_SOURCES = ("torchvision", "pretrain")
SPATIAL_CROPS = (1, 3)
_INIT = re.compile(r"^(random|imagenet|run:(?P<run>[A-Za-z0-9_\-]+)/(?P<model>\d+))$")
_MODEL_REF = re.compile(r"^(?P<run>[A-Za-z0-9_\-]+)/(?P<model>\d+)$")


def identity(**kwargs: Any) -> Any:
    """A dataclass field that changes a run's result: it enters the run identity hash."""
    return field(metadata={"identity": True}, **kwargs)


def method_identity(*methods: str, **kwargs: Any) -> Any:
    """A setting only `methods` read: it enters the identity of their runs, and of no other run (so a profile can
    set it without changing the ids, or the stored results, of the runs of other methods)."""
    return field(metadata={"identity": True, "methods": methods}, **kwargs)


def execution(**kwargs: Any) -> Any:
    """A dataclass field that only says how or where to run (device, workers, paths): never hashed."""
    return field(metadata={"identity": False}, **kwargs)


@dataclass(frozen=True)
class Recipe:
    """Training and input settings of one run (all result-changing).

    `dense_stride` is the frame step τ of dense sampling at this recipe's `segments`; the dense clip's span
    `dense_stride × segments` is what a profile fixes, as the original code fixes `--dense_length` (32) and takes
    τ = dense_length // T. A run that overrides `segments` keeps the span (`run_recipe`).
    """

    segments: int = identity()
    short_side: int = identity()
    input_size: int = identity()
    batch_size: int = identity()
    epochs: int = identity()
    lr: float = identity()
    lr_steps: tuple[int, ...] = identity()
    lr_decay: float = identity(default=0.1)
    momentum: float = identity(default=0.9)
    weight_decay: float = identity(default=5e-4)
    grad_clip: float = identity(default=20.0)
    dropout: float = identity(default=0.5)
    sampling: str = identity(default="both")
    dense_stride: int = identity(default=4)  # τ at `segments`; see the class docstring
    kl_form: str = identity(default="probs")
    mars_weight: float = identity(default=50.0)  # MARS feature-MSE weight (Crasto et al.)
    d3d_weight: float = identity(default=1.0)  # D3D logit-L2 weight (Stroud et al.)
    # KD (Hinton et al.): CE + kd_alpha kd_tau² KL at temperature kd_tau; SKD-SRL's τ and α by default.
    kd_tau: float = method_identity("kd", default=10.0)
    kd_alpha: float = method_identity("kd", default=0.1)
    # SKD-SRL (Vu et al., §IV-A): temperature τ of eq. 2, weights α (distillation) and β (similarity) of eq. 5.
    skd_tau: float = method_identity("self_kd", "skd_srl", default=10.0)
    skd_alpha: float = method_identity("self_kd", "skd_srl", default=0.1)
    skd_beta: float = method_identity("skd_srl", default=1.0)
    # G-Blend (Wang et al.): the held-out fraction V of the training videos (8% on Kinetics, §3.1); the epochs n
    # each weight estimate trains (0: as Algorithms 2 and 3 print, the whole training offline, the super-epoch
    # online); online G-Blend's super-epoch and its longer first one (5 and 10 in §3.2).
    gblend_holdout: float = method_identity("gblend", "gblend_online", default=0.08)
    gblend_estimate_epochs: int = method_identity("gblend", "gblend_online", default=0)
    gblend_super_epoch: int = method_identity("gblend_online", default=5)
    gblend_warmup: int = method_identity("gblend_online", default=10)


@dataclass(frozen=True)
class ViewProtocol:
    """Test-time views "Dense k + Uniform m" (paper Appendix 1), each cut into `crops` square spatial crops.

    Uniform view i of m starts at shift (i + uniform_offset) / m of a segment: offset 0 gives the paper's formula,
    offset 0.5 with m = 1 the original code's centred single view used for the ablation tables. `crops` 1 is the
    centre crop, 3 PySlowFast's / mmaction2's three crops along the longer side (start, centre, end); `crop_size`
    is their side and the model's test input size, 0 meaning the recipe's `input_size`. `full_resolution` makes
    the side the recipe's `short_side` instead, at any scale: the paper's "central full-resolution crop" of final
    testing (Appendix 1, Tab. 9 and 10; TSM's `--full_res`, 256 of 256), where the ablations use a 224 centre crop.
    """

    dense: int = identity(default=0)
    uniform: int = identity(default=1)
    uniform_offset: float = identity(default=0.5)
    crops: int = identity(default=1)
    crop_size: int = identity(default=0)
    full_resolution: bool = identity(default=False)

    def crop_side(self, recipe: Recipe) -> int:
        """The side of the square test crops (the model's test input size) under `recipe`."""
        if self.full_resolution:
            return recipe.short_side
        return self.crop_size or recipe.input_size

    @property
    def key(self) -> str:
        """A folder name for this protocol's evaluations, e.g. `dense0-uniform1-offset0.5`,
        `dense10-uniform0-offset0-crops3-size256` or `dense1-uniform2-offset0-crops1-full`; protocols with a single
        recipe-sized centre crop keep the short form that stored evaluations are filed under."""
        key = f"dense{self.dense}-uniform{self.uniform}-offset{self.uniform_offset:g}"
        if self.full_resolution:
            key += f"-crops{self.crops}-full"
        elif self.crops != 1 or self.crop_size != 0:
            key += f"-crops{self.crops}-size{self.crop_size}"
        return key


@dataclass(frozen=True)
class ImagenetSource:
    """Where "from ImageNet" weights come from: torchvision's weights API / a file, or a synthetic pretraining run.

    `pretrain` trains a single-frame RGB model to recognise the object of each training video (its first
    placeholder): the stand-in for ImageNet in the synthetic profiles. `epochs` and `segments` configure that run.
    """

    source: str
    epochs: int = 0
    segments: int = 1


@dataclass(frozen=True)
class DatasetConfig:
    """The dataset of a profile: generated on first use (`synthetic-sthv2`, `synthetic-charades`) or a user's
    `--data DIR` (`sthv2`, `charades`, or `rawframes`: TSM-style frame folders listed in rawframe list files).

    `frame_lists` (Charades only) reads PySlowFast's `frame_lists/{train,val}.csv` instead of the official CSVs.
    """

    kind: str
    synthetic: dict[str, int] = field(default_factory=dict)
    rawframes: RawframesConfig | None = None
    frame_lists: bool = False


@dataclass(frozen=True)
class Profile:
    """One scale at which tables are reproduced."""

    name: str
    description: str
    dataset: DatasetConfig
    arch: str
    deep_arch: str | None  # the backbone of runs marked `deep` (Tab. 9's ResNet-101); None: such runs are refused
    recipe: Recipe
    imagenet: ImagenetSource
    views: ViewProtocol
    seeds: tuple[int, ...]
    charades: Profile | None = None  # the multi-label setup (I3D on Charades, paper §3.1.2) of this scale

    def setup(self, name: str) -> Profile:
        """The profile of a table's setup: this one for `sthv2`, its `charades` section for `charades`."""
        if name == "sthv2":
            return self
        if self.charades is None:
            raise SpecError(f"profile {self.name!r} has no [{self.name}.charades] section for the charades setup")
        return self.charades


@dataclass(frozen=True)
class ModelSpec:
    """One model of a run in a table spec: its input modality and where its weights start from."""

    modality: str
    init: str

    @property
    def init_run(self) -> tuple[str, int] | None:
        """(run name, model index) when initialised from another run of the spec, else None."""
        match = _INIT.match(self.init)
        return (match["run"], int(match["model"])) if match and match["run"] else None


@dataclass(frozen=True)
class RunSpec:
    """A run of a table spec: a method training a group of models together.

    `replica` > 0 marks an independent re-training of an otherwise identical run (the paper's "RGB2", "C2"):
    it trains with another seed.
    """

    name: str
    method: str
    models: tuple[ModelSpec, ...]
    replica: int = 0
    teacher: tuple[str, int] | None = None  # mars / d3d: the frozen teacher, (run name, model index)
    recipe: tuple[tuple[str, Any], ...] = ()  # overrides of the profile's recipe, e.g. (("sampling", "dense"),)
    deep: bool = False  # train the profile's deep backbone (ResNet-101 in the paper profile, Tab. 9)
    checkpoints: tuple[Path, ...] = ()  # one weight file per model: the run is loaded from them, not trained

    def loaded_from(self, files: Sequence[Path]) -> RunSpec:
        """This run loaded from weight files (one per model, in model order) instead of trained."""
        if len(files) != len(self.models):
            raise SpecError(
                f"run {self.name}: {len(self.models)} model(s) need as many checkpoint files, got {len(files)}"
            )
        models = tuple(dataclasses.replace(model, init="checkpoint") for model in self.models)
        return dataclasses.replace(self, models=models, checkpoints=tuple(files), teacher=None)


ModelRef = tuple[str, int]


@dataclass(frozen=True)
class ResultCell:
    """A table cell: the metrics of one model, or of the ensemble (averaged probabilities) of several.

    `members` are (run name, model index) pairs; `views` overrides the profile's test views; `id` names the cell
    for the claims; `paper` holds the paper's values, or () where the paper has none.
    """

    members: tuple[ModelRef, ...]
    paper: tuple[float, ...]
    views: ViewProtocol | None = None
    id: str = ""


@dataclass(frozen=True)
class MatrixSpec:
    """A matrix of two-model ensembles (paper Tab. 11/12): every row model with every column model.

    `paper[i][j]` holds the paper's (top-1, top-5) of row i with column j, or () where the paper has none.
    """

    rows: tuple[tuple[str, ModelRef], ...]
    columns: tuple[tuple[str, ModelRef], ...]
    paper: tuple[tuple[tuple[float, ...], ...], ...]
    baseline: tuple[str, str]


@dataclass(frozen=True)
class TriplesSpec:
    """Every triple of one model per group ranked by ensemble top-1 (paper Tab. 13); `paper` maps
    "group: label" to the paper's sum of positions."""

    groups: tuple[tuple[str, tuple[tuple[str, ModelRef], ...]], ...]
    paper: dict[str, int]


CLAIM_KINDS = ("superiority", "equivalence")
POSITIONS = "positions"  # the claim metric of a triple ranking: a model's sum of positions, lower is better


@dataclass(frozen=True)
class ClaimSpec:
    """A claim of the paper that the table tests on per-seed paired differences `better` − `worse` of `metric`.

    `kind` "superiority": `better` beats `worse` by more than `margin` (0: simply beats it; negative: "not worse by
    more than |margin|"). "equivalence": the two cells are within ±`margin` of each other (`margin` > 0), as in "nearly
    equal", "useless", "within 0.5". `better` and `worse` are cell ids (`id` of a result cell), "row label | column
    label" in a matrix table, or "group: label" in a triple ranking (metric "positions").
    """

    text: str
    better: str
    worse: str
    metric: str = "top1"
    kind: str = "superiority"
    margin: float = 0.0


@dataclass(frozen=True)
class TableSpec:
    """A paper table: its runs and its layout (text cells and result cells)."""

    id: str
    title: str
    source: Path
    metrics: tuple[str, ...]
    columns: tuple[str, ...]
    rows: tuple[tuple[str | ResultCell, ...], ...]
    runs: dict[str, RunSpec]
    notes: str = ""
    setup: str = "sthv2"  # `charades`: the multi-label setup (the profile's [<name>.charades] section)
    matrix: MatrixSpec | None = None
    triples: TriplesSpec | None = None
    claims: tuple[ClaimSpec, ...] = ()

    def cells(self) -> list[ResultCell]:
        """Every result cell of the row layout."""
        return [cell for row in self.rows for cell in row if isinstance(cell, ResultCell)]


class _Reader:
    """Typed access to a TOML table that reports `file: key: reason` on bad input and rejects unknown keys."""

    def __init__(self, path: Path, data: dict[str, Any], prefix: str = "") -> None:
        self.path, self.data, self.prefix, self.used = path, data, prefix, set()

    def error(self, key: str, reason: str) -> SpecError:
        return SpecError(f"{self.path}: {self.prefix}{key}: {reason}")

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = dataclasses.MISSING) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is dataclasses.MISSING:
                raise self.error(key, "missing")
            return default
        value = self.data[key]
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if float in kinds and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise self.error(key, f"expected {names}, got {type(value).__name__} {value!r}")
        return value

    def choice(self, key: str, choices: tuple[str, ...], default: Any = dataclasses.MISSING) -> str:
        value = self.get(key, str, default)
        if value not in choices:
            raise self.error(key, f"{value!r} is not one of {', '.join(choices)}")
        return value

    def positive(self, key: str, kind: type = int, default: Any = dataclasses.MISSING, zero: bool = False) -> Any:
        value = self.get(key, kind, default)
        if value < 0 or (value == 0 and not zero):
            raise self.error(key, f"must be {'non-negative' if zero else 'positive'}, got {value!r}")
        return value

    def sub(self, key: str, default: Any = dataclasses.MISSING) -> _Reader:
        return _Reader(self.path, self.get(key, dict, default), f"{self.prefix}{key}.")

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key")


def _load_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: invalid TOML: {err}") from None


# Range checks beyond "non-negative" for profile recipes and run overrides alike: setting -> (test, requirement).
_RECIPE_LIMITS = {
    "dropout": (lambda v: v < 1, "must be below 1"),
    "kd_tau": (lambda v: v > 0, "must be positive"),
    "skd_tau": (lambda v: v > 0, "must be positive"),
    "gblend_holdout": (lambda v: 0 < v < 1, "must be a fraction in (0, 1)"),
}
_ZERO_ALLOWED = {"gblend_estimate_epochs"}  # integer settings where 0 has a meaning (0: the whole training)


def _check_recipe_value(reader: _Reader, key: str, value: Any) -> None:
    """Refuse a numeric recipe value out of its range: negative, zero for a count (an int setting), or against
    `_RECIPE_LIMITS`."""
    count = {item.name: item.type for item in dataclasses.fields(Recipe)}.get(key) == "int"
    zero = not count or key in _ZERO_ALLOWED
    if isinstance(value, int | float) and (value < 0 or (value == 0 and not zero)):
        raise reader.error(key, f"must be {'non-negative' if zero else 'positive'}, got {value!r}")
    test, requirement = _RECIPE_LIMITS.get(key, (lambda v: True, ""))
    if not test(value):
        raise reader.error(key, f"{requirement}, got {value!r}")


def _read_recipe(reader: _Reader) -> Recipe:
    values: dict[str, Any] = {}
    for item in dataclasses.fields(Recipe):
        default = item.default
        if item.name == "lr_steps":
            steps = reader.get("lr_steps", list)
            if not all(isinstance(s, int) and s > 0 for s in steps) or steps != sorted(steps):
                raise reader.error("lr_steps", f"expected increasing positive epochs, got {steps!r}")
            values["lr_steps"] = tuple(steps)
        elif item.name == "sampling":
            values["sampling"] = reader.choice("sampling", SAMPLINGS, default)
        elif item.name == "kl_form":
            values["kl_form"] = reader.choice("kl_form", KL_FORMS, default)
        else:
            values[item.name] = reader.get(item.name, float if item.type == "float" else int, default)
            _check_recipe_value(reader, item.name, values[item.name])
    reader.finish()
    recipe = Recipe(**values)
    if recipe.input_size > recipe.short_side:
        raise reader.error("input_size", f"{recipe.input_size} exceeds short_side {recipe.short_side}")
    return recipe


def run_recipe(recipe: Recipe, overrides: Mapping[str, Any]) -> Recipe:
    """A spec run's recipe: the profile's `recipe` with the run's `overrides`.

    A run that changes `segments` but not `dense_stride` keeps the profile's dense clip span `dense_stride ×
    segments`, as the original code keeps `--dense_length` when T changes (`t_stride = dense_length // T`): the
    paper profile's 8 × 4 = 32 frames give τ = 2 for Tab. 9's 16 frames, where τ = 4 would span 61 frames and wrap
    around most videos. τ is at least 1 (a span shorter than the segments, as the smoke profile's 2 × 4 for 16
    segments, gives consecutive frames).
    """
    changed = dataclasses.replace(recipe, **overrides)
    if "segments" in overrides and "dense_stride" not in overrides:
        span = recipe.dense_stride * recipe.segments
        changed = dataclasses.replace(changed, dense_stride=max(1, span // changed.segments))
    return changed


def _read_views(views: _Reader) -> ViewProtocol:
    protocol = ViewProtocol(
        dense=views.positive("dense", int, 0, zero=True),
        uniform=views.positive("uniform", int, 1, zero=True),
        uniform_offset=views.positive("uniform_offset", float, 0.5, zero=True),
        crops=views.get("crops", int, 1),
        crop_size=views.positive("crop_size", int, 0, zero=True),
        full_resolution=views.get("full_resolution", bool, False),
    )
    if protocol.full_resolution and protocol.crop_size:
        raise views.error("crop_size", "a full-resolution crop is the short side: give crop_size or full_resolution")
    if protocol.crops not in SPATIAL_CROPS:
        raise views.error("crops", f"must be 1 (centre crop) or 3 (crops along the longer side), got {protocol.crops}")
    if protocol.uniform_offset >= 1:
        raise views.error("uniform_offset", f"must be below 1 (a fraction of a segment), got {protocol.uniform_offset}")
    if protocol.dense + protocol.uniform < 1:
        raise views.error("uniform", "at least one test view is needed")
    views.finish()
    return protocol


def _read_profile(path: Path, name: str, reader: _Reader) -> Profile:
    dataset = reader.sub("dataset")
    kind = dataset.choice("kind", DATASET_KINDS)
    synthetic = dataset.get("synthetic", dict, {})
    if kind.startswith("synthetic") and not all(isinstance(v, int) for v in synthetic.values()):
        raise dataset.error("synthetic", "expected integer settings")
    rawframes = dataset.get("rawframes", dict, None)
    if (rawframes is None) == (kind == "rawframes"):
        raise dataset.error("rawframes", "needed by kind rawframes, and only by it")
    frame_lists = dataset.get("frame_lists", bool, False)
    if frame_lists and kind != "charades":
        raise dataset.error("frame_lists", "only the charades kind reads PySlowFast frame lists")
    dataset.finish()
    imagenet = reader.sub("imagenet")
    source = imagenet.choice("source", IMAGENET_SOURCES)
    image = ImagenetSource(
        source=source,
        epochs=imagenet.positive("epochs", int, 0, zero=source != "pretrain"),
        segments=imagenet.positive("segments", int, 1),
    )
    imagenet.finish()
    protocol = _read_views(reader.sub("views", {}))
    seeds = reader.get("seeds", list, [0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise reader.error("seeds", f"expected a non-empty list of non-negative integers, got {seeds!r}")
    profile = Profile(
        name=name,
        description=reader.get("description", str, ""),
        dataset=DatasetConfig(
            kind=kind,
            synthetic=dict(synthetic),
            rawframes=None
            if rawframes is None
            else RawframesConfig.from_mapping(rawframes, f"{path}: {name}.dataset.rawframes"),
            frame_lists=frame_lists,
        ),
        arch=reader.get("arch", str),
        deep_arch=reader.get("deep_arch", str, None),
        recipe=_read_recipe(reader.sub("recipe")),
        imagenet=image,
        views=protocol,
        seeds=tuple(seeds),
        charades=_read_profile(path, f"{name}.charades", reader.sub("charades")) if "charades" in reader.data else None,
    )
    if profile.views.crop_size > profile.recipe.short_side:
        raise reader.error(
            "views.crop_size", f"{profile.views.crop_size} exceeds the recipe's short_side {profile.recipe.short_side}"
        )
    reader.finish()
    return profile


def load_profile(path: Path, name: str, overrides: Sequence[str] = ()) -> Profile:
    """Read profile `name` from a profiles TOML file, with `overrides` such as ``recipe.epochs=1`` (keys relative to
    the profile, values in TOML syntax, bare words taken as strings) applied before validation."""
    data = _load_toml(path)
    if name not in data:
        raise SpecError(f"{path}: {name}: no such profile (known: {', '.join(sorted(data))})")
    data[name] = _inherited(path, data, name)
    for override in overrides:
        _apply_override(data[name], override, f"{path}: {name}")
    return _read_profile(path, name, _Reader(path, data).sub(name))


def _inherited(path: Path, data: dict[str, Any], name: str, trail: tuple[str, ...] = ()) -> dict[str, Any]:
    """Profile `name` with the values of the profile its `base` key names underneath (recursively, tables merged
    key by key), so a profile can be another one with a few values changed."""
    profile = data[name]
    if not isinstance(profile, dict) or "base" not in profile:
        return profile
    base = profile["base"]
    if base not in data or base == name or base in trail:
        raise SpecError(f"{path}: {name}.base: {base!r} is not another profile of this file (or a cycle)")
    merged = _merged(_inherited(path, data, base, (*trail, name)), profile)
    del merged["base"]
    return merged


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in changes.items():
        both_tables = isinstance(value, dict) and isinstance(base.get(key), dict)
        result[key] = _merged(base[key], value) if both_tables else value
    return result


def _apply_override(profile: dict[str, Any], override: str, where: str) -> None:
    """Set one dotted `key=value` in a profile's TOML tables."""
    key, equals, text = override.partition("=")
    parts = key.strip().split(".")
    if not equals or not all(parts):
        raise SpecError(f"{where}: override {override!r} is not key=value (e.g. recipe.epochs=1)")
    try:
        value = tomllib.loads(f"value = {text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    table = profile
    for depth, part in enumerate(parts[:-1]):
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise SpecError(f"{where}: override {override!r}: {'.'.join(parts[: depth + 1])} is not a table")
    table[parts[-1]] = value


def _read_model(reader: _Reader, runs: dict[str, Any], loaded: bool) -> ModelSpec:
    """A model of a run; `loaded`: the run is loaded from checkpoint files, so its models have no init."""
    if loaded:
        if "init" in reader.data:
            raise reader.error("init", "a run loaded from checkpoint files has no init")
        model = ModelSpec(modality=reader.choice("modality", MODALITY_NAMES), init="checkpoint")
        reader.finish()
        return model
    model = ModelSpec(modality=reader.choice("modality", MODALITY_NAMES), init=reader.get("init", str))
    if not _INIT.match(model.init):
        raise reader.error("init", f"{model.init!r} is not random, imagenet or run:<name>/<model index>")
    reference = model.init_run
    if reference and reference[0] not in runs:
        raise reader.error("init", f"run {reference[0]!r} is not defined in [runs]")
    reader.finish()
    return model


def _read_run(name: str, reader: _Reader, runs: dict[str, Any]) -> RunSpec:
    method = reader.choice("method", METHODS)
    models_data = reader.get("models", list)
    files = reader.get("checkpoints", list, [])
    if files and (len(files) != len(models_data) or not all(isinstance(f, str) for f in files)):
        raise reader.error("checkpoints", f"expected one file name per model ({len(models_data)}), got {files!r}")
    models = []
    for index, item in enumerate(models_data):
        if not isinstance(item, dict):
            raise reader.error(f"models[{index}]", "expected a table {modality = ..., init = ...}")
        models.append(_read_model(_Reader(reader.path, item, f"{reader.prefix}models[{index}]."), runs, bool(files)))
    if method in ("ce", *DISTILLATION, *TWO_VIEWS) and len(models) != 1:
        raise reader.error("models", f"method {method} trains exactly one model, got {len(models)}")
    if method == "ml" and len(models) < 2:
        raise reader.error("models", f"method ml trains two or more models, got {len(models)}")
    if method in LATE_FUSION:
        modalities = [model.modality for model in models]
        if len(models) < 2 or len(set(modalities)) != len(modalities):
            raise reader.error("models", f"method {method} fuses two or more distinct modalities, got {modalities}")
        if files:
            raise reader.error("checkpoints", f"a {method} run is trained, not loaded from checkpoint files")
    teacher = reader.get("teacher", str, None)
    if files and teacher:
        raise reader.error("teacher", "a run loaded from checkpoint files has no teacher")
    if (teacher is None) != (method not in DISTILLATION or bool(files)):
        raise reader.error("teacher", f"methods {' and '.join(DISTILLATION)} need a teacher, others none")
    run = RunSpec(
        name=name,
        method=method,
        models=tuple(models),
        replica=reader.positive("replica", int, 0, True),
        teacher=_model_ref(reader, "teacher", teacher, runs) if teacher else None,
        recipe=_read_overrides(reader),
        deep=reader.get("deep", bool, False),
        checkpoints=tuple(reader.path.parent / name for name in files),  # relative to the spec file
    )
    reader.finish()
    return run


def _model_ref(reader: _Reader, key: str, text: str, runs: dict[str, Any]) -> ModelRef:
    """`<run name>/<model index>` checked against the spec's runs (models counted when the run is known)."""
    match = _MODEL_REF.match(text)
    if not match:
        raise reader.error(key, f"{text!r} is not <run name>/<model index>")
    run, model = match["run"], int(match["model"])
    if run not in runs:
        raise reader.error(key, f"run {run!r} is not defined in [runs]")
    count = len(_models_of(runs[run])) if key == "teacher" else cell_model_count(runs[run])
    if model >= count:
        raise reader.error(key, f"run {run!r} has {count} models, no model {model}")
    return run, model


def _models_of(run: RunSpec | dict[str, Any]) -> Sequence[Any]:
    """The models of a run, read already or still raw TOML."""
    return run.models if isinstance(run, RunSpec) else run.get("models", [])


def cell_model_count(run: RunSpec | dict[str, Any]) -> int:
    """How many model indices cells may name: a run's M models, plus for a late-fusion run its fused head, index M
    (model i < M of a late-fusion run is branch i with its own uni-modal head)."""
    method = run.method if isinstance(run, RunSpec) else run.get("method")
    return len(_models_of(run)) + (method in LATE_FUSION)


def _read_overrides(reader: _Reader) -> tuple[tuple[str, Any], ...]:
    """A run's `recipe = {...}` overrides, checked against the recipe's fields and types."""
    overrides = reader.get("recipe", dict, {})
    types = {item.name: item.type for item in dataclasses.fields(Recipe)}
    for key, value in overrides.items():
        if key not in types:
            raise reader.error(f"recipe.{key}", "unknown recipe setting")
        expected = {"int": int, "float": (int, float), "str": str}.get(types[key], list)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise reader.error(f"recipe.{key}", f"expected {types[key]}, got {value!r}")
        choices = {"sampling": SAMPLINGS, "kl_form": KL_FORMS}.get(key)
        if choices and value not in choices:
            raise reader.error(f"recipe.{key}", f"{value!r} is not one of {', '.join(choices)}")
        _check_recipe_value(_Reader(reader.path, overrides, f"{reader.prefix}recipe."), key, value)
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in overrides.items()))


def _check_acyclic(path: Path, runs: dict[str, RunSpec]) -> None:
    state: dict[str, str] = {}

    def visit(name: str, trail: list[str]) -> None:
        if state.get(name) == "done":
            return
        if state.get(name) == "active":
            raise SpecError(f"{path}: runs.{name}: initialisation cycle {' -> '.join([*trail, name])}")
        state[name] = "active"
        run = runs[name]
        for upstream in [m.init_run[0] for m in run.models if m.init_run] + ([run.teacher[0]] if run.teacher else []):
            visit(upstream, [*trail, name])
        state[name] = "done"

    for name in runs:
        visit(name, [])


def _read_paper(reader: _Reader, key: str, value: Any, metrics: int, allow_empty: bool = False) -> tuple[float, ...]:
    numbers = isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    if not numbers or not (len(value) == metrics or (allow_empty and not value)):
        raise reader.error(key, f"expected {metrics} numbers (one per metric), got {value!r}")
    return tuple(float(v) for v in value)


def _read_cell(reader: _Reader, key: str, value: Any, runs: dict[str, RunSpec], metrics: int) -> str | ResultCell:
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise reader.error(key, f"expected text or a table {{run, model, paper}}, got {value!r}")
    cell = _Reader(reader.path, value, f"{reader.prefix}{key}.")
    if "ensemble" in value:
        members = cell.get("ensemble", list)
        if len(members) < 2 or not all(isinstance(m, str) for m in members):
            raise cell.error("ensemble", f"expected two or more '<run>/<model>' names, got {members!r}")
        refs = tuple(_model_ref(cell, "ensemble", m, runs) for m in members)
    else:
        run = cell.get("run", str)
        if run not in runs:
            raise cell.error("run", f"run {run!r} is not defined in [runs]")
        refs = (_model_ref(cell, "model", f"{run}/{cell.positive('model', int, zero=True)}", runs),)
    result = ResultCell(
        members=refs,
        paper=_read_paper(cell, "paper", cell.get("paper", list), metrics, allow_empty=True),  # []: no paper value
        views=_read_views(cell.sub("views")) if "views" in value else None,
        id=cell.get("id", str, ""),
    )
    cell.finish()
    return result


def _read_labelled_models(reader: _Reader, key: str, runs: dict[str, RunSpec]) -> list[tuple[str, ModelRef, Any]]:
    """A list of `{label, model = "<run>/<index>", paper?}` tables."""
    items = []
    for index, value in enumerate(reader.get(key, list)):
        if not isinstance(value, dict):
            raise reader.error(f"{key}[{index}]", "expected a table {label, model}")
        item = _Reader(reader.path, value, f"{reader.prefix}{key}[{index}].")
        items.append((item.get("label", str), _model_ref(item, "model", item.get("model", str), runs), item))
    labels = [label for label, _, _ in items]
    if len(set(labels)) != len(labels):
        raise reader.error(key, "labels must be unique")
    return items


def _read_matrix(reader: _Reader, runs: dict[str, RunSpec], metrics: int) -> MatrixSpec:
    rows, columns = (_read_labelled_models(reader, key, runs) for key in ("rows", "columns"))
    for _, _, item in (*rows, *columns):
        item.finish()
    paper = reader.get("paper", list)
    if len(paper) != len(rows) or not all(isinstance(r, list) and len(r) == len(columns) for r in paper):
        raise reader.error("paper", f"expected {len(rows)} rows of {len(columns)} cells")
    values = tuple(
        tuple(_read_paper(reader, f"paper[{i}][{j}]", v, metrics, allow_empty=True) for j, v in enumerate(row))
        for i, row in enumerate(paper)
    )
    baseline = tuple(reader.get("baseline", list))
    if len(baseline) != 2 or baseline[0] not in [r[0] for r in rows] or baseline[1] not in [c[0] for c in columns]:
        raise reader.error("baseline", f"expected [row label, column label] of the matrix, got {list(baseline)!r}")
    reader.finish()
    return MatrixSpec(
        rows=tuple((label, ref) for label, ref, _ in rows),
        columns=tuple((label, ref) for label, ref, _ in columns),
        paper=values,
        baseline=(baseline[0], baseline[1]),
    )


def _read_triples(reader: _Reader, runs: dict[str, RunSpec]) -> TriplesSpec:
    groups, paper = [], {}
    for index, value in enumerate(reader.get("groups", list)):
        if not isinstance(value, dict):
            raise reader.error(f"groups[{index}]", "expected a table {name, models}")
        group = _Reader(reader.path, value, f"{reader.prefix}groups[{index}].")
        name = group.get("name", str)
        members = []
        for label, ref, item in _read_labelled_models(group, "models", runs):
            members.append((label, ref))
            paper[f"{name}: {label}"] = item.positive("paper", int)
            item.finish()
        group.finish()
        groups.append((name, tuple(members)))
    if len(groups) != 3:
        raise reader.error("groups", f"expected three groups (one model of each per triple), got {len(groups)}")
    reader.finish()
    return TriplesSpec(groups=tuple(groups), paper=paper)


def _read_claims(reader: _Reader, cell_ids: set[str], triples: bool) -> tuple[ClaimSpec, ...]:
    claims = []
    for index, value in enumerate(reader.get("claims", list, [])):
        if not isinstance(value, dict):
            raise reader.error(f"claims[{index}]", "expected a table {text, better, worse}")
        item = _Reader(reader.path, value, f"{reader.prefix}claims[{index}].")
        claim = ClaimSpec(
            text=item.get("text", str),
            better=item.get("better", str),
            worse=item.get("worse", str),
            metric=item.choice("metric", (*ACCURACY_METRICS, POSITIONS), "top1"),
            kind=item.choice("kind", CLAIM_KINDS, "superiority"),
            margin=item.get("margin", float, 0.0),
        )
        if claim.kind == "equivalence" and claim.margin <= 0:
            raise item.error("margin", f"an equivalence claim needs a positive margin, got {claim.margin}")
        if (claim.metric == POSITIONS) != triples:
            raise item.error("metric", f"{POSITIONS!r} is the metric of triple rankings, and their only one")
        for key in ("better", "worse"):
            if getattr(claim, key) not in cell_ids:
                raise item.error(key, f"{getattr(claim, key)!r} names no result cell of this table")
        item.finish()
        claims.append(claim)
    return tuple(claims)


def load_table(path: Path) -> TableSpec:
    """Read and validate a table spec."""
    reader = _Reader(path, _load_toml(path))
    runs_reader = reader.sub("runs")
    names = runs_reader.data
    runs = {}
    for name in names:
        if not re.fullmatch(r"[A-Za-z0-9_\-]+", name):
            raise runs_reader.error(name, "run names use letters, digits, '_' and '-'")
        runs[name] = _read_run(name, runs_reader.sub(name), names)
    runs_reader.finish()
    _check_acyclic(path, runs)
    metrics = tuple(reader.get("metrics", list, ["top1", "top5"]))
    if not metrics or not all(m in METRICS for m in metrics):
        raise reader.error("metrics", f"expected a list of {', '.join(METRICS)}, got {list(metrics)!r}")
    matrix = _read_matrix(reader.sub("matrix"), runs, len(metrics)) if "matrix" in reader.data else None
    triples = _read_triples(reader.sub("triples"), runs) if "triples" in reader.data else None
    layout = "rows" if matrix is None and triples is None else None
    columns = tuple(reader.get("columns", list, [] if layout is None else dataclasses.MISSING))
    if not all(isinstance(c, str) for c in columns) or (layout and not columns):
        raise reader.error("columns", "expected a non-empty list of column names")
    rows = []
    for index, row in enumerate(reader.get("rows", list, [])):
        if not isinstance(row, list) or len(row) != len(columns):
            raise reader.error(f"rows[{index}]", f"expected a list of {len(columns)} cells, got {row!r}")
        rows.append(tuple(_read_cell(reader, f"rows[{index}][{j}]", v, runs, len(metrics)) for j, v in enumerate(row)))
    if layout and not any(isinstance(cell, ResultCell) for row in rows for cell in row):
        raise reader.error("rows", "no result cell: a table needs at least one {run, model, paper} cell")
    ids = {cell.id for row in rows for cell in row if isinstance(cell, ResultCell) and cell.id}
    if matrix:
        ids |= {f"{row} | {column}" for row, _ in matrix.rows for column, _ in matrix.columns}
    if triples:
        ids |= {f"{name}: {label}" for name, members in triples.groups for label, _ in members}
    table = TableSpec(
        id=reader.get("id", str),
        title=reader.get("title", str),
        source=path,
        metrics=metrics,
        columns=columns,
        rows=tuple(rows),
        runs=runs,
        notes=reader.get("notes", str, ""),
        setup=reader.choice("setup", SETUPS, "sthv2"),
        matrix=matrix,
        triples=triples,
        claims=_read_claims(reader, ids, triples is not None),
    )
    multilabel = [name for name, run in runs.items() if run.method in SINGLE_LABEL_ONLY]
    if multilabel and table.setup == "charades":
        raise reader.error(f"runs.{multilabel[0]}.method", "this method is single-label: not for the charades setup")
    if table.id != path.stem:
        raise reader.error("id", f"{table.id!r} differs from the file name {path.stem!r}")
    reader.finish()
    return table


# Specs of the related methods' tables, outside `all` (which is the MML paper's Tables 1-13): a name each, and one
# name for the group.
RELATED_TABLES = ("gblend_table4", "skd_table2", "methods")
RELATED_GROUP = "related"


def table_path(directory: Path, name: str) -> Path:
    """The spec file of a table id given as `table7`, `table07` or `7`, or of a related-method table by its name."""
    if name in RELATED_TABLES:
        return directory / f"{name}.toml"
    number = name.removeprefix("table")
    if not number.isdigit():
        raise SpecError(
            f"{directory}: {name}: a table id looks like table7, table07 or 7, or is one of "
            f"{', '.join(RELATED_TABLES)} ({RELATED_GROUP}: all three)"
        )
    return directory / f"table{int(number):02d}.toml"


ALL_GROUP = "all"


def table_paths(directory: Path, names: Sequence[str]) -> list[Path]:
    """The spec files of table ids and of the groups `all` (the paper's tables) and `related` (the related
    methods'), in the order given, each once (`all related`: every table)."""
    paths: list[Path] = []
    for name in names:
        if name == ALL_GROUP:
            group = all_table_paths(directory)
        else:
            group = [table_path(directory, n) for n in (RELATED_TABLES if name == RELATED_GROUP else (name,))]
        paths += [path for path in group if path not in paths]
    return paths


def all_table_paths(directory: Path) -> list[Path]:
    """Every table spec in `directory`, in table order."""
    return sorted(directory.glob("table[0-9][0-9].toml"))
