"""Verdicts on the paper's claims from paired per-seed results, with their uncertainty and p-values.

A claim compares two cells on one metric. Seed s of every run starts from seed s of the runs it is initialised from,
so the values of the two cells are paired by seed; the verdict is judged on the per-seed differences d_s = better −
worse (for sums of positions and costs, where lower is better: worse − better; for a relative claim in % of worse),
following Bouthillier et al. (2021) and Lakens (2017), "Equivalence Tests":

- fewer than `MIN_SEEDS` seeds: **no verdict** — one or two seeds cannot tell a difference from seed noise;
- a metric this data does not measure (NaN in a seed, e.g. informative regions of a dataset without them): **no
  verdict (not measured here)**;
- an ordering claim ("A beats B by more than m"; m = 0 by default, m < 0 for "not worse by more than |m|"): the 95 %
  interval of the mean difference above m is **supported**, below m **contradicted**, straddling m **inconclusive**;
  its p-value is the two-sided t-test of "the mean difference is m", below 0.05 exactly when the claim is decided;
- an equivalence claim ("A is within ±m of B"): a TOST at α = 0.05, i.e. the 90 % interval inside ±m is
  **equivalent**, entirely outside it **different**, otherwise **inconclusive**; its p-value is the one-sided test
  that could decide it — while |Δ| < m the TOST's (H0: |δ| ≥ m), else that of H0: |δ| ≤ m — again below 0.05 exactly
  when the claim is decided;
- a ranking ("A is ahead of B, C and D"): an intersection-union test of the pairwise claims (`combine`), **supported**
  only when supported against every rival, **contradicted** when contradicted against any, otherwise
  **inconclusive**; it shows the deciding rival's numbers and p-value (unless contradicted, the largest pairwise one).

The interval is about the task, not about these validation videos: for a metric that is a mean over videos (top-1,
top-5, with per-video outcomes) it adds the two sources of noise as variance components of the crossed seeds ×
videos design D[s, v] = μ + a_s + b_v + e_sv (D: video v's contribution to the difference on seed s):

    Var(mean d) = σ_a²/k + σ_b²/n + σ_e²/(k·n),
    estimated by  max(0, s_d² − MS_e/n)/k + max(0, S_v² − MS_e/k)/n + MS_e/(k·n),

with s_d² the variance of the k per-seed differences, S_v² the variance over the n videos of the seed-averaged
per-video differences and MS_e the seeds × videos interaction mean square. The seed-to-seed spread already holds
which videos each seed gets right (E s_d² = σ_a² + σ_e²/n) but not the videos' effect shared by every seed, and the
spread over videos holds the same interaction (E S_v² = σ_b² + σ_e²/k): subtracting MS_e's share from each counts
the interaction once, and the floors keep the seed spread from falling below the binomial noise that MS_e measures
precisely. The interval is Student's t with Welch–Satterthwaite degrees of freedom over the three mean squares
(k − 1 when the seeds dominate, ≈ n when the videos do). We chose this over a two-level bootstrap, which at 3–5 seeds
undercovers (a bootstrap of 3 values has 10 distinct resamples and shrinks the seed variance by (k − 1)/k), and
over Banerjee's conservative sum of t² · components, which at 3 seeds nearly doubles the width when the videos
dominate. Simulated coverage of the task-level mean (tests/test_claims.py) is 0.94–0.97 when seeds or videos
dominate; with both comparable it is 0.92–0.94 at 3 seeds and 0.94–0.95 at 5 (Satterthwaite's known slight
liberality with a 2-df component). Metrics that are not means over videos (sums of positions, costs, mAP, relative
differences) have seed-only t-intervals (k − 1 degrees of freedom). An interval of zero width (every seed gave the
same difference and no video noise was measured) measures no uncertainty: such a claim is inconclusive, with no
p-value.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from mml.spec import COST_METRICS, POSITIONS, ClaimSpec

MIN_SEEDS = 3
ORDERING_CONFIDENCE = 0.95
EQUIVALENCE_CONFIDENCE = 0.90  # TOST at alpha = 0.05 on each side
ALPHA = 0.05  # a claim is decided when its p-value is below this
FALSE_DISCOVERY_RATE = 0.05  # Benjamini–Hochberg over an invocation's claims
POWER = 0.80  # of the smallest detectable difference under each table
SEEDS = "seeds"  # interval methods: over seeds only,
SEEDS_AND_VIDEOS = "seeds and videos"  # or over seeds and the validation videos (variance components)
PERCENT_METRICS_LIMIT = 100.0  # no difference of percentages (or saving in % of a cost) exceeds 100


class Outcome(enum.Enum):
    """The verdict on one claim."""

    SUPPORTED = "supported"
    CONTRADICTED = "contradicted"
    INCONCLUSIVE = "inconclusive"
    EQUIVALENT = "equivalent"
    DIFFERENT = "different"
    NO_VERDICT = "no verdict"


@dataclass(frozen=True)
class Interval:
    """A confidence interval of the mean paired difference, in the metric's units: centre ± t(df) · se."""

    low: float
    high: float
    confidence: float
    method: str  # `SEEDS` or `SEEDS_AND_VIDEOS`
    se: float  # standard error of the mean difference
    df: float  # degrees of freedom of its t distribution

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def half_width_at(self, confidence: float) -> float:
        """The half-width this interval would have at another confidence level."""
        return float(stats.t.ppf(0.5 + confidence / 2, self.df)) * self.se


