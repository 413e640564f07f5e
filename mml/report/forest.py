"""Forest plots of claim verdicts: each claim's interval against its margin, coloured by verdict.

One row per claim: the confidence interval of the mean paired difference as a bar with Δ as a dot, the claim's
margin as a black tick (an equivalence claim: ±margin, the band between shaded), coloured by outcome. A claim
without an interval (too few seeds) is a hollow grey dot at Δ; one not measured on this data is a grey note. Claims
in other units (top-1 points, % of the worse cell, GFLOPs, sums of positions) sit in separate panels, each with its
own axis. Drawn on a bare `Figure` (no pyplot) and saved as the heatmaps are (`mml.report.heatmap.save_figure`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from mml.report.claims import Outcome, Verdict
from mml.report.heatmap import DPI, save_figure

COLOURS = {
    Outcome.SUPPORTED: "tab:green",
    Outcome.CONTRADICTED: "tab:red",
    Outcome.EQUIVALENT: "tab:blue",
    Outcome.DIFFERENT: "tab:orange",
    Outcome.INCONCLUSIVE: "tab:olive",
    Outcome.NO_VERDICT: "tab:gray",
}
LABEL_CHARACTERS = 70  # a claim's text is cut to this many characters
ROW_HEIGHT = 0.24  # inches per claim
LABEL_WIDTH = 0.055  # inches per label character


@dataclass(frozen=True)
class ForestRow:
    """One claim as plotted."""

    label: str  # the claim's text, cut to `LABEL_CHARACTERS` (prefixed with its table's id over several tables)
    unit: str  # the panel: the metric, "% of worse" for a relative claim
    mean: float  # Δ (nan: not measured)
    low: float | None  # the interval (None: no verdict)
    high: float | None
    margin: float
    equivalence: bool
    outcome: Outcome


def _cut(text: str) -> str:
    return text if len(text) <= LABEL_CHARACTERS else text[: LABEL_CHARACTERS - 1] + "…"


def forest_rows(verdicts: Sequence[Verdict], table: str = "") -> list[ForestRow]:
    """The rows of a forest plot of `verdicts`, in their order; `table`, when given, prefixes each label."""
    rows = []
    for verdict in verdicts:
        claim, interval = verdict.claim, verdict.interval
        unit = f"{claim.metric}, % of worse" if claim.relative else claim.metric
        rows.append(
            ForestRow(
                label=_cut(f"{table}: {claim.text}" if table else claim.text),
                unit=unit,
                mean=verdict.mean,
                low=interval.low if interval else None,
                high=interval.high if interval else None,
                margin=claim.margin,
                equivalence=claim.kind == "equivalence",
                outcome=verdict.outcome,
            )
        )
    return rows


def _panels(rows: Sequence[ForestRow]) -> dict[str, list[ForestRow]]:
    panels: dict[str, list[ForestRow]] = {}
    for row in rows:
        panels.setdefault(row.unit, []).append(row)
    return panels


def _draw(ax: Axes, rows: Sequence[ForestRow], unit: str) -> None:
    """One panel: the rows of one unit, top to bottom."""
    ax.axvline(0, color="lightgrey", linewidth=0.8, zorder=0)
    for y, row in enumerate(rows):
        colour = COLOURS[row.outcome]
        ticks = (-row.margin, row.margin) if row.equivalence else (row.margin,)
        if row.equivalence:
            ax.fill_betweenx([y - 0.35, y + 0.35], -row.margin, row.margin, color="tab:blue", alpha=0.08, linewidth=0)
        ax.plot(ticks, [y] * len(ticks), linestyle="none", marker="|", markersize=9, color="black")
        if math.isnan(row.mean):
            ax.annotate(
                "not measured",
                (row.margin, y),
                xytext=(6, 0),
                textcoords="offset points",
                va="center",
                fontsize=6,
                color=colour,
            )
        elif row.low is None or row.high is None:
            ax.plot([row.mean], [y], marker="o", markerfacecolor="none", color=colour, markersize=4)
        else:
            ax.plot([row.low, row.high], [y, y], color=colour, linewidth=2.0, solid_capstyle="butt")
            ax.plot([row.mean], [y], marker="o", color=colour, markersize=3.5)
    ax.set_yticks(range(len(rows)), labels=[row.label for row in rows], fontsize=6)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.set_xlabel(f"paired difference ({unit})", fontsize=7)
    ax.tick_params(axis="x", labelsize=6)


def figure(rows: Sequence[ForestRow], title: str) -> Figure:
    """The forest plot of `rows`: one panel per unit, heights in proportion to their rows."""
    panels = _panels(rows)
    width = 4.5 + LABEL_WIDTH * max(len(row.label) for row in rows)
    height = ROW_HEIGHT * len(rows) + 0.9 * len(panels) + 0.8
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=[len(p) + 2 for p in panels.values()])
    for ax, (unit, members) in zip(axes[:, 0], panels.items(), strict=True):
        _draw(ax, members, unit)
    present = [outcome for outcome in Outcome if any(row.outcome is outcome for row in rows)]
    handles = [Line2D([], [], color=COLOURS[o], linewidth=2, label=o.value) for o in present]
    handles.append(Line2D([], [], color="black", marker="|", linestyle="none", markersize=9, label="margin"))
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.suptitle(f"{title}\n(bars: the verdict's interval, dots: Δ; hollow: no verdict)", fontsize=9)
    return fig


def write_forest(rows: Sequence[ForestRow], path: Path, title: str) -> Path | None:
    """Write the forest plot of `rows` to the PNG `path` (atomically, byte-identical for the same rows); None, and
    nothing written, without rows."""
    if not rows:
        return None
    save_figure(figure(rows, title), path, dpi=DPI, metadata={"Software": None})
    return path
