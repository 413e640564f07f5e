"""Reading a table spec (`reproductions/<table>.toml`): its runs and how they initialise each other, its layout of
text and result cells, its matrix or triple ranking, and its claims; and finding the spec files of table ids."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mml.errors import SpecError
from mml.init_source import RUN_NAME, Imagenet, Random, RunModel, parse_init
from mml.methods import METHODS, SETTINGS
from mml.spec.profile import read_views
from mml.spec.reader import TomlReader, load_toml
from mml.spec.recipe import check_recipe_value
from mml.spec.schema import (
    ACCURACY_METRICS,
    CLAIM_KINDS,
    COST_METRICS,
    INFORMATIVE_METRICS,
    METRICS,
    MODALITY_NAMES,
    MULTILABEL_SETUP,
    POSITIONS,
    SETUPS,
    ClaimSpec,
    MatrixSpec,
    ModelRef,
    ModelSpec,
    ResultCell,
    RunSpec,
    TableSpec,
    TriplesSpec,
    UntestedClaim,
    _models_of,
    cell_model_count,
)

_MODEL_REF = re.compile(rf"^(?P<run>{RUN_NAME})/(?P<model>\d+)$")


def _read_model(reader: TomlReader, runs: dict[str, Any], loaded: bool) -> ModelSpec:
    """A model of a run; `loaded`: the run is loaded from checkpoint files, so its models have no init."""
    if loaded:
        if "init" in reader.data:
            raise reader.error("init", "a run loaded from checkpoint files has no init")
        model = ModelSpec(modality=reader.choice("modality", MODALITY_NAMES), init="checkpoint")
        reader.finish()
        return model
    model = ModelSpec(modality=reader.choice("modality", MODALITY_NAMES), init=reader.get("init", str))
    with reader.reported():
        source = parse_init(model.init)
    if not isinstance(source, Random | Imagenet | RunModel) or (isinstance(source, Imagenet) and source.weights):
        raise reader.error("init", f"{model.init!r} is not random, imagenet or run:<name>/<model index>")
    reference = model.init_run
    if reference and reference[0] not in runs:
        raise reader.error("init", f"run {reference[0]!r} is not defined in [runs]")
    reader.finish()
    return model


def _read_run(name: str, reader: TomlReader, runs: dict[str, Any]) -> RunSpec:
    method = reader.choice("method", tuple(METHODS))
    models_data = reader.get("models", list)
    files = reader.get("checkpoints", list, [])
    if files and (len(files) != len(models_data) or not all(isinstance(f, str) for f in files)):
        raise reader.error("checkpoints", f"expected one file name per model ({len(models_data)}), got {files!r}")
    models = []
    for index, item in enumerate(models_data):
        if not isinstance(item, dict):
            raise reader.error(f"models[{index}]", "expected a table {modality = ..., init = ...}")
        models.append(_read_model(TomlReader(reader.path, item, f"{reader.prefix}models[{index}]."), runs, bool(files)))
    problem = METHODS[method].check_models([m.modality for m in models], bool(files), [m.init for m in models])
    if problem:
        raise reader.error(*problem)
    teacher = reader.get("teacher", str, None)
    if files and teacher:
        raise reader.error("teacher", "a run loaded from checkpoint files has no teacher")
    if (teacher is None) != (not METHODS[method].teacher or bool(files)):
        teachers = [name for name, other in METHODS.items() if other.teacher]
        raise reader.error("teacher", f"methods {' and '.join(teachers)} need a teacher, others none")
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


def _model_ref(reader: TomlReader, key: str, text: str, runs: dict[str, Any]) -> ModelRef:
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


def _read_overrides(reader: TomlReader) -> tuple[tuple[str, Any], ...]:
    """A run's `recipe = {...}` overrides, each checked (and normalised) as a profile's recipe values are, a method
    family's table flattened to `<family>.<name>` keys; the recipe they make with a profile's is checked as a whole
    by `run_recipe`."""
    overrides = reader.sub("recipe", {})
    flat: list[tuple[str, Any]] = []
    for key in overrides.data:
        if key in SETTINGS:
            flat += [(f"{key}.{name}", value) for name, value in overrides.get(key, dict).items()]
        else:
            flat.append((key, overrides.data[key]))
    with overrides.reported():
        return tuple(sorted((key, check_recipe_value(key, value)) for key, value in flat))


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


def _read_paper(reader: TomlReader, key: str, value: Any, metrics: int, allow_empty: bool = False) -> tuple[float, ...]:
    numbers = isinstance(value, list) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    if not numbers or not (len(value) == metrics or (allow_empty and not value)):
        raise reader.error(key, f"expected {metrics} numbers (one per metric), got {value!r}")
    return tuple(float(v) for v in value)


def _read_cell(reader: TomlReader, key: str, value: Any, runs: dict[str, RunSpec], metrics: int) -> str | ResultCell:
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise reader.error(key, f"expected text or a table {{run, model, paper}}, got {value!r}")
    cell = TomlReader(reader.path, value, f"{reader.prefix}{key}.")
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
        views=read_views(cell.sub("views")) if "views" in value else None,
        id=cell.get("id", str, ""),
    )
    cell.finish()
    return result


def _read_labelled_models(reader: TomlReader, key: str, runs: dict[str, RunSpec]) -> list[tuple[str, ModelRef, Any]]:
    """A list of `{label, model = "<run>/<index>", paper?}` tables."""
    items = []
    for index, value in enumerate(reader.get(key, list)):
        if not isinstance(value, dict):
            raise reader.error(f"{key}[{index}]", "expected a table {label, model}")
        item = TomlReader(reader.path, value, f"{reader.prefix}{key}[{index}].")
        items.append((item.get("label", str), _model_ref(item, "model", item.get("model", str), runs), item))
    labels = [label for label, _, _ in items]
    if len(set(labels)) != len(labels):
        raise reader.error(key, "labels must be unique")
    return items


def _read_matrix(reader: TomlReader, runs: dict[str, RunSpec], metrics: int) -> MatrixSpec:
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


def _read_triples(reader: TomlReader, runs: dict[str, RunSpec]) -> TriplesSpec:
    groups, paper = [], {}
    for index, value in enumerate(reader.get("groups", list)):
        if not isinstance(value, dict):
            raise reader.error(f"groups[{index}]", "expected a table {name, models}")
        group = TomlReader(reader.path, value, f"{reader.prefix}groups[{index}].")
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


def _read_claims(reader: TomlReader, cell_ids: set[str], triples: bool) -> tuple[ClaimSpec, ...]:
    claims = []
    for index, value in enumerate(reader.get("claims", list, [])):
        if not isinstance(value, dict):
            raise reader.error(f"claims[{index}]", "expected a table {text, better, worse}")
        item = TomlReader(reader.path, value, f"{reader.prefix}claims[{index}].")
        better = item.get("better", str)
        claim = ClaimSpec(
            text=item.get("text", str),
            better=better,
            worse=_read_rivals(item, better, cell_ids),
            metric=item.choice("metric", (*ACCURACY_METRICS, *COST_METRICS, *INFORMATIVE_METRICS, POSITIONS), "top1"),
            kind=item.choice("kind", CLAIM_KINDS, "superiority"),
            margin=item.get("margin", float, 0.0),
            relative=item.get("relative", bool, False),
        )
        if claim.kind == "equivalence" and claim.margin <= 0:
            raise item.error("margin", f"an equivalence claim needs a positive margin, got {claim.margin}")
        if (claim.metric == POSITIONS) != triples:
            raise item.error("metric", f"{POSITIONS!r} is the metric of triple rankings, and their only one")
        if claim.better not in cell_ids:
            raise item.error("better", f"{claim.better!r} names no result cell of this table")
        item.finish()
        claims.append(claim)
    return tuple(claims)


def _read_rivals(item: TomlReader, better: str, cell_ids: set[str]) -> str | tuple[str, ...]:
    """A claim's `worse`: one cell id, or a list of distinct ones (a ranking: `better` ahead of each), none of them
    `better`; a list of one is that one cell."""
    value = item.get("worse", (str, list))
    rivals = [value] if isinstance(value, str) else value
    if not rivals:
        raise item.error("worse", "an empty list: name the cell (or cells) `better` is compared with")
    for rival in rivals:
        if not isinstance(rival, str):
            raise item.error("worse", f"expected cell ids, got {rival!r}")
        if rival not in cell_ids:
            raise item.error("worse", f"{rival!r} names no result cell of this table")
    if better in rivals:
        raise item.error("worse", f"{better!r} is the claim's `better` cell: a cell is no rival of itself")
    if len(set(rivals)) != len(rivals):
        raise item.error("worse", f"{next(r for r in rivals if rivals.count(r) > 1)!r} is named twice")
    return rivals[0] if len(rivals) == 1 else tuple(rivals)


def _read_untested(reader: TomlReader) -> tuple[UntestedClaim, ...]:
    """The spec's `[[untested]]`: claims of the paper about this table that it does not test, each with the reason,
    each written once."""
    untested: list[UntestedClaim] = []
    for index, value in enumerate(reader.get("untested", list, [])):
        if not isinstance(value, dict):
            raise reader.error(f"untested[{index}]", "expected a table {text, reason}")
        item = TomlReader(reader.path, value, f"{reader.prefix}untested[{index}].")
        claim = UntestedClaim(text=item.get("text", str).strip(), reason=item.get("reason", str).strip())
        for key in ("text", "reason"):
            if not getattr(claim, key):
                raise item.error(key, "empty: say which claim is not tested, and why")
        if claim.text in (other.text for other in untested):
            raise item.error("text", "written twice: an untested claim is listed once")
        item.finish()
        untested.append(claim)
    return tuple(untested)


def load_table(path: Path) -> TableSpec:
    """Read and validate a table spec."""
    reader = TomlReader(path, load_toml(path))
    runs_reader = reader.sub("runs")
    names = runs_reader.data
    runs = {}
    for name in names:
        if not re.fullmatch(RUN_NAME, name):
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
        untested=_read_untested(reader),
    )
    multilabel = [name for name, run in runs.items() if METHODS[run.method].single_label]
    if multilabel and table.setup == MULTILABEL_SETUP:
        raise reader.error(f"runs.{multilabel[0]}.method", "this method is single-label: not for the charades setup")
    if table.setup == MULTILABEL_SETUP:
        _refuse_ensembles(reader, table)
    for index, claim in enumerate(table.claims if layout else ()):
        if claim.metric not in metrics:
            raise reader.error(
                f"claims[{index}].metric", f"{claim.metric!r} is not a metric of this table {list(metrics)}"
            )
    if table.id != path.stem:
        raise reader.error("id", f"{table.id!r} differs from the file name {path.stem!r}")
    reader.finish()
    return table


def _refuse_ensembles(reader: TomlReader, table: TableSpec) -> None:
    """Ensembles are scored by the top-1 / top-5 of averaged softmax probabilities: a multi-label table, scored by
    mAP, has none (refused here rather than after training)."""
    reason = "ensembles are single-label (top-1 / top-5 of averaged softmax): not for the charades setup"
    for index, row in enumerate(table.rows):
        for column, cell in enumerate(row):
            if isinstance(cell, ResultCell) and len(cell.members) > 1:
                raise reader.error(f"rows[{index}][{column}].ensemble", reason)
    for key, layout in (("matrix", table.matrix), ("triples", table.triples)):
        if layout is not None:
            raise reader.error(key, reason)


# Specs of the related methods' tables, outside `all` (which is the MML paper's Tables 1-13): a name each, and one
# name for the group.
RELATED_TABLES = ("gblend_table4", "skd_table2", "methods", "adamml_table2", "adamml")
RELATED_GROUP = "related"


def table_path(directory: Path, name: str) -> Path:
    """The spec file of a table id given as `table7`, `table07` or `7`, or of a related-method table by its name."""
    if name in RELATED_TABLES:
        return directory / f"{name}.toml"
    number = name.removeprefix("table")
    if not number.isdigit():
        raise SpecError(
            f"{directory}: {name}: a table id looks like table7, table07 or 7, or is one of "
            f"{', '.join(RELATED_TABLES)} ({RELATED_GROUP}: all of them)"
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
