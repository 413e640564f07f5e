"""Verdicts on the paper's claims: paired t-intervals and TOST against hand-computed values, the three-valued
outcomes, no verdict below three seeds, the seeds × videos variance components (their coverage of a known
task-level mean on simulated data), p-values, Benjamini–Hochberg and duplicates, and the Markdown lines."""

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats

from mml.report.claims import (
    SEEDS_AND_VIDEOS,
    Outcome,
    adjust,
    benjamini_hochberg,
    combine,
    detectable_difference,
    judge,
    label,
    paired_interval,
    resolution_line,
    t_interval,
    variance_components,
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


def test_a_zero_width_interval_is_never_judged_without_uncertainty() -> None:
    # Every seed 2 points ahead and no per-video outcomes: the interval has no width, so nothing is decided.
    for claim in (FLOW, NEARLY):
        verdict = judge(claim, [62.0, 63.0, 64.0], [60.0, 61.0, 62.0])
        assert verdict.interval.half_width == 0 and verdict.p_value is None
        assert verdict.outcome is Outcome.INCONCLUSIVE
    assert "no spread: no uncertainty measured" in verdict_lines([verdict])[0]
    # Identical models on the same videos: no spread over seeds nor videos either.
    same = judge(NEARLY, [50.0] * 3, [50.0] * 3, np.zeros((3, 40)))
    assert same.interval.se == 0 and same.outcome is Outcome.INCONCLUSIVE


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


def test_agreeing_seeds_are_still_blurred_by_the_videos() -> None:
    # Five seeds with the same per-video differences: no spread over seeds, but the videos' own sampling error.
    rng = np.random.default_rng(1)
    videos = 100.0 * (rng.random(200) < 0.55) - 100.0 * (rng.random(200) < 0.50)
    per_video = np.tile(videos, (5, 1))
    value = float(videos.mean())
    verdict = judge(FLOW, [60.0 + value] * 5, [60.0] * 5, per_video)
    assert verdict.interval.method == SEEDS_AND_VIDEOS
    # Only the videos vary: the interval is the one-sample t-interval over the 200 videos (n − 1 df).
    reference = stats.ttest_1samp(videos, 0.0).confidence_interval(0.95)
    assert (verdict.interval.low, verdict.interval.high) == pytest.approx((reference.low, reference.high))
    assert verdict.video_variance == pytest.approx(videos.var(ddof=1) / 200)


def test_variance_components_against_a_hand_computed_two_way_table() -> None:
    # D = [[1, 3], [3, 5], [2, 7]]: seed means 2, 4, 4.5 (s_d² = 1.75), video means 2, 5 (S_v² = 4.5), the
    # interaction residuals ±0.5, ±0.5, ∓1 give MS_e = 3 / 2 = 1.5.
    per_video = np.array([[1.0, 3.0], [3.0, 5.0], [2.0, 7.0]])
    components = variance_components([2.0, 4.0, 4.5], per_video)
    assert components.seed == pytest.approx((1.75 - 1.5 / 2) / 3)
    assert components.video == pytest.approx((4.5 - 1.5 / 3) / 2)
    assert components.interaction == pytest.approx(1.5 / 6)
    # Satterthwaite over s_d²/3 (2 df), S_v²/2 (1 df) and −MS_e/6 (2 df): the interaction counted once.
    terms = [(1.75 / 3, 2), (4.5 / 2, 1), (-1.5 / 6, 2)]
    assert components.df == pytest.approx(components.total**2 / sum(v**2 / f for v, f in terms))
    assert components.total == pytest.approx(1.75 / 3 + 4.5 / 2 - 1.5 / 6)


def test_the_seed_spread_never_falls_below_the_interaction_it_holds() -> None:
    # Three seeds that by chance agree exactly while their videos disagree: the seeds' term is floored at 0, the
    # interaction (which videos each seed gets right) still counts.
    per_video = np.array([[100.0, 0.0, 0.0, 0.0], [0.0, 100.0, 0.0, 0.0], [0.0, 0.0, 100.0, 0.0]])
    components = variance_components([25.0, 25.0, 25.0], per_video)
    assert components.seed == 0 and components.interaction > 0
    assert paired_interval([25.0] * 3, per_video, 0.95).half_width > 0


def _coverage(seeds: int, videos: int, seed_sd: float, video_sd: float, datasets: int = 2000) -> float:
    """How often the 95 % interval holds the task-level mean difference of two simulated models: video v is
    classified correctly on seed s with probability Φ(μ + a_s + b_v) per model (probit), a the seed's and b the
    video's effect (half of b shared by the two models), so that the mean over seeds and videos is known exactly."""
    rng = np.random.default_rng(0)
    means = (0.3, 0.1)
    scale = math.sqrt(1 + seed_sd**2 + video_sd**2)
    truth = 100 * (stats.norm.cdf(means[0] / scale) - stats.norm.cdf(means[1] / scale))
    held = 0
    for _ in range(datasets):
        shared = rng.normal(0, video_sd / math.sqrt(2), videos)
        own = rng.normal(0, video_sd / math.sqrt(2), (2, videos))
        seed = rng.normal(0, seed_sd, (2, seeds, 1))
        correct = [rng.random((seeds, videos)) < stats.norm.cdf(means[i] + seed[i] + shared + own[i]) for i in (0, 1)]
        per_video = 100.0 * (correct[0].astype(float) - correct[1])
        interval = paired_interval(list(per_video.mean(axis=1)), per_video, 0.95)
        held += interval.low < truth < interval.high
    return held / datasets


@pytest.mark.parametrize("seeds", [3, 5])
def test_the_interval_covers_the_task_mean_when_seeds_dominate(seeds: int) -> None:
    # Seed effects 0.3 on the probit scale, 400 videos: the seeds' term is most of the variance.
    assert 0.93 <= _coverage(seeds, 400, seed_sd=0.3, video_sd=0.5) <= 0.97


@pytest.mark.parametrize("seeds", [3, 5])
def test_the_interval_covers_the_task_mean_when_videos_dominate(seeds: int) -> None:
    # No seed effect, 200 videos with large effects: a seeds-only interval would miss the videos' shared effect.
    assert 0.93 <= _coverage(seeds, 200, seed_sd=0.0, video_sd=1.0) <= 0.98


def test_p_values_agree_with_the_verdicts() -> None:
    # d = 2.0, 2.2, 1.8: t = 2 / (0.2 / sqrt(3)) = 17.32 on 2 df against margin 0.
    supported = judge(FLOW, [62.0, 62.2, 61.8], [60.0] * 3)
    assert supported.p_value == pytest.approx(stats.ttest_1samp([2.0, 2.2, 1.8], 0.0).pvalue)
    above = ClaimSpec("A beats B by more than 1.6", "a", "b", margin=1.6)
    assert judge(above, [62.0, 62.2, 61.8], [60.0] * 3).p_value == pytest.approx(
        stats.ttest_1samp([2.0, 2.2, 1.8], 1.6).pvalue
    )
    # Equivalence inside the margin: the TOST's larger one-sided p; outside it: H0 |δ| ≤ m, one-sided.
    tost = judge(NEARLY, [60.1, 59.9, 60.0], [60.0] * 3)
    lower = stats.ttest_1samp([0.1, -0.1, 0.0], -0.5, alternative="greater").pvalue
    upper = stats.ttest_1samp([0.1, -0.1, 0.0], 0.5, alternative="less").pvalue
    assert tost.p_value == pytest.approx(max(lower, upper))
    different = judge(NEARLY, [62.0, 62.2, 61.8], [60.0] * 3)
    assert different.p_value == pytest.approx(stats.ttest_1samp([2.0, 2.2, 1.8], 0.5, alternative="greater").pvalue)
    # Decided exactly when p < 0.05, over random claims of every kind.
    rng = np.random.default_rng(3)
    for claim in (FLOW, NEARLY, above):
        for _ in range(200):
            verdict = judge(claim, list(60 + rng.normal(1.0, 1.0, 3)), [60.0] * 3)
            assert verdict.decided == (verdict.p_value < 0.05)


def test_benjamini_hochberg_against_hand_computed_values() -> None:
    # Sorted 0.01, 0.02, 0.03, 0.5 over 4: 0.04, 0.04, 0.04, 0.5 (step-up minimum).
    assert benjamini_hochberg([0.03, 0.5, 0.01, 0.02]) == pytest.approx([0.04, 0.5, 0.04, 0.04])
    assert benjamini_hochberg([0.04, 0.9]) == pytest.approx([0.08, 0.9])


def test_a_claim_written_twice_counts_once_and_bh_can_undo_a_decision() -> None:
    strong = judge(FLOW, [62.0, 62.2, 61.8], [60.0] * 3)  # p = 0.0033
    weak = judge(FLOW, [62.0, 63.0, 61.5], [60.0] * 3)  # p = 0.039: decided alone
    twice = [
        dataclasses.replace(strong, identity="a"),
        dataclasses.replace(weak, identity="b"),
        dataclasses.replace(strong, identity="a"),
        judge(FLOW, [61.0], [60.0]),  # no p-value: not in the family
    ]
    assert weak.decided and weak.p_value == pytest.approx(0.0390, abs=1e-4)
    adjusted = adjust(twice)
    assert [a.first for a in adjusted] == [0, 1, 0, 3] and adjusted[2].duplicate(2)
    # Two distinct claims with a p-value: 0.0033 · 2 / 1 and 0.039 · 2 / 2 = 0.039.
    assert adjusted[0].p_adjusted == pytest.approx(2 * strong.p_value)
    assert adjusted[1].p_adjusted == pytest.approx(weak.p_value) and adjusted[1].label == "supported"
    assert adjusted[3].p_adjusted is None and adjusted[3].label == "no verdict (1 seed)"
    # Three such claims and a null one: 0.039 · 4 / 3 = 0.052, so none stays decided.
    crowd = [dataclasses.replace(weak, identity=str(i)) for i in range(3)]
    crowd.append(dataclasses.replace(judge(FLOW, [60.5, 59.0, 61.0], [60.0] * 3), identity="null"))
    assert [a.label for a in adjust(crowd)] == ["inconclusive"] * 4
    assert adjust(crowd)[0].p_adjusted == pytest.approx(weak.p_value * 4 / 3)


def test_the_smallest_detectable_difference_has_80_percent_power() -> None:
    interval = t_interval([2.0, 2.2, 1.8], 0.95)
    shift = detectable_difference(interval)
    critical = stats.t.ppf(0.975, 2)
    power = stats.nct.sf(critical, 2, shift / interval.se) + stats.nct.cdf(-critical, 2, shift / interval.se)
    assert power == pytest.approx(0.8)
    assert shift > interval.half_width  # detecting needs more than the half-width


def test_verdict_lines_and_resolution() -> None:
    supported = judge(FLOW, [62.0, 62.2, 61.8], [60.0, 60.0, 60.0])
    single = judge(ClaimSpec("A > B", "a", "b", margin=0.5), [61.0], [60.0])
    lines = verdict_lines([supported, single])
    assert lines[0] == (
        "- **supported**: Flow from RGB > Flow from ImageNet (top1: Δ +2.00 ± 0.20 over 3 seeds, "
        "95 % interval over seeds [+1.50, +2.50], p = 0.003, 3/3 seeds ahead)"
    )
    assert lines[1] == "- **no verdict (1 seed)**: A > B (top1: Δ +1.00 over 1 seed, margin +0.50, 1/1 seeds ahead)"
    assert "in points, differences beyond ±0.50" in resolution_line([supported])
    assert resolution_line([single]).startswith("Resolvable here: nothing — 1 seed, a verdict needs 3")
    assert verdict_lines([]) == []


def test_resolution_is_per_unit_at_95_percent_and_clipped() -> None:
    nearly = judge(NEARLY, [60.1, 59.9, 60.0], [60.0] * 3)  # a 90 % interval: shown at 95 % here
    wild = judge(FLOW, [10.0, 90.0, 50.0], [50.0] * 3)  # half-width 99.4: detectable only beyond 100 points
    ranks = judge(ClaimSpec("ML ranks first", "a", "b", metric="positions"), [10.0, 11.0, 12.0], [20.0, 20.0, 21.0])
    line = resolution_line([nearly, wild, ranks])
    halves = (T975_2 * 0.1 / math.sqrt(3), T975_2 * 40 / math.sqrt(3))  # sd 0.1 and 40
    assert f"in points, differences beyond ±{sum(halves) / 2:.2f}" in line
    assert f"range ±{halves[0]:.2f} to ±{halves[1]:.2f}" in line
    detectable = (detectable_difference(nearly.interval) + 100) / 2  # the wild claim's clipped at 100
    assert f"a true difference of {detectable:.2f} is detected with 80 % power" in line
    assert wild.interval.half_width > 99 and detectable_difference(wild.interval) > 100
    assert "in positions, differences beyond ±" in line
    clipped = resolution_line([judge(FLOW, [0.0, 100.0, 20.0], [50.0] * 3)])
    assert "±100.00 (median 95 % half-width of 1 claim" in clipped


def test_an_equivalence_margin_the_videos_alone_exceed_says_so() -> None:
    rng = np.random.default_rng(4)
    per_video = np.tile(100.0 * (rng.random(100) < 0.5) - 100.0 * (rng.random(100) < 0.5), (3, 1))
    per_video[:, :3] += rng.normal(0, 1, (3, 3))  # a little seed spread
    differences = list(per_video.mean(axis=1))
    verdict = judge(NEARLY, [60.0 + d for d in differences], [60.0] * 3, per_video)
    assert verdict.video_floor > 0.5
    assert "unreachable here: the validation videos alone leave ±" in verdict_lines([verdict])[0]
    assert "unreachable" not in verdict_lines([judge(NEARLY, [60.1, 59.9, 60.0], [60.0] * 3)])[0]


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


RANKING = ClaimSpec("A ranks first", better="a", worse=("b", "c", "d"))


def rivals_judged(worse: dict[str, list[float]], better: tuple[float, ...] = (62.0, 62.2, 61.8)) -> list:
    """The pairwise verdicts of `RANKING` with `better`'s values against each rival's."""
    return [judge(RANKING.against(rival), list(better), worse[rival]) for rival in RANKING.rivals]


def test_a_ranking_is_supported_only_against_every_rival() -> None:
    # All three are behind on every seed; c by the least and most variable margin: the weakest interval.
    pairs = rivals_judged({"b": [60.0, 60.1, 59.9], "c": [61.0, 61.0, 61.1], "d": [60.8, 60.6, 60.5]})
    assert [pair.outcome for pair in pairs] == [Outcome.SUPPORTED] * 3
    verdict = combine(RANKING, pairs)
    assert verdict.outcome is Outcome.SUPPORTED and verdict.claim == RANKING and verdict.pairs == tuple(pairs)
    assert verdict.p_value == max(pair.p_value for pair in pairs) and verdict.deciding == "c"
    assert verdict.interval == pairs[1].interval and verdict.differences == pairs[1].differences


def test_one_rival_left_unresolved_makes_a_ranking_inconclusive() -> None:
    pairs = rivals_judged({"b": [60.0, 60.1, 59.9], "c": [62.0, 61.0, 63.0], "d": [61.0, 61.0, 61.1]})
    assert [pair.outcome for pair in pairs] == [Outcome.SUPPORTED, Outcome.INCONCLUSIVE, Outcome.SUPPORTED]
    verdict = combine(RANKING, pairs)
    assert verdict.outcome is Outcome.INCONCLUSIVE and verdict.deciding == "c"
    assert verdict.p_value == pairs[1].p_value == max(pair.p_value for pair in pairs) and verdict.p_value >= 0.05


def test_one_rival_ahead_contradicts_a_ranking() -> None:
    # b is behind, c unresolved, d clearly ahead: contradicted, by d, whatever the others.
    pairs = rivals_judged({"b": [60.0, 60.1, 59.9], "c": [62.0, 61.0, 63.0], "d": [64.0, 64.1, 63.9]})
    verdict = combine(RANKING, pairs)
    assert pairs[2].outcome is Outcome.CONTRADICTED and verdict.outcome is Outcome.CONTRADICTED
    assert verdict.deciding == "d" and verdict.p_value == pytest.approx(3 * pairs[2].p_value) and verdict.p_value < 0.05
    assert verdict.mean == pytest.approx(-2.0) and verdict.wins == 0


def test_a_rival_barely_ahead_does_not_contradict_a_ranking_after_bonferroni() -> None:
    # d is ahead on every seed, significant alone (p < 0.05) but not three times over (3 p >= 0.05).
    pairs = rivals_judged({"b": [60.0, 60.1, 59.9], "c": [61.0, 61.0, 61.1], "d": [63.0, 62.9, 63.1]})
    assert pairs[2].outcome is Outcome.CONTRADICTED and 0.05 / 3 <= pairs[2].p_value < 0.05
    verdict = combine(RANKING, pairs)
    assert verdict.outcome is Outcome.INCONCLUSIVE and verdict.deciding == "d" and verdict.p_value == pairs[2].p_value


def test_a_ranking_without_spread_or_seeds_is_not_decided() -> None:
    flat = rivals_judged({"b": [60.0, 60.1, 59.9], "c": [61.0, 61.2, 60.8], "d": [60.0, 60.0, 60.0]})
    assert flat[1].p_value is None  # every seed exactly 1 point ahead of c: no spread
    verdict = combine(RANKING, flat)
    assert verdict.outcome is Outcome.INCONCLUSIVE and verdict.deciding == "c" and verdict.p_value is None
    one = [judge(RANKING.against(rival), [62.0], [60.0]) for rival in RANKING.rivals]
    assert label(combine(RANKING, one)) == "no verdict (1 seed)"


def test_a_ranking_needs_its_pairs_in_order() -> None:
    pairs = rivals_judged({"b": [60.0] * 3, "c": [60.0] * 3, "d": [60.0] * 3})
    with pytest.raises(ValueError, match="one pairwise verdict per rival"):
        combine(RANKING, pairs[::-1])
    with pytest.raises(ValueError, match="no single one"):
        _ = RANKING.rival
    assert RANKING.against("c") == ClaimSpec("A ranks first", better="a", worse="c")
    assert FLOW.rivals == ("flow_imagenet",)


def test_a_ranking_verdict_line_names_the_deciding_rival() -> None:
    pairs = rivals_judged({"b": [60.0, 60.1, 59.9], "c": [62.0, 61.0, 63.0], "d": [61.0, 61.0, 61.1]})
    line = verdict_lines([combine(RANKING, pairs)])[0]
    # c: d = 0, +1.2, −1.2 (sd 1.2, half-width 4.3027 · 1.2 / √3 = 2.98)
    assert line == (
        "- **inconclusive**: A ranks first (top1 against 3 rivals, supported against 2, inconclusive against 1;"
        " deciding rival c: Δ +0.00 ± 1.20 over 3 seeds, 95 % interval over seeds [−2.98, +2.98], p = 1.000,"
        " 1/3 seeds ahead)"
    )