@dataclass(frozen=True)
class Verdict:
    """A claim judged on paired per-seed values."""

    claim: ClaimSpec
    differences: tuple[float, ...]
    mean: float
    std: float  # over seeds (nan with one seed)
    wins: int  # seeds where `better` is strictly ahead
    interval: Interval | None  # None below MIN_SEEDS
    outcome: Outcome
    p_value: float | None = None  # the test behind the verdict (module docstring); None without an interval's spread
    video_variance: float | None = None  # the videos' term σ_b²/n of Var(mean d), when per-video outcomes exist
    videos: int | None = None  # validation videos behind `video_variance`
    caveat: str = ""  # e.g. the models behind it that did not learn
    identity: str = ""  # the claim's cells (their runs and models), metric, kind and margin: equal for duplicates
    pairs: tuple[Verdict, ...] = ()  # a claim against several rivals: its pairwise verdicts, in `claim.rivals` order
    deciding: str = ""  # and the rival whose pairwise verdict decides it (`combine`), whose numbers this one shows

    @property
    def seeds(self) -> int:
        return len(self.differences)

    @property
    def measured(self) -> bool:
        """Whether the metric exists in every seed (not NaN: e.g. informative regions on data without them)."""
        return _measured(self.differences)

    @property
    def decided(self) -> bool:
        """Whether the verdict is one of the decided ones (not inconclusive, not no verdict)."""
        return self.outcome not in (Outcome.INCONCLUSIVE, Outcome.NO_VERDICT)

    @property
    def video_floor(self) -> float | None:
        """The 90 % half-width the validation videos alone leave, however many seeds: an equivalence margin at or
        below it can never be shown here."""
        if self.video_variance is None:
            return None
        return float(stats.norm.ppf(EQUIVALENCE_CONFIDENCE / 2 + 0.5)) * math.sqrt(self.video_variance)


def _measured(differences: Sequence[float]) -> bool:
    return not any(math.isnan(difference) for difference in differences)


def t_interval(differences: Sequence[float], confidence: float) -> Interval:
    """The t-interval of the mean of `differences` over seeds (k − 1 degrees of freedom); zero width when all are
    equal."""
    count = len(differences)
    if count < 2:
        raise ValueError(f"a t-interval needs at least 2 values, got {count}")
    se = statistics.stdev(differences) / math.sqrt(count)
    return _interval(statistics.fmean(differences), se, count - 1, confidence, SEEDS)


def _interval(centre: float, se: float, df: float, confidence: float, method: str) -> Interval:
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * se
    return Interval(centre - half, centre + half, confidence, method, se, df)


@dataclass(frozen=True)
class Components:
    """The variance of a mean paired difference over k seeds and n videos, by source (module docstring)."""

    seed: float  # σ_a² / k, the seeds' own effect
    video: float  # σ_b² / n, the videos' effect shared by every seed
    interaction: float  # σ_e² / (k · n), which videos each seed gets right
    df: float  # Welch–Satterthwaite, over the three mean squares behind the estimate

    @property
    def total(self) -> float:
        return self.seed + self.video + self.interaction


