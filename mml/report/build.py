"""Writing a table's outputs from the store: Markdown, LaTeX, ensemble heatmaps, training curves, claim verdicts,
and REPORT.md."""

from __future__ import annotations

import dataclasses
import functools
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mml import atomic
from mml.gitstate import code_state
from mml.report.claims import (
    FALSE_DISCOVERY_RATE,
    MIN_SEEDS,
    Outcome,
    Verdict,
    adjust,
    combine,
    judge,
    label,
    paired_interval,
)
from mml.report.executions import execution_counts
from mml.report.export import CellRecord, Provenance, TableRecord
from mml.report.forest import forest_rows, write_forest
from mml.report.heatmap import write_heatmap
from mml.report.learning import table_health, upstream_closure, write_curves
from mml.report.results import METRIC_INDEX, TOPK, StoredResults
from mml.report.tables import Report, matrix_frame, mean, rows_frame, to_markdown, triples_frame, write_table
from mml.spec import POSITIONS, ClaimSpec, ModelRef, ResultCell, TableSpec, ViewProtocol


def claim_cells(spec: TableSpec) -> dict[str, tuple[tuple[ModelRef, ...], ViewProtocol | None]]:
    """The models (and test views, None: the profile's) behind every cell a claim can name."""
    cells: dict[str, tuple[tuple[ModelRef, ...], ViewProtocol | None]] = {
        cell.id: (cell.members, cell.views) for cell in spec.cells() if cell.id
    }
    if spec.matrix:
        for row, row_ref in spec.matrix.rows:
            for column, column_ref in spec.matrix.columns:
                cells[f"{row} | {column}"] = ((row_ref, column_ref), None)
    if spec.triples:
        for name, members in spec.triples.groups:
            cells.update({f"{name}: {label}": ((ref,), None) for label, ref in members})
    return cells


Cells = dict[str, tuple[tuple[ModelRef, ...], ViewProtocol | None]]


def _row_cells(spec: TableSpec) -> dict[ResultCell, str]:
    """Each result cell of a row layout under its key: its id, else "row label | column"."""
    keys: dict[ResultCell, str] = {}
    for row in spec.rows:
        for index, cell in enumerate(row):
            if isinstance(cell, ResultCell):
                keys.setdefault(cell, cell.id or f"{row[0]} | {spec.columns[index]}")
    return keys


def _identity(spec: TableSpec, claim: ClaimSpec, cells: Cells, run_ids: dict[str, tuple[str, ...]], views: str) -> str:
    """What a claim compares, independent of its table and wording: the runs and models of its cells (an
    ensemble's in any order; several rivals in any order), their test views, metric, kind, margin and relativity;
    positions are ranks within a table's groups, so that table's id is part of it."""

    def cell(key: str) -> str:
        members, cell_views = cells[key]
        refs = sorted(f"{','.join(run_ids[run])}/{model}" for run, model in members)
        return f"{'+'.join(refs)}@{cell_views.key if cell_views else views}"

    scope = f"{spec.id}:" if claim.metric == POSITIONS else ""
    fields = (claim.metric, claim.kind, repr(float(claim.margin)), str(claim.relative))
    rivals = "&".join(sorted(cell(rival) for rival in claim.rivals))
    return f"{scope}{'|'.join(fields)}|{cell(claim.better)}|{rivals}"


