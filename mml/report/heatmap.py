"""Heatmaps of two-model ensemble matrices coloured as in the paper's Tab. 11/12.

Cells are coloured by top-1 with a diverging red/blue map centred on the baseline ensemble ("CE from ImageNet" ×
"CE from ImageNet"), which is white: the more intense red, the higher the top-1; the more intense blue, the lower.
Each cell is annotated `top1/top5`. Figures are drawn on a bare `Figure` (no pyplot) and saved with fixed size, dpi
and metadata, so the same matrix always gives byte-identical PNG and PDF files.
"""

from __future__ import annotations

import io
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib import colormaps
from matplotlib.colors import Colormap, LinearSegmentedColormap, TwoSlopeNorm
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from mml import atomic

DPI = 150
# The smallest top-1 difference the 2-decimal annotations show: how far a degenerate range is widened.
RANGE_PAD = 0.01
CELL_SIZE = (1.0, 0.42)  # inches per column, per row
CHAR_WIDTH = 0.065  # inches per label character at the tick font size


def colormap() -> Colormap:
    """`RdBu_r` with a pure white centre; an odd number of entries makes 0.5 fall exactly on it."""
    colours = colormaps["RdBu_r"](np.linspace(0.0, 1.0, 11))
    colours[5] = (1.0, 1.0, 1.0, 1.0)
    return LinearSegmentedColormap.from_list("mml_RdBu_r", colours, N=257)


def norm(values: np.ndarray, center: float) -> TwoSlopeNorm:
    """A norm mapping `center` to 0.5, widening the range by `RANGE_PAD` where it does not straddle the centre."""
    vmin, vmax = float(np.min(values)), float(np.max(values))
    return TwoSlopeNorm(vcenter=center, vmin=min(vmin, center - RANGE_PAD), vmax=max(vmax, center + RANGE_PAD))


def text_colour(background: tuple[float, ...]) -> str:
    """Black on light backgrounds, white on dark ones (relative luminance of the cell colour)."""
    red, green, blue = background[:3]
    return "black" if 0.2126 * red + 0.7152 * green + 0.0722 * blue > 0.5 else "white"


def _top1(matrix: pd.DataFrame) -> np.ndarray:
    return np.array([[float(cell[0]) for cell in row] for row in matrix.itertuples(index=False)], dtype=np.float64)


UNRESOLVED_MARK = "~"


def figure(
    matrix: pd.DataFrame, baseline: tuple[str, str], title: str, unresolved: Collection[tuple[str, str]] = ()
) -> Figure:
    """The heatmap of a matrix of (top1, top5) cells with the `baseline` (row name, column name) cell white; cells
    in `unresolved` (their difference to the baseline is not resolved by the seeds) are marked with a "~" in italics."""
    if baseline[0] not in matrix.index or baseline[1] not in matrix.columns:
        raise ValueError(f"baseline cell {baseline} is not in the matrix")
    top1 = _top1(matrix)
    row, column = matrix.index.get_loc(baseline[0]), matrix.columns.get_loc(baseline[1])
    cmap, scale = colormap(), norm(top1, top1[row, column])
    rows, columns = top1.shape
    left = 0.6 + CHAR_WIDTH * max(len(str(name)) for name in matrix.index)
    bottom = 0.6 + 0.6 * CHAR_WIDTH * max(len(str(name)) for name in matrix.columns)
    size = (left + CELL_SIZE[0] * columns + 1.2, bottom + CELL_SIZE[1] * rows + 0.7)
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(top1, cmap=cmap, norm=scale, aspect="auto", interpolation="nearest")
    for (i, j), value in np.ndenumerate(top1):
        colour = text_colour(cmap(scale(value)))
        text = f"{value:.2f}/{float(matrix.iat[i, j][1]):.2f}"
        marked = (matrix.index[i], matrix.columns[j]) in unresolved
        style = "italic" if marked else "normal"
        text = f"{UNRESOLVED_MARK}{text}" if marked else text
        ax.text(j, i, text, ha="center", va="center", color=colour, fontsize=7, fontstyle=style)
    ax.add_patch(Rectangle((column - 0.5, row - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2))
    ax.set_xticks(range(columns), labels=[str(name) for name in matrix.columns], fontsize=8)
    ax.set_yticks(range(rows), labels=[str(name) for name in matrix.index], fontsize=8)
    for label in ax.get_xticklabels():
        label.set(rotation=35, ha="right", rotation_mode="anchor")
    ax.set_xlabel(matrix.columns.name or "")
    ax.set_ylabel(matrix.index.name or "")
    if unresolved:
        title += f"\n({UNRESOLVED_MARK}: difference to the boxed baseline not resolved at 95 %)"
    ax.set_title(title, fontsize=9 if unresolved else None)
    fig.colorbar(image, ax=ax, label="top-1 (%)", shrink=0.8)
    return fig


def write_heatmap(
    matrix: pd.DataFrame,
    baseline: tuple[str, str],
    path_stem: Path,
    title: str,
    unresolved: Collection[tuple[str, str]] = (),
) -> list[Path]:
    """Write `<path_stem>.png` and `<path_stem>.pdf` (atomically), byte-identical for the same input; returns their
    paths."""
    fig = figure(matrix, baseline, title, unresolved)
    png, pdf = path_stem.with_name(f"{path_stem.name}.png"), path_stem.with_name(f"{path_stem.name}.pdf")
    save_figure(fig, png, dpi=DPI, metadata={"Software": None})
    save_figure(fig, pdf, metadata={"CreationDate": None})
    return [png, pdf]


def save_figure(fig: Figure, path: Path, **options: Any) -> None:
    """Save `fig` to `path` atomically (a killed writer never leaves half a figure), in the format of the path's
    suffix; `options` go to `Figure.savefig`."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=path.suffix.removeprefix("."), **options)
    atomic.write_bytes(path, buffer.getvalue())