def variance_components(differences: Sequence[float], per_video: np.ndarray) -> Components:
    """Split the variance of mean(`differences`) into the seeds', the validation videos' and their interaction's
    terms (module docstring), each main effect floored at 0.

    `per_video[s, v]` is video v's contribution to the difference on seed s (e.g. 100 · (correct_better −
    correct_worse)), so that seed s's difference is the mean of row s.
    """
    seeds, videos = per_video.shape
    spread = statistics.variance(differences)  # s_d², expectation σ_a² + σ_e² / n
    by_video = per_video.mean(axis=0)
    between = float(by_video.var(ddof=1))  # S_v², expectation σ_b² + σ_e² / k
    residual = per_video - per_video.mean(axis=1, keepdims=True) - by_video + per_video.mean()
    interaction = float((residual**2).sum()) / ((seeds - 1) * (videos - 1))  # MS_e, expectation σ_e²
    seed = max(0.0, spread - interaction / videos) / seeds
    video = max(0.0, between - interaction / seeds) / videos
    # The estimate as a combination of the mean squares (a floored term drops its own and its share of MS_e).
    shared = (1 - (seed > 0) - (video > 0)) / (seeds * videos)
    terms = (
        (spread / seeds if seed else 0.0, seeds - 1),
        (between / videos if video else 0.0, videos - 1),
        (shared * interaction, (seeds - 1) * (videos - 1)),
    )
    total = seed + video + interaction / (seeds * videos)
    df = total**2 / sum(value**2 / freedom for value, freedom in terms) if total > 0 else seeds - 1
    return Components(seed, video, interaction / (seeds * videos), df)


def lower_is_better(claim: ClaimSpec) -> bool:
    """Whether the claim's metric is better when lower (sums of positions, costs)."""
    return claim.metric == POSITIONS or claim.metric in COST_METRICS


def _advantage(claim: ClaimSpec, better: float, worse: float) -> float:
    """How far `better` is ahead of `worse`: the difference, sign-flipped where lower is better (sums of positions,
    costs), in % of `worse` for a relative claim."""
    advantage = float(worse) - float(better) if lower_is_better(claim) else float(better) - float(worse)
    if not claim.relative:
        return advantage
    if worse == 0:
        raise ValueError(f"{claim.text}: a relative difference needs a non-zero {claim.metric} of {claim.worse}")
    return 100 * advantage / abs(float(worse))


def _outcome(claim: ClaimSpec, interval: Interval) -> Outcome:
    margin = claim.margin
    if interval.se == 0:  # no spread measured: no uncertainty to judge with
        return Outcome.INCONCLUSIVE
    if claim.kind == "equivalence":
        if -margin < interval.low and interval.high < margin:
            return Outcome.EQUIVALENT
        return Outcome.DIFFERENT if interval.low > margin or interval.high < -margin else Outcome.INCONCLUSIVE
    if interval.low > margin:
        return Outcome.SUPPORTED
    return Outcome.CONTRADICTED if interval.high < margin else Outcome.INCONCLUSIVE


def p_value(claim: ClaimSpec, mean: float, interval: Interval) -> float | None:
    """The p-value of the test behind the claim's verdict (module docstring), below `ALPHA` exactly when the claim is
    decided; None for a zero-width interval."""
    if interval.se == 0:
        return None
    if claim.kind == "equivalence":  # one-sided: TOST inside ±m, the minimum-effect test outside
        return float(stats.t.sf(abs(abs(mean) - claim.margin) / interval.se, interval.df))
    return float(2 * stats.t.sf(abs(mean - claim.margin) / interval.se, interval.df))


def paired_interval(differences: Sequence[float], per_video: np.ndarray | None, confidence: float) -> Interval:
    """The interval of the mean of `differences` (k ≥ 2 seeds): over seeds and videos when `per_video` (seeds ×
    videos, at least 2 videos) is given, else over seeds."""
    if per_video is None or per_video.shape[1] < 2:
        return t_interval(differences, confidence)
    components = variance_components(differences, per_video)
    centre = statistics.fmean(differences)
    return _interval(centre, math.sqrt(components.total), components.df, confidence, SEEDS_AND_VIDEOS)


