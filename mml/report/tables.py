"""Paper tables as Markdown (pandas + tabulate) and LaTeX (booktabs): paper value, reproduced value, difference.

Row tables expand each result column into three: the paper's value, ours (mean ± std over seeds when there are
several) and the difference. Ensemble matrices (Tab. 11/12) show "ours (paper)" per cell, triple rankings (Tab. 13)
each model's sum of positions and rank beside the paper's. Under every table: the verdicts on the paper's claims,
then the profile, the seeds and the run behind each spec run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from mml import atomic
from mml.metrics import METRIC_LABELS
from mml.report.claims import Verdict, resolution_line, verdict_lines
from mml.report.ensemble import shared_ranks
from mml.report.executions import executions_line
from mml.report.learning import ModelHealth, health_lines
from mml.report.stability import stability_lines
from mml.spec import ACCURACY_METRICS, INFORMATIVE_METRICS, SELECTION_METRICS, Profile, ResultCell, TableSpec
from mml.store import code_version

if TYPE_CHECKING:
    from mml.report.export import TableRecord

METRIC_NAMES = {
    **METRIC_LABELS,
    "gflops": "GFLOPs",
    "video_gflops": "GFLOPs per video",
    **{metric: f"{modality} used" for metric, modality in SELECTION_METRICS.items()},
    **{metric: f"{modality} informative − other" for metric, modality in INFORMATIVE_METRICS.items()},
}


def mean(values: Sequence[tuple[float, ...]]) -> tuple[float, ...]:
    """Per-metric mean over seeds."""
    return tuple(statistics.fmean(column) for column in zip(*values, strict=True))


# Decimals per metric (2 unless listed): a tiny smoke model costs hundredths of a GFLOP per clip.
DIGITS = {"gflops": 4, "video_gflops": 4, **dict.fromkeys([*SELECTION_METRICS, *INFORMATIVE_METRICS], 1)}


def _ours(values: Sequence[tuple[float, ...]], metrics: Sequence[str] = ()) -> str:
    """Mean ± std over seeds per metric, then the seed count: "43.00 ± 1.00 / 81.00 ± 1.00 (n=3)"; "—" for a
    metric not measured in some seed (NaN: e.g. informative regions on data without them)."""
    digits = [DIGITS.get(m, 2) for m in metrics] or [2] * len(values[0])
    parts = []
    for column, d in zip(zip(*values, strict=True), digits, strict=True):
        if any(math.isnan(v) for v in column):
            parts.append("—")
        elif len(column) == 1:
            parts.append(f"{column[0]:.{d}f}")
        else:
            parts.append(f"{statistics.fmean(column):.{d}f} ± {statistics.stdev(column):.{d}f}")
    return f"{' / '.join(parts)} (n={len(values)})"


def _numbers(values: Sequence[float], sign: bool = False) -> str:
    return " / ".join(f"{v:+.2f}" if sign else f"{v:.2f}" for v in values)


@dataclass(frozen=True)
class Report:
    """A filled table, ready to be written."""

    spec: TableSpec
    profile: Profile
    data: pd.DataFrame
    run_ids: dict[str, tuple[str, ...]]
    command: str  # the shell-quoted command line that wrote the table (`mml.cli.recorded_command`)
    verdicts: tuple[Verdict, ...] = ()
    health: tuple[ModelHealth, ...] = ()  # the learning check of every model behind the table
    executions: tuple[tuple[str, int], ...] = ()  # how the runs behind the table ran (`execution_counts`)
    record: TableRecord | None = None  # per-seed values, per-video outcomes, commit and runs (`mml.report.export`)


def rows_frame(spec: TableSpec, values: Callable[[ResultCell], Sequence[tuple[float, ...]]]) -> pd.DataFrame:
    """A row table as strings, each result column expanded into paper / ours / Δ."""
    result_columns = {j for row in spec.rows for j, cell in enumerate(row) if isinstance(cell, ResultCell)}
    columns: list[str] = []
    for index, name in enumerate(spec.columns):
        columns += [f"{name}: paper", f"{name}: ours", f"{name}: Δ"] if index in result_columns else [name]
    records = []
    for row in spec.rows:
        record: list[str] = []
        for index, cell in enumerate(row):
            if isinstance(cell, ResultCell):
                ours = values(cell)
                if cell.paper:
                    delta = [m - p for m, p in zip(mean(ours), cell.paper, strict=True)]
                    record += [_numbers(cell.paper), _ours(ours, spec.metrics), _numbers(delta, sign=True)]
                else:  # the paper has no such cell
                    record += ["—", _ours(ours, spec.metrics), "—"]
            else:
                record += [cell, "", ""] if index in result_columns else [cell]
        records.append(record)
    return pd.DataFrame(records, columns=columns)


def matrix_frame(spec: TableSpec, matrices: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """An ensemble matrix as strings: "ours top-1/top-5 (paper top-1/top-5)" per cell, means over seeds (± the
    top-1's std when there are several)."""
    matrix = spec.matrix
    assert matrix is not None  # called for a matrix table only (`build_report`)
    records = []
    for i, (row, _) in enumerate(matrix.rows):
        record = [row]
        for j, (column, _) in enumerate(matrix.columns):
            seeds = [m.loc[row, column] for m in matrices]
            ours = "/".join(f"{v:.2f}" for v in mean(seeds))
            if len(seeds) > 1:
                ours = ours.replace("/", f"±{statistics.stdev(s[0] for s in seeds):.2f}/", 1)
            paper = matrix.paper[i][j]
            record.append(f"{ours} ({'/'.join(f'{v:.2f}' for v in paper)})" if paper else ours)
        records.append(record)
    return pd.DataFrame(records, columns=["", *(column for column, _ in matrix.columns)])


def triples_frame(spec: TableSpec, sums: dict[str, list[float]]) -> pd.DataFrame:
    """A triple ranking as strings: per group and model, the sum of positions and the rank (equal sums sharing one,
    `shared_ranks`), ours and the paper's."""
    triples = spec.triples
    assert triples is not None  # called for a triples table only (`build_report`)
    records = []
    for name, members in triples.groups:
        keys = [f"{name}: {label}" for label, _ in members]
        ours = {key: statistics.fmean(sums[key]) for key in keys}
        our_rank = dict(zip(keys, shared_ranks([ours[key] for key in keys]), strict=True))
        paper_rank = dict(zip(keys, shared_ranks([triples.paper[key] for key in keys]), strict=True))
        for key, (label, _) in zip(keys, members, strict=True):
            records.append(
                [name, label, str(triples.paper[key]), str(paper_rank[key]), f"{ours[key]:g}", str(our_rank[key])]
            )
    columns = ["Modality", "Model", "Paper: sum of positions", "Paper: rank", "Ours: sum of positions", "Ours: rank"]
    return pd.DataFrame(records, columns=columns)


def _values_note(spec: TableSpec) -> str:
    """What the numbers are: per layout, the accuracies in %, the GFLOPs per clip if shown, Δ where shown, and the
    cells without a paper value if any."""
    accuracies = " / ".join(METRIC_NAMES[m] for m in spec.metrics if m in ACCURACY_METRICS)
    if spec.triples:
        return (
            "Values: each model's sum of positions over the ranking of every triple ensemble by top-1, then top-5"
            " (positions from 0, triples tied on both sharing the average of their positions; the smaller, the better"
            " it ensembles) and its rank (equal sums sharing the best), ours (mean over seeds) beside the paper's."
        )
    if spec.matrix:
        return (
            f'Values: {accuracies} (%) of each two-model ensemble on the validation videos as "ours (paper)", ours'
            " the mean over seeds (± the top-1's std with several seeds); no Δ is shown, the heatmaps compare them."
        )
    note = f"Values: {accuracies} (%) on the validation videos, ours as mean ± std over n seeds"
    if "gflops" in spec.metrics:
        note += "; GFLOPs: inference cost of one test clip, counted by torch's FlopCounterMode"
    if "video_gflops" in spec.metrics:
        note += (
            "; GFLOPs per video: every test clip of a video, counted by torch's FlopCounterMode (an AdaMML network:"
            " its policy on every segment and each recognition network on the segments it selects; flow extraction"
            " not counted)"
        )
    if SELECTION_METRICS.keys() & set(spec.metrics):
        note += "; used: % of the test segments on which a modality's network runs"
    if INFORMATIVE_METRICS.keys() & set(spec.metrics):
        note += (
            "; informative − other: % of the test segments in the informative regions (those with the class's"
            " motion) on which a modality's network runs, minus % of the other segments, in points (0: the policy"
            " does not tell them apart; — without stored decisions or on data without informative regions)"
        )
    note += "; Δ = mean of ours − paper"
    return note + ("; — where the paper has no value." if any(not c.paper for c in spec.cells()) else ".")


def notes(report: Report) -> list[str]:
    """Lines under the table: metrics, profile, seeds, run ids, how the runs behind it were executed, the code version
    and the command that wrote it (a test checks that every committed table names the current code version, so none
    outlives a SEMANTICS bump)."""
    profile = report.profile
    runs = "; ".join(f"{name} = {', '.join(ids)}" for name, ids in report.run_ids.items())
    lines = [
        _values_note(report.spec),
        f"Profile `{profile.name}`: {profile.description}",
        f"Seeds: {', '.join(map(str, profile.seeds))}. Runs (store ids): {runs}.",
        *([executions_line(report.executions)] if report.executions else []),
        *(_provenance_lines(report) if report.record else []),
        f"Code version: {code_version()}. Generated by `{report.command}` — do not edit.",
    ]
    if report.spec.notes:
        lines.insert(1, report.spec.notes)
    return lines


def _provenance_lines(report: Report) -> list[str]:
    """The upstream runs behind the table (initialisations and teachers outside its spec runs), the git commit of
    the code and the machine-readable file beside the table."""
    assert report.record is not None  # called when there is one
    provenance = report.record.provenance
    spec_runs = {rid for ids in report.run_ids.values() for rid in ids}
    upstream = [rid for rid in provenance.run_ids if rid not in spec_runs]
    lines = [f"Upstream runs (store ids): {', '.join(upstream)}."] if upstream else []
    if provenance.commit is None:
        commit = "not run from a git checkout"
    else:
        commit = f"{provenance.commit}{' with uncommitted changes' if provenance.dirty else ''}"
    lines.append(
        f"Git commit: {commit}. Per-seed values, per-video outcomes and every claim's statistics:"
        f" `{report.spec.id}.json`."
    )
    return lines


def to_markdown(report: Report) -> str:
    """GitHub-flavoured Markdown: a title, the table, the claims' verdicts, the notes."""
    data = report.data
    body = data.to_markdown(index=False, tablefmt="pipe", colalign=["left"] * len(data.columns), disable_numparse=True)
    claims = ""
    if report.verdicts:
        claims = "\n".join(
            ["", "Claims of the paper:", "", *verdict_lines(report.verdicts), "", resolution_line(report.verdicts), ""]
        )
    untested = "\n".join(["", *untested_lines(report.spec), ""]) if report.spec.untested else ""
    unstable_lines = _unstable_lines(report)
    unstable = "\n".join(["", *unstable_lines, ""]) if unstable_lines else ""
    health = "\n".join(["", *health_lines(list(report.health)), ""]) if report.health else ""
    text = "\n".join(f"- {line}" for line in notes(report))
    return f"# {report.spec.title}\n\n{body}\n{claims}{untested}{unstable}{health}\n{text}\n"


def untested_lines(spec: TableSpec) -> list[str]:
    """The claims of the paper about this table that it does not test (its spec's `[[untested]]`), with why."""
    return [
        "Claims of the paper not tested here:",
        "",
        *(f"- **not tested**: {c.text} — {c.reason}" for c in spec.untested),
    ]


def _unstable_lines(report: Report) -> list[str]:
    """The table's unstable cells (`mml.report.stability`), from the per-seed values of its record."""
    cells = {key: cell.values for key, cell in report.record.cells.items()} if report.record else {}
    return stability_lines(cells, report.spec.metrics)


_LATEX_ESCAPES = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "Δ": r"$\Delta$",
    "−": "-",
    "—": "---",
}


