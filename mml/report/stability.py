"""Cells whose seeds scatter far more than the rest of their table, named as unstable beneath it with the seeds a
verdict on them would need: more validation videos shrink the videos' share of a cell's spread, not a method's
seed-to-seed instability (a G-Blend seed that collapses, a distillation that diverges on one seed).

The rule, on the per-seed values of the table's first accuracy metric (top-1, or mAP): a cell is **unstable** when
its seed sd exceeds both `FACTOR` × the median seed sd of the table's cells and `FLOOR` points.

- Relative part: at 3 seeds a cell's variance is σ² χ²₂ / 2, so its sd exceeds k σ with probability exp(−k²), and
  the median of a table's cell sds is about σ √ln 2 ≈ 0.83 σ when every cell has the same σ. Three times the median
  is then ≈ 2.5 σ, exceeded by chance with probability exp(−6.25) ≈ 0.2 % per cell: under one false flag expected
  over the ~150 cells of every table of the `small` profile, while a method that collapses on one seed stands far
  above it.
- Absolute floor: in a table whose cells are all precise, a cell at three times a small median is still within the
  ordinary spread that the claims' intervals are built for (the median paired seed sd of the `small` profile's top-1
  claims was 2.71 points on 256 validation videos); below `FLOOR` points a cell is not called unstable.

What it would take to judge such a cell: the seeds n for a 95 % t-interval of half-width h at its sd, the smallest n
with t(0.975, n − 1) · sd / √n ≤ h. A paired difference between it and a stable cell has about this sd, its scatter
dominating the other's.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scipy import stats

from mml.metrics import METRIC_LABELS
from mml.spec import ACCURACY_METRICS

FACTOR = 3.0
FLOOR = 3.0  # points
HALF_WIDTHS = (3.0, 1.0)  # the interval half-widths (points) whose seed counts are given
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Unstable:
    """A cell whose seeds scatter: its seed sd over its seeds, and the seeds a verdict would need."""

    cell: str
    sd: float
    seeds: int
    needed: tuple[int, ...]  # seeds for a `CONFIDENCE` interval of each of `HALF_WIDTHS` at this sd


def seeds_needed(sd: float, half_width: float, confidence: float = CONFIDENCE) -> int:
    """The fewest seeds (at least 2) whose `confidence` t-interval of a mean at seed sd `sd` is at most ±`half_width`.

    Raises:
        ValueError: a half-width that is not positive, or an sd that is negative or not finite.
    """
    if not half_width > 0 or not 0 <= sd < math.inf:
        raise ValueError(f"need a positive half-width and a finite sd >= 0, got ±{half_width} at sd {sd}")
    quantile = (1 + confidence) / 2
    # t > z, so no n below the normal approximation's (z sd / h)² is enough: start there.
    seeds = max(2, math.ceil((stats.norm.ppf(quantile) * sd / half_width) ** 2))
    while stats.t.ppf(quantile, seeds - 1) * sd / math.sqrt(seeds) > half_width:
        seeds += 1
    return seeds


def unstable_cells(values: Mapping[str, Sequence[float]]) -> tuple[float, list[Unstable]]:
    """The median seed sd of the cells of `values` (cell -> value per seed) and the unstable ones among them, in
    order; cells with fewer than two seeds or a value missing (NaN) have no sd and are left out."""
    sds = {
        cell: statistics.stdev(seeds)
        for cell, seeds in values.items()
        if len(seeds) >= 2 and not any(math.isnan(v) for v in seeds)
    }
    if not sds:
        return math.nan, []
    median = statistics.median(sds.values())
    unstable = [
        Unstable(cell, sd, len(values[cell]), tuple(seeds_needed(sd, h) for h in HALF_WIDTHS))
        for cell, sd in sds.items()
        if sd > FACTOR * median and sd > FLOOR
    ]
    return median, unstable


def stability_lines(cells: Mapping[str, Mapping[str, Sequence[float]]], metrics: Sequence[str]) -> list[str]:
    """Markdown lines naming a table's unstable cells (cell -> metric -> value per seed), judged on the first of
    `metrics` that is an accuracy; none when no cell is unstable."""
    metric = next((m for m in metrics if m in ACCURACY_METRICS), None)
    if metric is None:
        return []
    median, unstable = unstable_cells({cell: by[metric] for cell, by in cells.items() if metric in by})
    if not unstable:
        return []
    name = METRIC_LABELS.get(metric, metric)
    lines = [
        f"Unstable cells: their seeds scatter, the sd of their {name} above {FLOOR:g} points and above {FACTOR:g} ×"
        f" the table's median cell sd of {median:.2f} (docs/verdicts.md). More validation videos do not steady them;"
        " judging them takes seeds:"
    ]
    for cell in unstable:
        needs = ", ".join(
            f"{n} for ±{h:g} point{'' if h == 1 else 's'}" for h, n in zip(HALF_WIDTHS, cell.needed, strict=True)
        )
        lines.append(
            f"- `{cell.cell}`: sd {cell.sd:.2f} over {cell.seeds} seeds; a {CONFIDENCE * 100:g} % interval at this sd"
            f" needs {needs}."
        )
    return lines