def judge(
    claim: ClaimSpec, better: Sequence[float], worse: Sequence[float], per_video: np.ndarray | None = None
) -> Verdict:
    """Judge a claim on the values of its two cells, paired by seed index.

    `per_video` (seeds × videos), when the metric is a mean over videos, holds each video's contribution to the
    difference (see `variance_components`): the interval then covers the validation videos as well as the seeds.

    Raises:
        ValueError: the two sequences differ in length or are empty, or `per_video` has another seed count.
    """
    if len(better) != len(worse) or not better:
        raise ValueError(f"{claim.text}: need the same positive number of seeds, got {len(better)} and {len(worse)}")
    differences = tuple(_advantage(claim, b, w) for b, w in zip(better, worse, strict=True))
    if per_video is not None and per_video.shape[0] != len(differences):
        raise ValueError(f"{claim.text}: per-video differences of {per_video.shape[0]} seeds for {len(differences)}")
    confidence = EQUIVALENCE_CONFIDENCE if claim.kind == "equivalence" else ORDERING_CONFIDENCE
    measured = _measured(differences)
    mean = statistics.fmean(differences) if measured else math.nan
    components = None
    if per_video is not None and per_video.shape[1] > 1 and len(differences) > 1 and measured:
        components = variance_components(differences, per_video)
    interval = None
    if len(differences) >= MIN_SEEDS and measured:
        interval = paired_interval(differences, per_video, confidence)
    return Verdict(
        claim=claim,
        differences=differences,
        mean=mean,
        std=statistics.stdev(differences) if len(differences) > 1 and measured else math.nan,
        wins=sum(difference > 0 for difference in differences),
        interval=interval,
        outcome=Outcome.NO_VERDICT if interval is None else _outcome(claim, interval),
        p_value=None if interval is None else p_value(claim, mean, interval),
        video_variance=None if components is None else components.video,
        videos=None if components is None or per_video is None else per_video.shape[1],
    )


_POSITIVE = (Outcome.SUPPORTED, Outcome.EQUIVALENT)
_NEGATIVE = (Outcome.CONTRADICTED, Outcome.DIFFERENT)


def combine(claim: ClaimSpec, pairs: Sequence[Verdict]) -> Verdict:
    """A claim against several rivals, judged as an intersection-union test of its pairwise verdicts (one per rival,
    in `claim.rivals` order): supported (equivalent) only when it is against every rival; contradicted (different)
    when it is against some rival with a Bonferroni-corrected p-value (R rivals: R · p) below `ALPHA`, so that the
    union of R chances to contradict it keeps its 5 %; otherwise inconclusive; no verdict when a pair has none.

    The deciding rival is the one whose test decides: for a contradicted claim the contradicting rival with the
    smallest p-value, whose corrected p-value the claim shows; otherwise, among the rivals against which the claim is
    not supported (all of them if it is supported against every one), the one with the largest p-value, i.e. the
    weakest interval (a pair without spread, and so without a p-value, the weakest of all): the largest of the
    pairwise p-values, the intersection-union test's. The combined verdict shows that pair's Δ and interval.

    Raises:
        ValueError: `pairs` are not the claim's pairwise verdicts against its rivals, in order.
    """
    if [pair.claim for pair in pairs] != [claim.against(rival) for rival in claim.rivals]:
        raise ValueError(f"{claim.text}: expected one pairwise verdict per rival, in the order of {claim.rivals}")
    indices = range(len(pairs))
    missing = [i for i in indices if pairs[i].outcome is Outcome.NO_VERDICT]
    open_ = [i for i in indices if pairs[i].outcome not in _POSITIVE] or list(indices)

    def weakness(i: int) -> float:
        found = pairs[i].p_value
        return math.inf if found is None else found

    def corrected(i: int) -> float:
        return min(1.0, len(pairs) * weakness(i))

    negative = [i for i in indices if pairs[i].outcome in _NEGATIVE and corrected(i) < ALPHA]
    p_value = None
    if missing:
        index, outcome = missing[0], Outcome.NO_VERDICT
    elif negative:
        index = min(negative, key=weakness)
        outcome, p_value = pairs[index].outcome, corrected(index)
    else:
        index = max(open_, key=weakness)
        outcome = pairs[index].outcome if pairs[index].outcome in _POSITIVE else Outcome.INCONCLUSIVE
        p_value = pairs[index].p_value
    return dataclasses.replace(
        pairs[index], claim=claim, outcome=outcome, p_value=p_value, pairs=tuple(pairs), deciding=claim.rivals[index]
    )


def benjamini_hochberg(p_values: Sequence[float]) -> list[float]:
    """Benjamini–Hochberg adjusted p-values, in the input order: a claim stays decided at false discovery rate q over
    the family when its adjusted p-value is below q."""
    count = len(p_values)
    order = sorted(range(count), key=lambda i: p_values[i])
    adjusted = [1.0] * count
    running = 1.0
    for rank in range(count, 0, -1):  # step up: the minimum over the larger p-values
        index = order[rank - 1]
        running = min(running, p_values[index] * count / rank)
        adjusted[index] = running
    return adjusted