def latex_escape(text: str) -> str:
    """Escape LaTeX's special characters (and spell ±, Δ, ✓, ✗ in math mode)."""
    return "".join(_LATEX_ESCAPES.get(char, char) for char in text)


def to_latex(report: Report) -> str:
    """A booktabs `table` environment with the verdicts and notes as a footnote-size paragraph."""
    data = report.data
    header = " & ".join(latex_escape(c) for c in data.columns) + r" \\"
    body = [" & ".join(latex_escape(str(v)) for v in row) + r" \\" for row in data.itertuples(index=False)]
    lines_below = [line.removeprefix("- ") for line in verdict_lines(report.verdicts)]
    if report.verdicts:
        lines_below.append(resolution_line(report.verdicts))
    lines_below += (
        [line.strip().removeprefix("- ") for line in health_lines(list(report.health))] if report.health else []
    )
    lines_below += [f"Not tested here: {claim.text} — {claim.reason}" for claim in report.spec.untested]
    lines_below += [line.removeprefix("- ") for line in _unstable_lines(report)]
    lines_below += notes(report)
    text = r" \\ ".join(latex_escape(line.replace("**", "")).replace("`", "") for line in lines_below)
    lines = [
        r"\begin{table}[ht]",
        r"\centering",
        rf"\caption{{{latex_escape(report.spec.title)}}}",
        r"\resizebox{\textwidth}{!}{%",
        rf"\begin{{tabular}}{{{'l' * len(data.columns)}}}",
        r"\toprule",
        header,
        r"\midrule",
        *body,
        r"\bottomrule",
        r"\end{tabular}}",
        rf"\par\footnotesize {text}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


def write_table(report: Report, directory: Path) -> list[Path]:
    """Write `<id>.md` and `<id>.tex` into `directory`, each atomically (a killed writer leaves the old file or the
    new one, never half a table); returns their paths."""
    paths = [directory / f"{report.spec.id}.md", directory / f"{report.spec.id}.tex"]
    atomic.write_text(paths[0], to_markdown(report))
    atomic.write_text(paths[1], to_latex(report))
    return paths
