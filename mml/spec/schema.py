"""The typed dataclasses of table specs and profiles, and the names their values are chosen from.

A *table spec* (`reproductions/tableNN.toml`) names the runs a paper table needs, how they are initialised from each
other, and which model of which run fills which cell, with the paper's numbers. A *profile*
(`reproductions/profiles.toml`) says at which scale to run them: dataset, backbone, recipe, seeds, test views.
`mml.spec.profile` and `mml.spec.table` read them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mml.errors import SpecError
from mml.init_source import InitialisedFrom
from mml.methods import METHODS
from mml.spec.dataset import DatasetConfig
from mml.spec.recipe import Recipe, identity

MODALITY_NAMES = ("RGB", "Flow", "Diff")
SETUPS = ("sthv2", "charades", "long")
MULTILABEL_SETUP = "charades"  # the setup whose videos carry several actions (BCE, mAP)
ACCURACY_METRICS = ("top1", "top5", "map")
# Measured inference costs, where lower is better: GFLOPs of one test clip, and of one test video (every view; an
# AdaMML network's selected segments and its policy).
COST_METRICS = ("gflops", "video_gflops")
# % of test segments that run each modality (an AdaMML network's decisions; 100 or 0 for networks without a policy).
SELECTION_METRICS = {"selected_rgb": "RGB", "selected_flow": "Flow", "selected_diff": "Diff"}
# Whether a policy runs each modality where the action is: % of the test segments in informative regions that run it
# minus % of the others (points; 0 for a network without a policy; data with informative regions only).
INFORMATIVE_METRICS = {"informative_rgb": "RGB", "informative_flow": "Flow", "informative_diff": "Diff"}
METRICS = (*ACCURACY_METRICS, *COST_METRICS, *SELECTION_METRICS, *INFORMATIVE_METRICS)
IMAGENET_SOURCES = ("torchvision", "pretrain")
SPATIAL_CROPS = (1, 3)
# Where the k dense test views start (`mml.data.sampling.view_starts`): "appendix1" at the starts of k equal parts of
# the possible starts, short videos wrapping (the paper's formula, its Tab. 9-10); "pyslowfast" evenly from the first
# possible start to the last, frames clamped at the video's end (PySlowFast's multi-view test, the Charades protocol).
DENSE_SPACINGS = ("appendix1", "pyslowfast")


@dataclass(frozen=True)
class ViewProtocol:
    """Test-time views "Dense k + Uniform m" (paper Appendix 1), each cut into `crops` square spatial crops.

    Uniform view i of m starts at shift (i + uniform_offset) / m of a segment: offset 0 gives the paper's formula,
    offset 0.5 with m = 1 the original code's centred single view used for the ablation tables. `crops` 1 is the
    centre crop, 3 PySlowFast's / mmaction2's three crops along the longer side (start, centre, end); `crop_size`
    is their side and the model's test input size, 0 meaning the recipe's `input_size`. `full_resolution` makes
    the side the recipe's `short_side` instead, at any scale: the paper's "central full-resolution crop" of final
    testing (Appendix 1, Tab. 9 and 10; TSM's `--full_res`, 256 of 256), where the ablations use a 224 centre crop.
    `dense_spacing` is where the dense views start, one of `DENSE_SPACINGS`.
    """

    dense: int = identity(default=0)
    uniform: int = identity(default=1)
    uniform_offset: float = identity(default=0.5)
    crops: int = identity(default=1)
    crop_size: int = identity(default=0)
    full_resolution: bool = identity(default=False)
    dense_spacing: str = identity(default="appendix1")

    def crop_side(self, recipe: Recipe) -> int:
        """The side of the square test crops (the model's test input size) under `recipe`."""
        if self.full_resolution:
            return recipe.short_side
        return self.crop_size or recipe.input_size

    @property
    def key(self) -> str:
        """A folder name for this protocol's evaluations, e.g. `dense0-uniform1-offset0.5`,
        `dense10-uniform0-offset0-crops3-size256-pyslowfast` or `dense1-uniform2-offset0-crops1-full`; protocols with
        a single recipe-sized centre crop and Appendix 1's dense spacing keep the short form that stored evaluations
        are filed under."""
        key = f"dense{self.dense}-uniform{self.uniform}-offset{self.uniform_offset:g}"
        if self.full_resolution:
            key += f"-crops{self.crops}-full"
        elif self.crops != 1 or self.crop_size != 0:
            key += f"-crops{self.crops}-size{self.crop_size}"
        if self.dense_spacing != DENSE_SPACINGS[0]:
            key += f"-{self.dense_spacing}"
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
class Profile:
    """One scale at which tables are reproduced."""

    name: str
    description: str
    dataset: DatasetConfig
    arch: str
    deep_arch: str | None  # the backbone of runs marked `deep` (Tab. 9's ResNet-101); None: such runs are refused
    deep_segments: int | None  # the segments `deep` runs train (Tab. 9's 16 frames); None: the recipe's
    recipe: Recipe
    imagenet: ImagenetSource
    views: ViewProtocol
    seeds: tuple[int, ...]
    charades: Profile | None = None  # the multi-label setup (I3D on Charades, paper §3.1.2) of this scale
    long: Profile | None = None  # longer videos for per-segment modality selection (AdaMML); the rest as sthv2

    def setup(self, name: str) -> Profile:
        """The profile of a table's setup: this one for `sthv2`, its `charades` or `long` section for those."""
        if name == "sthv2":
            return self
        section = {"charades": self.charades, "long": self.long}[name]
        if section is None:
            raise SpecError(f"profile {self.name!r} has no [{self.name}.{name}] section for the {name} setup")
        return section


@dataclass(frozen=True)
class ModelSpec(InitialisedFrom):
    """One model of a run in a table spec: its input modality and where its weights start from (`init`: random,
    imagenet, run:<run name>/<model index>, or checkpoint for a run loaded from weight files)."""

    modality: str
    init: str


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

    `kind` "superiority": `better` beats `worse` by more than `margin` (lower is better for `COST_METRICS` and
    positions; 0: simply beats it; negative: "not worse by more than |margin|"). "equivalence": the two cells are
    within ±`margin` of each other (`margin` > 0), as in "nearly equal", "useless", "within 0.5". `better` and
    `worse` are cell ids (`id` of a result cell), "row label | column label" in a matrix table, or "group: label" in
    a triple ranking (metric "positions"). `worse` may name several rivals (a ranking: "`better` is ahead of every
    one of them"), judged against each and supported only when it is against all (`mml.report.claims.combine`).
    """

    text: str
    better: str
    worse: str | tuple[str, ...]
    metric: str = "top1"
    kind: str = "superiority"
    margin: float = 0.0
    relative: bool = False  # differences in % of the `worse` cell's value ("saves 35 % of the computation")

    @property
    def rivals(self) -> tuple[str, ...]:
        """The cells `better` is compared with: one, or several for a ranking."""
        return (self.worse,) if isinstance(self.worse, str) else self.worse

    @property
    def rival(self) -> str:
        """The one cell a pairwise claim compares `better` with.

        Raises:
            ValueError: the claim has several rivals (judge it against each, `against`).
        """
        if not isinstance(self.worse, str):
            raise ValueError(f"{self.text}: a claim against {len(self.worse)} rivals has no single one")
        return self.worse

    def against(self, rival: str) -> ClaimSpec:
        """The pairwise claim of `better` against one of its rivals."""
        return dataclasses.replace(self, worse=rival)


@dataclass(frozen=True)
class UntestedClaim:
    """A claim of the paper that no table here tests, and why (a spec's `[[untested]]`; REPORT.md lists it under its
    table), so that every claim is either judged or declared untestable."""

    text: str
    reason: str


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
    setup: str = "sthv2"  # `charades`: the multi-label setup, `long`: long videos (the profile's section of that name)
    matrix: MatrixSpec | None = None
    triples: TriplesSpec | None = None
    claims: tuple[ClaimSpec, ...] = ()
    untested: tuple[UntestedClaim, ...] = ()  # the paper's claims about this table that are not tested here

    def cells(self) -> list[ResultCell]:
        """Every result cell of the row layout."""
        return [cell for row in self.rows for cell in row if isinstance(cell, ResultCell)]


def _models_of(run: RunSpec | dict[str, Any]) -> Sequence[Any]:
    """The models of a run, read already or still raw TOML."""
    return run.models if isinstance(run, RunSpec) else run.get("models", [])


def cell_model_count(run: RunSpec | dict[str, Any]) -> int:
    """How many model indices cells may name: a run's M models, plus for a late-fusion run its fused head, index M
    (model i < M of a late-fusion run is branch i with its own uni-modal head)."""
    method = run.method if isinstance(run, RunSpec) else run.get("method")
    return len(_models_of(run)) + (METHODS[method].extra_heads if method in METHODS else 0)