@dataclass(frozen=True)
class Adjusted:
    """A verdict within its family (an invocation's claims): duplicates and Benjamini–Hochberg."""

    first: int  # index of the first verdict of the family with the same identity (its own unless written twice)
    p_adjusted: float | None  # Benjamini–Hochberg over the family's distinct claims with a p-value
    label: str  # the verdict after the adjustment: a decided one not below `FALSE_DISCOVERY_RATE` is inconclusive

    def duplicate(self, index: int) -> bool:
        return self.first != index


def adjust(verdicts: Sequence[Verdict], rate: float = FALSE_DISCOVERY_RATE) -> list[Adjusted]:
    """Each verdict of a family after counting each claim written twice (same `identity`) once and applying
    Benjamini–Hochberg at false discovery rate `rate` over the distinct claims that have a p-value; a duplicate
    shares its first occurrence's adjustment."""
    first: dict[str, int] = {}
    firsts = [first.setdefault(verdict.identity or f"#{i}", i) for i, verdict in enumerate(verdicts)]
    tested = [i for i, verdict in enumerate(verdicts) if firsts[i] == i and verdict.p_value is not None]
    adjusted = dict(zip(tested, benjamini_hochberg([verdicts[i].p_value or 0.0 for i in tested]), strict=True))
    result = []
    for i, verdict in enumerate(verdicts):
        p_adjusted = adjusted.get(firsts[i])
        kept = p_adjusted is not None and p_adjusted < rate
        name = Outcome.INCONCLUSIVE.value if verdict.decided and not kept else label(verdict)
        result.append(Adjusted(firsts[i], p_adjusted, name))
    return result


def detectable_difference(interval: Interval, power: float = POWER) -> float:
    """The smallest true distance from the margin that the two-sided 95 % test behind an ordering verdict detects
    with probability `power` (noncentral t with the interval's degrees of freedom and standard error)."""
    critical = float(stats.t.ppf(0.5 + ORDERING_CONFIDENCE / 2, interval.df))

    def shortfall(shift: float) -> float:
        # P(T > c) + P(T < −c); the lower tail as the upper one of −T (scipy's nct.cdf gives NaN far out there)
        reach = stats.nct.sf(critical, interval.df, shift) + stats.nct.sf(critical, interval.df, -shift)
        return float(reach) - power

    reach = 10.0  # a shift in standard errors: 80 % power needs ≈ 5.65 at 2 df, ≈ 2.8 at many
    while shortfall(reach) < 0:
        reach *= 2
    return float(optimize.brentq(shortfall, 0.0, reach)) * interval.se


def _signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def label(verdict: Verdict) -> str:
    """The verdict's name as printed, e.g. "supported" or "no verdict (1 seed)"."""
    if verdict.outcome is Outcome.NO_VERDICT:
        why = f"{verdict.seeds} seed{'s' if verdict.seeds > 1 else ''}" if verdict.measured else "not measured here"
        return f"no verdict ({why})"
    return verdict.outcome.value


def _condition(claim: ClaimSpec) -> str:
    if claim.kind == "equivalence":
        return f"equivalence within ±{claim.margin:.2f}"
    return f"margin {_signed(claim.margin)}" if claim.margin else ""


def _p(value: float) -> str:
    return "p < 0.001" if value < 0.001 else f"p = {value:.3f}"


def _unreachable(verdict: Verdict) -> str:
    """For an equivalence claim whose margin the validation videos alone already exceed, why no seed count helps."""
    floor = verdict.video_floor
    if verdict.claim.kind != "equivalence" or floor is None or floor < verdict.claim.margin:
        return ""
    return (
        f"; unreachable here: the validation videos alone leave ±{floor:.2f} (90 %), not inside"
        f" ±{verdict.claim.margin:.2f}, whatever the seed count"
    )


def _against(verdict: Verdict) -> str:
    """The head of a verdict's numbers: the metric, and for a claim against several rivals the pairwise verdicts
    and the deciding rival, whose numbers follow."""
    claim = verdict.claim
    if not verdict.pairs:
        return f"{claim.metric}: "
    counts = Counter(label(pair) for pair in verdict.pairs)
    each = ", ".join(f"{name} against {count}" for name, count in counts.items())
    return f"{claim.metric} against {len(verdict.pairs)} rivals, {each}; deciding rival {verdict.deciding}: "


