"""Verdicts on the paper's claims: paired t-intervals and TOST against hand-computed values, the three-valued
outcomes, no verdict below three seeds, the two-level bootstrap, and the Markdown lines."""

import math

import numpy as np
import pytest
from scipy import stats

from mml.report.claims import (
    Outcome,
    judge,
    label,
    resolution_line,
    t_interval,
    two_level_bootstrap,
    verdict_lines,
)
from mml.spec import ClaimSpec

FLOW = ClaimSpec("Flow from RGB > Flow from ImageNet", better="flow_rgb", worse="flow_imagenet")
NEARLY = ClaimSpec("Row 2 within 0.5 of row 1", better="row2", worse="row1", kind="equivalence", margin=0.5)
# Student t quantiles with 2 degrees of freedom (tables): 97.5 % and 95 %.
T975_2, T95_2 = 4.302653, 2.919986


def test_t_interval_matches_the_hand_computed_value_and_scipy() -> None:
    # d = 2.0, 2.2, 1.8: mean 2, sd 0.2, half-width t(0.975, 2) * 0.2 / sqrt(3).
    interval = t_interval([2.0, 2.2, 1.8], 0.95)
    half = T975_2 * 0.2 / math.sqrt(3)
    assert (interval.low, interval.high) == pytest.approx((2 - half, 2 + half), abs=1e-6)
    reference = stats.ttest_rel([62.0, 62.2, 61.8], [60.0, 60.0, 60.0]).confidence_interval(0.95)
    assert (interval.low, interval.high) == pytest.approx((reference.low, reference.high))


def test_interval_above_zero_is_supported_below_contradicted() -> None:
    supported = judge(FLOW, [62.0, 62.2, 61.8], [60.0, 60.0, 60.0])
    assert supported.outcome is Outcome.SUPPORTED and supported.wins == 3
    assert supported.interval.low == pytest.approx(2 - T975_2 * 0.2 / math.sqrt(3), abs=1e-6)
    contradicted = judge(FLOW, [60.0, 60.0, 60.0], [62.0, 62.2, 61.8])
    assert contradicted.outcome is Outcome.CONTRADICTED and contradicted.wins == 0


def test_three_wins_can_still_be_inconclusive() -> None:
    # d = 2.0, 3.5, 1.5: mean 7/3, sd sqrt(13/12) = 1.0408; 95 % half-width 4.3027 * 1.0408 / sqrt(3) = 2.586.
    verdict = judge(FLOW, [60.0, 61.5, 59.0], [58.0, 58.0, 57.5])
    assert verdict.differences == (2.0, 3.5, 1.5) and verdict.wins == 3
    assert verdict.std == pytest.approx(math.sqrt(13 / 12))
    assert verdict.interval.low == pytest.approx(7 / 3 - T975_2 * math.sqrt(13 / 12) / math.sqrt(3), abs=1e-6)
    assert verdict.interval.low < 0 < verdict.interval.high
    assert verdict.outcome is Outcome.INCONCLUSIVE


def test_a_metric_not_measured_here_gets_no_verdict() -> None:
    # e.g. the informative-region metrics on data without informative regions: NaN in every seed.
    verdict = judge(FLOW, [math.nan] * 3, [0.0] * 3)
    assert verdict.outcome is Outcome.NO_VERDICT and verdict.interval is None and not verdict.measured
    assert label(verdict) == "no verdict (not measured here)"
    line = "- **no verdict (not measured here)**: Flow from RGB > Flow from ImageNet (top1: not measured on this data)"
    assert verdict_lines([verdict]) == [line]
    assert judge(FLOW, [1.0, 2.0, 3.0], [0.0] * 3).measured


def test_identical_values_are_inconclusive_never_not_held() -> None:
    verdict = judge(FLOW, [50.0, 51.0, 52.5], [50.0, 51.0, 52.5])
    assert verdict.mean == 0.0 and verdict.wins == 0
    assert verdict.outcome is Outcome.INCONCLUSIVE
    assert judge(NEARLY, [50.0, 51.0, 52.5], [50.0, 51.0, 52.5]).outcome is Outcome.EQUIVALENT


