"""Writing a table's outputs from the store: Markdown, LaTeX, ensemble heatmaps, training curves, claim verdicts,
and REPORT.md."""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from mml import atomic
from mml.report.claims import MIN_SEEDS, Outcome, Verdict, judge, label, t_interval
from mml.report.executions import execution_counts
from mml.report.heatmap import write_heatmap
from mml.report.learning import table_health, write_curves
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


def _per_video_differences(
    results: StoredResults, spec: TableSpec, cells: dict[str, tuple[tuple[ModelRef, ...], ViewProtocol | None]]
) -> Callable[[ClaimSpec], np.ndarray | None]:
    """A function giving the per-seed, per-video differences of a claim's two cells' top-k outcomes (None for other
    metrics and relative claims), reading each cell's stored scores once however many claims name it."""
    outcomes: dict[tuple[str, str], np.ndarray] = {}

    def of(cell: str, metric: str) -> np.ndarray:
        if (cell, metric) not in outcomes:
            members, views = cells[cell]
            outcomes[(cell, metric)] = results.per_video(members, metric, views)
        return outcomes[(cell, metric)]

    def differences(claim: ClaimSpec) -> np.ndarray | None:
        if claim.metric not in TOPK or claim.relative or spec.setup == "charades":
            return None
        return of(claim.better, claim.metric) - of(claim.worse, claim.metric)

    return differences


def build_report(results: StoredResults, command: str) -> tuple[Report, list[pd.DataFrame]]:
    """Fill a table from the store; also returns the per-seed ensemble matrices (empty unless a matrix table)."""
    spec = results.table
    values: dict[str, list[float]] = {}  # cell id -> per-seed value of each claim metric, keyed "id|metric"
    matrices: list[pd.DataFrame] = []
    if spec.matrix:
        matrices = results.matrices()
        data = matrix_frame(spec, matrices)
        for row, _ in spec.matrix.rows:
            for column, _ in spec.matrix.columns:
                for metric, index in METRIC_INDEX.items():
                    values[f"{row} | {column}|{metric}"] = [m.loc[row, column][index] for m in matrices]
    elif spec.triples:
        sums = results.triple_sums()
        data = triples_frame(spec, sums)
        values.update({f"{key}|{POSITIONS}": [float(s) for s in seeds] for key, seeds in sums.items()})
    else:
        cache: dict[ResultCell, tuple[tuple[float, ...], ...]] = {}

        def cell_values(cell: ResultCell) -> tuple[tuple[float, ...], ...]:
            if cell not in cache:
                cache[cell] = results.cell(cell)
                for position, metric in enumerate(spec.metrics):
                    values[f"{cell.id}|{metric}"] = [seed[position] for seed in cache[cell]]
            return cache[cell]

        data = rows_frame(spec, cell_values)
    run_ids = {name: tuple(results.run_ids(name)) for name in spec.runs}
    health = table_health(
        results.store, results.plan, [i for ids in run_ids.values() for i in ids], results.profile.views
    )
    failed = {(h.run_id, h.model): h.name for h in health if not h.learned}
    cells = claim_cells(spec)
    per_video = _per_video_differences(results, spec, cells)
    verdicts: list[Verdict] = []
    for claim in spec.claims:
        better, worse = values[f"{claim.better}|{claim.metric}"], values[f"{claim.worse}|{claim.metric}"]
        verdict = judge(claim, better, worse, per_video(claim))
        members = {ref for key in (claim.better, claim.worse) for ref in cells[key][0]}
        unlearned = sorted(
            {failed[(rid, model)] for run, model in members for rid in run_ids[run] if (rid, model) in failed}
        )
        if unlearned:
            caveat = f"rests on models that did not learn: {', '.join(f'`{name}`' for name in unlearned)}"
            verdict = dataclasses.replace(verdict, caveat=caveat)
        verdicts.append(verdict)
    executions = execution_counts(results.store, (h.run_id for h in health))  # every run behind the table
    report = Report(spec, results.profile, data, run_ids, command, tuple(verdicts), tuple(health), executions)
    return report, matrices


