"""Forest plots of claim verdicts: the rows they plot (interval, margin, verdict, panel) and the files written."""

import math
from pathlib import Path

from mml.report.claims import Outcome, judge
from mml.report.forest import LABEL_CHARACTERS, _panels, forest_rows, write_forest
from mml.spec import ClaimSpec

BEATS = ClaimSpec("Flow from RGB > Flow from ImageNet", better="a", worse="b")
WITHIN = ClaimSpec("Row 2 within 0.5 of row 1", better="a", worse="b", kind="equivalence", margin=0.5)
SAVES = ClaimSpec(
    "AdaMML saves 35 % " + "of the computation " * 5, "a", "b", "video_gflops", margin=35.0, relative=True
)


def verdicts():
    return [
        judge(BEATS, [62.0, 62.2, 61.8], [60.0, 60.0, 60.0]),  # supported
        judge(BEATS, [60.0, 61.5, 59.0], [58.0, 60.0, 59.5]),  # inconclusive
        judge(WITHIN, [50.0, 51.0, 52.5], [50.1, 50.9, 52.5]),  # equivalent
        judge(BEATS, [61.0], [60.0]),  # no verdict (1 seed)
        judge(BEATS, [math.nan] * 3, [0.0] * 3),  # not measured
        judge(SAVES, [0.5, 0.48, 0.52], [1.0, 1.0, 1.0]),  # supported, in % of the worse cell
    ]


def test_every_claim_is_a_row_with_its_interval_margin_and_verdict() -> None:
    found = verdicts()
    rows = forest_rows(found, "table07")
    assert len(rows) == len(found)
    assert [row.outcome for row in rows] == [
        Outcome.SUPPORTED,
        Outcome.INCONCLUSIVE,
        Outcome.EQUIVALENT,
        Outcome.NO_VERDICT,
        Outcome.NO_VERDICT,
        Outcome.SUPPORTED,
    ]
    first = rows[0]
    assert first.label == f"table07: {BEATS.text}"
    assert (first.low, first.high) == (found[0].interval.low, found[0].interval.high)
    assert first.low is not None and first.low > first.margin == 0.0
    assert rows[2].equivalence and rows[2].margin == 0.5
    assert rows[3].low is None and rows[3].mean == 1.0  # no interval: Δ alone
    assert math.isnan(rows[4].mean)
    assert rows[5].unit == "video_gflops, % of worse" and rows[5].mean == 50.0
    assert len(rows[5].label) == LABEL_CHARACTERS and rows[5].label.endswith("…")
    assert list(_panels(rows)) == ["top1", "video_gflops, % of worse"]  # one axis per unit


def test_the_forest_plot_is_written_and_the_same_rows_give_the_same_bytes(tmp_path: Path) -> None:
    rows = forest_rows(verdicts())
    path = write_forest(rows, tmp_path / "table07_forest.png", "Tab. 7 — claims")
    assert path == tmp_path / "table07_forest.png" and path.read_bytes().startswith(b"\x89PNG")
    again = write_forest(rows, tmp_path / "again.png", "Tab. 7 — claims")
    assert again is not None and again.read_bytes() == path.read_bytes()
    assert write_forest([], tmp_path / "none.png", "no claims") is None and not (tmp_path / "none.png").exists()
