"""Unstable cells: seeds scattering far beyond the rest of their table, named beneath it with the seeds a verdict would
need; and the paper's claims a table declares untested, listed under it."""

import math
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from mml.report.build import untested_count
from mml.report.export import CellRecord, Provenance, TableRecord
from mml.report.stability import FACTOR, FLOOR, seeds_needed, stability_lines, unstable_cells
from mml.report.tables import Report, rows_frame, to_latex, to_markdown
from mml.spec import load_profile, load_table

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"


def test_seeds_needed_is_the_smallest_count_whose_t_interval_is_narrow_enough() -> None:
    # t(0.975, 5) / √6 = 2.571 / 2.449 = 1.050 > 1, t(0.975, 6) / √7 = 2.447 / 2.646 = 0.925 <= 1.
    assert seeds_needed(1.0, 1.0) == 7
    assert seeds_needed(0.0, 1.0) == 2
    for sd, half_width in [(39.36, 3.0), (9.23, 1.0), (10.02, 3.0), (2.5, 0.5)]:
        n = seeds_needed(sd, half_width)
        assert stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n) <= half_width
        assert stats.t.ppf(0.975, n - 2) * sd / math.sqrt(n - 1) > half_width
    with pytest.raises(ValueError, match="positive half-width"):
        seeds_needed(1.0, 0.0)


def _seeds(mean: float, sd: float) -> tuple[float, float, float]:
    """Three seeds of sample sd `sd` around `mean`."""
    return (mean - sd, mean, mean + sd)


def test_a_cell_is_unstable_above_three_times_the_median_sd_and_the_floor() -> None:
    table = {f"cell{i}": _seeds(50.0, 1.0 + i / 10) for i in range(5)}  # sds 1.0 .. 1.4
    table["g-blend"] = _seeds(48.0, 39.0)
    table["just under"] = _seeds(48.0, FACTOR * 1.3 - 0.1)  # above the floor, under 3 x the median
    table["one seed"] = (10.0,)
    table["not measured"] = (1.0, math.nan, 2.0)
    median, unstable = unstable_cells(table)
    assert median == pytest.approx(1.3)  # the median of the seven cells with an sd
    assert [cell.cell for cell in unstable] == ["g-blend"]
    assert unstable[0].seeds == 3 and unstable[0].sd == pytest.approx(39.0)
    assert unstable[0].needed == (seeds_needed(39.0, 3.0), seeds_needed(39.0, 1.0))
    # Three times a small median is not enough: below the floor a cell's scatter is the ordinary one.
    precise = {f"cell{i}": _seeds(50.0, 0.5) for i in range(5)} | {"wider": _seeds(50.0, FLOOR - 0.5)}
    assert unstable_cells(precise)[1] == []
    assert unstable_cells({}) == (pytest.approx(math.nan, nan_ok=True), [])


def test_lines_name_the_unstable_cells_on_the_first_accuracy_metric() -> None:
    cells = {f"cell{i}": {"top1": _seeds(50.0, 1.0), "top5": _seeds(90.0, 20.0)} for i in range(4)}
    cells["diff"] = {"top1": _seeds(60.0, 9.23), "top5": _seeds(90.0, 1.0)}
    lines = stability_lines(cells, ("top1", "top5"))
    assert lines[0].startswith("Unstable cells: their seeds scatter, the sd of their Top-1 above 3 points and above 3")
    needs = f"{seeds_needed(9.23, 3.0)} for ±3 points, {seeds_needed(9.23, 1.0)} for ±1 point"
    assert lines[1:] == [f"- `diff`: sd 9.23 over 3 seeds; a 95 % interval at this sd needs {needs}."]
    assert stability_lines(cells, ("top5",)) == []  # on top-5 every cell scatters alike
    assert stability_lines(cells, ("video_gflops",)) == []  # no accuracy metric


def test_a_table_names_its_unstable_cells_and_its_untested_claims() -> None:
    table = load_table(REPRODUCTIONS / "table06.toml")
    profile = load_profile(REPRODUCTIONS / "profiles.toml", "smoke").setup("charades")
    rng = np.random.default_rng(0)
    values = {cell.id: tuple((40.0 + rng.normal(),) for _ in range(3)) for cell in table.cells()}
    values["mars_rgb"] = ((30.0,), (55.0,), (70.0,))
    record = TableRecord(
        cells={
            key: CellRecord(((key, 0),), "views", {"map": tuple(v[0] for v in seeds)}, {})
            for key, seeds in values.items()
        },
        provenance=Provenance(None, None, ()),
    )
    report = Report(table, profile, rows_frame(table, lambda cell: values[cell.id]), {}, "cmd", record=record)
    text = to_markdown(report)
    assert "Claims of the paper not tested here:" in text
    assert "- **not tested**: Dividing the additional loss terms of MARS and D3D by the number of classes" in text
    assert "Unstable cells: their seeds scatter, the sd of their mAP" in text
    assert "- `mars_rgb`: sd 20.21 over 3 seeds" in text
    assert "Not tested here: Dividing the additional loss terms" in to_latex(report)
    assert untested_count([report, report])[0].startswith("Not tested here: 2 more claims of the paper")