def unresolved_cells(matrices: list[pd.DataFrame], baseline: tuple[str, str]) -> set[tuple[str, str]]:
    """Matrix cells whose top-1 difference to the baseline cell is not resolved: the 95 % t-interval over seeds
    includes 0, or there are fewer than `MIN_SEEDS` seeds (every cell but the baseline)."""
    first = matrices[0]
    cells = {(row, column) for row in first.index for column in first.columns} - {baseline}
    if len(matrices) < MIN_SEEDS:
        return cells
    unresolved = set()
    for row, column in cells:
        differences = [m.loc[row, column][0] - m.loc[baseline][0] for m in matrices]
        interval = t_interval(differences, 0.95)
        if interval.low <= 0 <= interval.high:
            unresolved.add((row, column))
    return unresolved


def write_outputs(results: StoredResults, command: str, directory: Path) -> tuple[Report, list[Path]]:
    """Write a table's Markdown and LaTeX, its training curves, and for an ensemble matrix its heatmaps (ours,
    marking the cells not resolved from the baseline, and the paper's)."""
    report, matrices = build_report(results, command)
    paths = write_table(report, directory)
    spec = report.spec
    curves = write_curves(list(report.health), directory / f"{spec.id}_curves.png", f"{spec.title} — training loss")
    paths += [curves] if curves else []
    if spec.matrix:
        ours = matrices[0].copy()
        for row in ours.index:
            for column in ours.columns:
                ours.loc[row, column] = mean([m.loc[row, column] for m in matrices])
        seeds = len(matrices)
        title = f"{spec.title} — reproduced ({results.profile.name}, mean of {seeds} seed{'s' if seeds > 1 else ''})"
        unresolved = unresolved_cells(matrices, spec.matrix.baseline)
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
    counts = Counter(label(v) for v in verdicts)
    keys = sorted(counts, key=lambda key: (_ORDER.index(key.split(" (")[0]), key))
    return ", ".join(f"{counts[key]} {key}" for key in keys) or "no claims"


def write_summary(reports: list[Report], directory: Path) -> Path:
    """`REPORT.md`: the verdict counts and the scale caveat, then every table with its claims' verdicts."""
    verdicts = [v for r in reports for v in r.verdicts]
    profile = reports[0].profile
    failed = sorted({h.name for r in reports for h in r.health if not h.learned})
    seeds = len(profile.seeds)
    lines = [
        f"# Reproduction report — profile `{profile.name}`",
        "",
        f"{profile.description}.",
        "",
        f"Verdicts on the paper's {len(verdicts)} claims: {verdict_counts(verdicts)}.",
        "",
        f"Scale caveat: every verdict is about this profile's runs ({seeds} seed{'s' if seeds > 1 else ''}), not about"
        " the paper's numbers. A claim is judged on per-seed paired differences: supported / contradicted when the 95 %"
        " t-interval lies above / below the margin, equivalent / different when the 90 % interval (TOST) lies inside /"
        f" outside ±margin, inconclusive otherwise, and no verdict with fewer than {MIN_SEEDS} seeds. Under each table:"
        " the smallest difference it can resolve.",
        "",
    ]
    if failed:
        lines += [f"Models that did not learn ({len(failed)}): {', '.join(f'`{name}`' for name in failed)}.", ""]
    for report in reports:
        counts = verdict_counts(list(report.verdicts))
        lines.append(f"- [{report.spec.title}](#{report.spec.id}): {counts}")
    for report in reports:
        body = to_markdown(report).replace(
            f"# {report.spec.title}", f'## <a id="{report.spec.id}"></a>{report.spec.title}', 1
        )
        lines += ["", body]
    path = directory / "REPORT.md"
    atomic.write_text(path, "\n".join(lines))
    return path