def test_fewer_than_three_seeds_give_no_verdict() -> None:
    for better, worse in (([61.0], [60.0]), ([61.0, 70.0], [60.0, 50.0]), ([60.0, 60.0], [60.0, 60.0])):
        verdict = judge(FLOW, better, worse)
        assert verdict.outcome is Outcome.NO_VERDICT and verdict.interval is None
    assert label(judge(FLOW, [61.0], [60.0])) == "no verdict (1 seed)"
    assert label(judge(NEARLY, [61.0, 60.0], [60.0, 60.0])) == "no verdict (2 seeds)"


def test_ordering_margin() -> None:
    # d = 2.0, 2.2, 1.8 has the 95 % interval [1.503, 2.497].
    above = ClaimSpec("A beats B by more than 1.5", "a", "b", margin=1.5)
    straddled = ClaimSpec("A beats B by more than 1.6", "a", "b", margin=1.6)
    beyond = ClaimSpec("A beats B by more than 2.6", "a", "b", margin=2.6)
    values = ([62.0, 62.2, 61.8], [60.0, 60.0, 60.0])
    assert judge(above, *values).outcome is Outcome.SUPPORTED
    assert judge(straddled, *values).outcome is Outcome.INCONCLUSIVE
    assert judge(beyond, *values).outcome is Outcome.CONTRADICTED
    # Not worse by more than 0.5: d = -0.2, -0.1, -0.3 gives [-0.448, +0.048], above -0.5.
    lenient = ClaimSpec("A is not worse than B by more than 0.5", "a", "b", margin=-0.5)
    assert judge(lenient, [59.8, 59.9, 59.7], [60.0, 60.0, 60.0]).outcome is Outcome.SUPPORTED


def test_tost_equivalence() -> None:
    # d = 0.1, -0.1, 0: the 90 % interval is ±2.92 * 0.1 / sqrt(3) = ±0.169, inside ±0.5.
    equivalent = judge(NEARLY, [60.1, 59.9, 60.0], [60.0, 60.0, 60.0])
    assert equivalent.outcome is Outcome.EQUIVALENT
    assert equivalent.interval.confidence == 0.90
    assert equivalent.interval.high == pytest.approx(T95_2 * 0.1 / math.sqrt(3), abs=1e-6)
    # d = 2.0, 2.2, 1.8: 90 % interval [1.663, 2.337], outside ±0.5.
    assert judge(NEARLY, [62.0, 62.2, 61.8], [60.0, 60.0, 60.0]).outcome is Outcome.DIFFERENT
    # d = 0.4, 0.6, 0.5: the interval straddles +0.5.
    assert judge(NEARLY, [60.4, 60.6, 60.5], [60.0, 60.0, 60.0]).outcome is Outcome.INCONCLUSIVE


def test_equivalence_also_fails_on_a_large_negative_difference() -> None:
    assert judge(NEARLY, [58.0, 57.8, 58.2], [60.0, 60.0, 60.0]).outcome is Outcome.DIFFERENT


def test_sums_of_positions_lower_is_better() -> None:
    ranks = ClaimSpec("ML ranks before CE", "RGB: ML", "RGB: CE", metric="positions")
    verdict = judge(ranks, [10.0, 11.0, 12.0], [20.0, 20.0, 21.0])
    assert verdict.differences == (10.0, 9.0, 9.0)
    assert verdict.outcome is Outcome.SUPPORTED