def build_report(results: StoredResults, command: str) -> tuple[Report, list[pd.DataFrame]]:
    """Fill a table from the store; also returns the per-seed ensemble matrices (empty unless a matrix table)."""
    spec = results.table
    values: dict[str, dict[str, tuple[float, ...]]] = {}  # cell key -> metric -> per-seed value
    cells: Cells = claim_cells(spec)
    matrices: list[pd.DataFrame] = []
    if spec.matrix:
        matrices = results.matrices()
        data = matrix_frame(spec, matrices)
        for row, _ in spec.matrix.rows:
            for column, _ in spec.matrix.columns:
                values[f"{row} | {column}"] = {
                    metric: tuple(m.loc[row, column][index] for m in matrices) for metric, index in METRIC_INDEX.items()
                }
    elif spec.triples:
        sums = results.triple_sums()
        data = triples_frame(spec, sums)
        values.update({key: {POSITIONS: tuple(float(s) for s in seeds)} for key, seeds in sums.items()})
    else:
        keys = _row_cells(spec)
        cells.update({key: (cell.members, cell.views) for cell, key in keys.items()})
        cache: dict[ResultCell, tuple[tuple[float, ...], ...]] = {}

        def cell_values(cell: ResultCell) -> tuple[tuple[float, ...], ...]:
            if cell not in cache:
                cache[cell] = results.cell(cell)
                values[keys[cell]] = {m: tuple(seed[i] for seed in cache[cell]) for i, m in enumerate(spec.metrics)}
            return cache[cell]

        data = rows_frame(spec, cell_values)
    run_ids = {name: tuple(results.run_ids(name)) for name in spec.runs}
    behind = tuple(upstream_closure(results.plan, [i for ids in run_ids.values() for i in ids]))
    health = table_health(results.store, results.plan, behind, results.profile.views)
    failed = {(h.run_id, h.model): h.name for h in health if not h.learned}
    correct: dict[tuple[str, str], np.ndarray] = {}  # (cell, metric) -> (seeds, videos) per-video outcomes

    def per_video(claim: ClaimSpec) -> np.ndarray | None:
        """The per-seed, per-video differences of a pairwise claim's top-k outcomes (None for other metrics, relative
        claims and multi-label data), reading each cell's stored scores once however many claims name it."""
        if claim.metric not in TOPK or claim.relative or spec.setup == "charades":
            return None
        for key in (claim.better, claim.rival):
            if (key, claim.metric) not in correct:
                members, views = cells[key]
                correct[(key, claim.metric)] = results.correct(members, claim.metric, views)
        return 100.0 * (correct[(claim.better, claim.metric)].astype(float) - correct[(claim.rival, claim.metric)])

    views = results.profile.views.key
    verdicts: list[Verdict] = []
    for claim in spec.claims:
        better = values[claim.better][claim.metric]
        pairs = [
            judge(pair, better, values[pair.rival][claim.metric], per_video(pair))
            for pair in map(claim.against, claim.rivals)
        ]
        verdict = pairs[0] if isinstance(claim.worse, str) else combine(claim, pairs)
        verdict = dataclasses.replace(verdict, identity=_identity(spec, claim, cells, run_ids, views))
        members = {ref for key in (claim.better, *claim.rivals) for ref in cells[key][0]}
        unlearned = sorted(
            {failed[(rid, model)] for run, model in members for rid in run_ids[run] if (rid, model) in failed}
        )
        if unlearned:
            caveat = f"rests on models that did not learn: {', '.join(f'`{name}`' for name in unlearned)}"
            verdict = dataclasses.replace(verdict, caveat=caveat)
        verdicts.append(verdict)
    executions = execution_counts(results.store, (h.run_id for h in health))  # every run behind the table
    commit, dirty = code_state(spec.source.parent)
    record = TableRecord(
        cells={
            key: CellRecord(
                members=tuple(cells[key][0]),
                views=(cells[key][1] or results.profile.views).key,
                values=cell_values_of,
                correct={metric: found for (cell, metric), found in correct.items() if cell == key},
            )
            for key, cell_values_of in values.items()
        },
        provenance=Provenance(commit, dirty, behind),
    )
    report = Report(spec, results.profile, data, run_ids, command, tuple(verdicts), tuple(health), executions, record)
    return report, matrices


def unresolved_cells(
    matrices: list[pd.DataFrame],
    baseline: tuple[str, str],
    correct: Callable[[tuple[str, str]], np.ndarray] | None = None,
) -> set[tuple[str, str]]:
    """Matrix cells whose top-1 difference to the baseline cell is not resolved: its 95 % interval includes 0 (over
    seeds and the validation videos when `correct` gives a cell's per-seed, per-video top-1 outcomes, else over
    seeds), or there are fewer than `MIN_SEEDS` seeds (every cell but the baseline)."""
    first = matrices[0]
    cells = {(row, column) for row in first.index for column in first.columns} - {baseline}
    if len(matrices) < MIN_SEEDS:
        return cells
    unresolved = set()
    for row, column in cells:
        differences = [m.loc[row, column][0] - m.loc[baseline][0] for m in matrices]
        per_video = None if correct is None else 100.0 * (correct((row, column)) - correct(baseline))
        interval = paired_interval(differences, per_video, 0.95)
        if interval.se == 0 or interval.low <= 0 <= interval.high:
            unresolved.add((row, column))
    return unresolved


def write_outputs(results: StoredResults, command: str, directory: Path) -> tuple[Report, list[Path]]:
    """Write a table's Markdown and LaTeX, its training curves, its claims' forest plot, and for an ensemble matrix
    its heatmaps (ours, marking the cells not resolved from the baseline, and the paper's)."""
    report, matrices = build_report(results, command)
    paths = write_table(report, directory)
    spec = report.spec
    curves = write_curves(list(report.health), directory / f"{spec.id}_curves.png", f"{spec.title} — training loss")
    paths += [curves] if curves else []
    forest = write_forest(forest_rows(report.verdicts), directory / f"{spec.id}_forest.png", f"{spec.title} — claims")
    paths += [forest] if forest else []
    if spec.matrix:
        ours = matrices[0].copy()
        for row in ours.index:
            for column in ours.columns:
                ours.loc[row, column] = mean([m.loc[row, column] for m in matrices])
        seeds = len(matrices)
        title = f"{spec.title} — reproduced ({results.profile.name}, mean of {seeds} seed{'s' if seeds > 1 else ''})"
        rows, columns = dict(spec.matrix.rows), dict(spec.matrix.columns)

        @functools.cache  # the baseline cell is compared with every other: read its scores once
        def correct(cell: tuple[str, str]) -> np.ndarray:
            return results.correct((rows[cell[0]], columns[cell[1]]), "top1").astype(float)

        unresolved = unresolved_cells(matrices, spec.matrix.baseline, correct)
        paths += write_heatmap(ours, spec.matrix.baseline, directory / f"{spec.id}_heatmap", title, unresolved)
        if all(cell for row in spec.matrix.paper for cell in row):
            paper = pd.DataFrame(
                [list(row) for row in spec.matrix.paper],
                index=[label for label, _ in spec.matrix.rows],
                columns=[label for label, _ in spec.matrix.columns],
            )
            paths += write_heatmap(paper, spec.matrix.baseline, directory / f"{spec.id}_paper_heatmap", spec.title)
    return report, paths