def verdict_lines(verdicts: Sequence[Verdict]) -> list[str]:
    """One Markdown bullet per verdict, e.g. `- **supported**: A > B (top1: Δ +2.31 ± 0.50 over 3 seeds, 95 %
    interval over seeds and videos [+1.07, +3.55], p = 0.012, 3/3 seeds ahead)`; a claim against several rivals
    shows its pairwise verdicts and the numbers of the deciding rival (`combine`), e.g. `(top1 against 3 rivals,
    supported against 2, inconclusive against 1; deciding rival C: Δ +0.40 ...)`."""
    lines = []
    for verdict in verdicts:
        claim = verdict.claim
        if not verdict.measured:
            lines.append(f"- **{label(verdict)}**: {claim.text} ({claim.metric}: not measured on this data)")
            continue
        parts = [f"{_against(verdict)}Δ {_signed(verdict.mean)}{' %' if claim.relative else ''}"]
        if verdict.seeds > 1:
            parts[0] += f" ± {verdict.std:.2f}"
        parts[0] += f" over {verdict.seeds} seed{'s' if verdict.seeds > 1 else ''}"
        if verdict.interval:
            interval = verdict.interval
            parts.append(
                f"{interval.confidence * 100:.0f} % interval over {interval.method} "
                f"[{_signed(interval.low)}, {_signed(interval.high)}]"
            )
            parts.append(_p(verdict.p_value) if verdict.p_value is not None else "no spread: no uncertainty measured")
        if condition := _condition(claim):
            parts.append(condition + _unreachable(verdict))
        parts.append(f"{verdict.wins}/{verdict.seeds} seeds ahead")
        caveat = f" — {verdict.caveat}" if verdict.caveat else ""
        lines.append(f"- **{label(verdict)}**: {claim.text} ({', '.join(parts)}){caveat}")
    return lines


def unit(claim: ClaimSpec) -> str:
    """The unit a claim's differences are in: "% of the worse cell" (relative), "GFLOPs", "positions" (sums of ranks)
    or "points" (accuracies, mAP and percentages of segments)."""
    if claim.relative:
        return "% of the worse cell"
    if claim.metric in COST_METRICS:
        return "GFLOPs"
    return "positions" if claim.metric == POSITIONS else "points"


def _clip(value: float, claim_unit: str) -> float:
    """No difference of percentages (nor a saving in % of a cost) exceeds 100."""
    bounded = claim_unit in ("points", "% of the worse cell")
    return min(value, PERCENT_METRICS_LIMIT) if bounded else value


def resolution_line(verdicts: Sequence[Verdict]) -> str:
    """What a difference must exceed to be resolved here, per unit, at 95 %: the median (and range) of the claims'
    95 % half-widths, the median smallest difference detected with 80 % power, and the validation videos' own share;
    all clipped to what a difference in that unit can be."""
    seeds = max(v.seeds for v in verdicts)
    judged = [v for v in verdicts if v.interval and v.interval.se > 0]
    if seeds < MIN_SEEDS:
        return f"Resolvable here: nothing — {seeds} seed{'s' if seeds > 1 else ''}, a verdict needs {MIN_SEEDS}."
    if not judged:
        return f"Resolvable here: not measured — no claim's difference varies over the {seeds} seeds."
    parts = []
    for claim_unit in dict.fromkeys(unit(v.claim) for v in judged):
        group = [v for v in judged if unit(v.claim) == claim_unit]
        widths = sorted(_clip(v.interval.half_width_at(ORDERING_CONFIDENCE), claim_unit) for v in group if v.interval)
        detectable = [_clip(detectable_difference(v.interval), claim_unit) for v in group if v.interval]
        text = (
            f"in {claim_unit}, differences beyond ±{statistics.median(widths):.2f} (median 95 % half-width of"
            f" {len(widths)} claim{'s' if len(widths) > 1 else ''}, range ±{widths[0]:.2f} to ±{widths[-1]:.2f});"
            f" a true difference of {statistics.median(detectable):.2f} is detected with {POWER * 100:.0f} % power"
        )
        floors = [v.video_variance for v in group if v.video_variance is not None]
        if floors:
            video = float(stats.norm.ppf(0.5 + ORDERING_CONFIDENCE / 2)) * math.sqrt(statistics.median(floors))
            text += f"; the validation videos alone leave ±{video:.2f} however many seeds"
        parts.append(text)
    return f"Resolvable here ({seeds} seeds, 95 %): {'; '.join(parts)}."