def test_seed_counts_must_match_and_be_positive() -> None:
    with pytest.raises(ValueError, match="same positive number of seeds"):
        judge(FLOW, [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="same positive number of seeds"):
        judge(FLOW, [], [])


def test_bootstrap_covers_the_videos_when_seeds_agree() -> None:
    # Five seeds with the same per-video differences: the t-interval has zero width, the bootstrap over videos not.
    rng = np.random.default_rng(1)
    videos = 100.0 * (rng.random(200) < 0.55) - 100.0 * (rng.random(200) < 0.50)
    per_video = np.tile(videos, (5, 1))
    value = float(videos.mean())
    verdict = judge(FLOW, [60.0 + value] * 5, [60.0] * 5, per_video)
    assert verdict.interval.method == "bootstrap"
    assert verdict.interval.low < value < verdict.interval.high
    # The percentile interval of the mean over 200 videos is close to the normal one, 1.96 * sd / sqrt(n).
    normal = 1.96 * videos.std(ddof=1) / math.sqrt(len(videos))
    assert verdict.interval.half_width == pytest.approx(normal, rel=0.15)
    assert two_level_bootstrap(per_video, 0.95) == two_level_bootstrap(per_video, 0.95)  # fixed generator


def test_bootstrap_needs_five_seeds_and_keeps_the_wider_interval() -> None:
    per_video = np.zeros((3, 10))
    assert judge(FLOW, [62.0, 62.2, 61.8], [60.0] * 3, per_video).interval.method == "t"
    spread = np.random.default_rng(2).normal(0.0, 1.0, size=(5, 400))  # tiny video noise
    differences = [1.0, 3.0, 2.0, 4.0, 0.5]  # large seed noise
    verdict = judge(FLOW, [60.0 + d for d in differences], [60.0] * 5, spread + np.array(differences)[:, None])
    assert verdict.interval.method == "t"


def test_verdict_lines_and_resolution() -> None:
    supported = judge(FLOW, [62.0, 62.2, 61.8], [60.0, 60.0, 60.0])
    single = judge(ClaimSpec("A > B", "a", "b", margin=0.5), [61.0], [60.0])
    lines = verdict_lines([supported, single])
    assert lines[0] == (
        "- **supported**: Flow from RGB > Flow from ImageNet (top1: Δ +2.00 ± 0.20 over 3 seeds, "
        "95 % t-interval [+1.50, +2.50], 3/3 seeds ahead)"
    )
    assert lines[1] == "- **no verdict (1 seed)**: A > B (top1: Δ +1.00 over 1 seed, margin +0.50, 1/1 seeds ahead)"
    assert "±0.50" in resolution_line([supported])
    assert resolution_line([single]).startswith("Resolvable here: nothing — 1 seed, a verdict needs 3")
    assert verdict_lines([]) == []


SAVES = ClaimSpec("A saves 35 % of B's cost", better="a", worse="b", metric="video_gflops", relative=True, margin=35.0)


def test_a_relative_cost_claim_is_judged_on_the_percent_saved() -> None:
    # Costs 40, 41, 42 against 100: savings d = 60, 59, 58 %, mean 59, sd 1; the interval lies above 35.
    verdict = judge(SAVES, [40.0, 41.0, 42.0], [100.0, 100.0, 100.0])
    assert verdict.differences == pytest.approx((60.0, 59.0, 58.0))
    assert verdict.interval.low == pytest.approx(59 - T975_2 / math.sqrt(3), abs=1e-6)
    assert verdict.outcome is Outcome.SUPPORTED
    # Savings 50, 40, 45 %: mean 45, sd 5, half-width 4.3027 * 5 / sqrt(3) = 12.42, so 35 is inside the interval.
    assert judge(SAVES, [50.0, 60.0, 55.0], [100.0] * 3).outcome is Outcome.INCONCLUSIVE
    # Costing more is a negative saving: an interval below the margin.
    assert judge(SAVES, [110.0, 111.0, 112.0], [100.0] * 3).outcome is Outcome.CONTRADICTED
    assert "video_gflops: Δ +59.00 % ± 1.00 over 3 seeds" in verdict_lines([verdict])[0]
    with pytest.raises(ValueError, match="a relative difference needs a non-zero video_gflops of b"):
        judge(SAVES, [1.0], [0.0])


def test_a_cost_claim_without_relative_is_lower_is_better_in_its_unit() -> None:
    cheaper = ClaimSpec("A costs less than B", better="a", worse="b", metric="gflops")
    assert judge(cheaper, [1.0, 1.5, 2.0], [2.0, 2.5, 3.0]).differences == (1.0, 1.0, 1.0)