_ORDER = [o.value for o in Outcome]


def verdict_counts(verdicts: list[Verdict]) -> str:
    """E.g. "3 supported, 1 inconclusive, 2 no verdict (1 seed)" in the order of `Outcome`."""
    return label_counts([label(v) for v in verdicts])


def label_counts(labels: list[str]) -> str:
    """Counts of verdict labels in the order of `Outcome`."""
    counts = Counter(labels)
    keys = sorted(counts, key=lambda key: (_ORDER.index(key.split(" (")[0]), key))
    return ", ".join(f"{counts[key]} {key}" for key in keys) or "no claims"


def headline(verdicts: list[Verdict]) -> str:
    """REPORT.md's count of verdicts over an invocation's distinct claims (each written twice counted once), as
    judged and after Benjamini–Hochberg at `FALSE_DISCOVERY_RATE` over those with a p-value."""
    adjusted = adjust(verdicts)
    distinct = [i for i, a in enumerate(adjusted) if not a.duplicate(i)]
    twice = len(verdicts) - len(distinct)
    tested = sum(1 for i in distinct if verdicts[i].p_value is not None)
    written = f" ({twice} written twice, counted once)" if twice else ""
    return (
        f"Verdicts on the paper's {len(distinct)} claims{written}: {verdict_counts([verdicts[i] for i in distinct])}."
        f" After Benjamini–Hochberg at {FALSE_DISCOVERY_RATE * 100:g} % false discovery rate over the {tested} claims"
        f" with a p-value: {label_counts([adjusted[i].label for i in distinct])}."
    )


def untested_count(reports: list[Report]) -> list[str]:
    """REPORT.md's count of the paper's claims that these tables do not test (their specs' `[[untested]]`)."""
    count = sum(len(report.spec.untested) for report in reports)
    if not count:
        return []
    return [
        f"Not tested here: {count} more claim{'s' if count > 1 else ''} of the paper, each listed under its table with"
        " the reason.",
        "",
    ]


def write_summary(reports: list[Report], directory: Path) -> Path:
    """`REPORT.md`: the verdict counts, the count of claims not tested here and the scale caveat, then every table
    with its claims' verdicts and the claims it does not test."""
    verdicts = [v for r in reports for v in r.verdicts]
    profile = reports[0].profile
    failed = sorted({h.name for r in reports for h in r.health if not h.learned})
    seeds = len(profile.seeds)
    lines = [
        f"# Reproduction report — profile `{profile.name}`",
        "",
        f"{profile.description}.",
        "",
        headline(verdicts),
        "",
        *untested_count(reports),
        f"Scale caveat: every verdict is about this profile's runs ({seeds} seed{'s' if seeds > 1 else ''}), not about"
        " the paper's numbers. A claim is judged on per-seed paired differences: supported / contradicted when the 95 %"
        " interval lies above / below the margin, equivalent / different when the 90 % interval (TOST) lies inside /"
        f" outside ±margin, inconclusive otherwise, and no verdict with fewer than {MIN_SEEDS} seeds. For top-1 and"
        " top-5 the interval covers the validation videos as well as the seeds (docs/verdicts.md); each claim shows"
        " the p-value of its test. Under each table: the smallest difference it can resolve; beside it, `<table>.json`"
        " with every number behind its verdicts.",
        "",
    ]
    rows = [row for report in reports for row in forest_rows(report.verdicts, report.spec.id)]
    if forest := write_forest(rows, directory / "REPORT_forest.png", f"Every claim — profile {profile.name}"):
        lines += [f"![Every claim's interval against its margin, coloured by verdict]({forest.name})", ""]
    if failed:
        lines += [f"Models that did not learn ({len(failed)}): {', '.join(f'`{name}`' for name in failed)}.", ""]
    for report in reports:
        counts = verdict_counts(list(report.verdicts))
        untested = f", {len(report.spec.untested)} not tested here" if report.spec.untested else ""
        lines.append(f"- [{report.spec.title}](#{report.spec.id}): {counts}{untested}")
    for report in reports:
        body = to_markdown(report).replace(
            f"# {report.spec.title}", f'## <a id="{report.spec.id}"></a>{report.spec.title}', 1
        )
        lines += ["", body]
    path = directory / "REPORT.md"
    atomic.write_text(path, "\n".join(lines))
    return path
