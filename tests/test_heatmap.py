"""Heatmaps of ensemble matrices: baseline-centred colours, annotations, deterministic PNG/PDF files."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from mml.report.heatmap import DPI, colormap, figure, norm, text_colour, write_heatmap

WHITE = (1.0, 1.0, 1.0, 1.0)


def matrix(top1: list[list[float]]) -> pd.DataFrame:
    rows = [f"Flow model {i}" for i in range(len(top1))]
    columns = [f"RGB model number {j}" for j in range(len(top1[0]))]
    cells = [[(value, value + 25.0) for value in row] for row in top1]
    data = pd.DataFrame(cells, index=pd.Index(rows, name="Flow"), columns=pd.Index(columns, name="RGB"), dtype=object)
    return data


TOP1 = [[63.67, 60.40, 61.72, 64.62], [63.74, 61.18, 62.12, 64.34], [62.26, 61.61, 61.92, 65.24]]


def test_baseline_value_maps_to_white_and_sides_to_red_and_blue() -> None:
    values = np.array(TOP1)
    scale, cmap = norm(values, 63.67), colormap()
    assert cmap(scale(63.67)) == WHITE
    high, low = cmap(scale(65.24)), cmap(scale(60.40))
    assert high[0] > high[1] and high[0] > high[2] and low[2] > low[1] and low[2] > low[0]
    assert text_colour(WHITE) == "black" and text_colour(low) == "white" and text_colour(high) == "white"


@pytest.mark.parametrize("values", [[[60.0, 60.0]], [[60.0, 59.0]], [[60.0, 61.0]]])
def test_degenerate_ranges_widen_minimally_and_draw(values: list[list[float]], tmp_path: Path) -> None:
    scale = norm(np.array(values), 60.0)
    assert scale.vmin < scale.vcenter == 60.0 < scale.vmax
    assert min(60.0 - scale.vmin, scale.vmax - 60.0) <= 0.01 + 1e-9
    assert colormap()(scale(60.0)) == WHITE
    paths = write_heatmap(matrix(values), ("Flow model 0", "RGB model number 0"), tmp_path / "one", "degenerate")
    assert all(path.stat().st_size > 0 for path in paths)


def test_files_are_written_and_byte_identical(tmp_path: Path) -> None:
    baseline = ("Flow model 0", "RGB model number 0")
    first = write_heatmap(matrix(TOP1), baseline, tmp_path / "a" / "table11", "RGB + Flow ensembles")
    second = write_heatmap(matrix(TOP1), baseline, tmp_path / "b" / "table11", "RGB + Flow ensembles")
    assert [path.name for path in first] == ["table11.png", "table11.pdf"]
    assert first[0].read_bytes().startswith(b"\x89PNG") and first[1].read_bytes().startswith(b"%PDF")
    for one, other in zip(first, second, strict=True):
        assert one.read_bytes() == other.read_bytes()
    assert b"CreationDate" not in first[1].read_bytes() and b"Software" not in first[0].read_bytes()
    changed = write_heatmap(matrix(TOP1), ("Flow model 1", "RGB model number 0"), tmp_path / "c" / "table11", "x")
    assert changed[0].read_bytes() != first[0].read_bytes()


def test_png_baseline_cell_is_white_and_best_cell_red(tmp_path: Path) -> None:
    data, baseline = matrix(TOP1), ("Flow model 1", "RGB model number 1")  # 61.18: a low-ish baseline
    png, _ = write_heatmap(data, baseline, tmp_path / "heat", "title")
    pixels = imread(png)
    fig = figure(data, baseline, "title")
    fig.draw_without_rendering()
    ax = fig.axes[0]
    height = pixels.shape[0]
    assert height == round(fig.get_figheight() * DPI)

    def pixel(row: int, column: int) -> np.ndarray:
        # A point inside the cell, away from the centred annotation and the outline on the border.
        x, y = ax.transData.transform((column - 0.3, row - 0.3))
        return pixels[height - 1 - int(y), int(x), :3]

    np.testing.assert_allclose(pixel(1, 1), 1.0)
    red, green, blue = pixel(2, 3)  # 65.24, the maximum
    assert red > green and red > blue
    red, green, blue = pixel(0, 1)  # 60.40, the minimum
    assert blue > green and blue > red


def test_annotations_and_labels_follow_the_matrix_order() -> None:
    data = matrix(TOP1)
    ax = figure(data, ("Flow model 0", "RGB model number 0"), "title").axes[0]
    annotations = {text.get_text(): text.get_color() for text in ax.texts}
    assert len(annotations) == 12
    assert annotations["63.67/88.67"] == "black"  # the white baseline
    assert annotations["60.40/85.40"] == "white" and annotations["65.24/90.24"] == "white"  # the extremes
    assert [label.get_text() for label in ax.get_yticklabels()] == list(data.index)
    assert [label.get_text() for label in ax.get_xticklabels()] == list(data.columns)
    assert all(label.get_rotation() == 35 and label.get_ha() == "right" for label in ax.get_xticklabels())


def test_missing_baseline_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="baseline"):
        write_heatmap(matrix(TOP1), ("nope", "RGB model number 0"), tmp_path / "x", "t")
