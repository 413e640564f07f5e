"""Writing a table's outputs from the store: Markdown, LaTeX, ensemble heatmaps, claim verdicts, and REPORT.md."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from mml.report.claims import Verdict, judge
from mml.report.heatmap import write_heatmap
from mml.report.results import METRIC_INDEX, StoredResults
from mml.report.tables import Report, matrix_frame, mean, rows_frame, to_markdown, triples_frame, write_table
from mml.spec import ResultCell


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
        data = triples_frame(spec, results.triple_sums())
    else:
        cache: dict[ResultCell, tuple[tuple[float, ...], ...]] = {}

        def cell_values(cell: ResultCell) -> tuple[tuple[float, ...], ...]:
            if cell not in cache:
                cache[cell] = results.cell(cell)
                for position, metric in enumerate(spec.metrics):
                    values[f"{cell.id}|{metric}"] = [seed[position] for seed in cache[cell]]
            return cache[cell]

        data = rows_frame(spec, cell_values)
    verdicts: list[Verdict] = []
    for claim in spec.claims:
        better, worse = values[f"{claim.better}|{claim.metric}"], values[f"{claim.worse}|{claim.metric}"]
        verdicts.append(judge(claim, better, worse))
    run_ids = {name: tuple(results.run_ids(name)) for name in spec.runs}
    report = Report(spec, results.profile, data, run_ids, command, tuple(verdicts))
    return report, matrices


def write_outputs(results: StoredResults, command: str, directory: Path) -> tuple[Report, list[Path]]:
    """Write a table's Markdown and LaTeX, and for an ensemble matrix its heatmaps (ours, and the paper's)."""
    report, matrices = build_report(results, command)
    paths = write_table(report, directory)
    spec = report.spec
    if spec.matrix:
        ours = matrices[0].copy()
        for row in ours.index:
            for column in ours.columns:
                ours.loc[row, column] = mean([m.loc[row, column] for m in matrices])
        title = f"{spec.title} — reproduced ({results.profile.name})"
        paths += write_heatmap(ours, spec.matrix.baseline, directory / f"{spec.id}_heatmap", title)
        if all(cell for row in spec.matrix.paper for cell in row):
            paper = pd.DataFrame(
                [list(row) for row in spec.matrix.paper],
                index=[label for label, _ in spec.matrix.rows],
                columns=[label for label, _ in spec.matrix.columns],
            )
            paths += write_heatmap(paper, spec.matrix.baseline, directory / f"{spec.id}_paper_heatmap", spec.title)
    return report, paths


def write_summary(reports: list[Report], directory: Path) -> Path:
    """`REPORT.md`: every table with its claims' verdicts on one page, after a summary of the verdicts."""
    held = sum(v.holds for r in reports for v in r.verdicts)
    total = sum(len(r.verdicts) for r in reports)
    profile = reports[0].profile
    lines = [
        f"# Reproduction report — profile `{profile.name}`",
        "",
        f"{profile.description}.",
        "",
        f"Claims of the paper held here: {held} of {total}.",
        "",
    ]
    for report in reports:
        held_here = sum(v.holds for v in report.verdicts)
        lines.append(f"- [{report.spec.title}](#{report.spec.id}): {held_here} of {len(report.verdicts)} claims held")
    for report in reports:
        body = to_markdown(report).replace(
            f"# {report.spec.title}", f'## <a id="{report.spec.id}"></a>{report.spec.title}', 1
        )
        lines += ["", body]
    path = directory / "REPORT.md"
    path.write_text("\n".join(lines))
    return path
