"""Verdicts on the paper's claims from paired per-seed results, with their uncertainty.

A claim compares two cells on one metric. Seed s of every run starts from seed s of the runs it is initialised from,
so the values of the two cells are paired by seed; the verdict is judged on the per-seed differences d_s = better −
worse (for sums of positions and costs, where lower is better: worse − better; for a relative claim in % of worse),
following Bouthillier et al. (2021) and
Lakens (2017), "Equivalence Tests":

- fewer than `MIN_SEEDS` seeds: **no verdict** — one or two seeds cannot tell a difference from seed noise;
- a metric this data does not measure (NaN in a seed, e.g. informative regions of a dataset without them): **no
  verdict (not measured here)**;
- an ordering claim ("A beats B by more than m"; m = 0 by default, m < 0 for "not worse by more than |m|"): the 95 %
  t-interval of mean(d) above m is **supported**, below m **contradicted**, straddling m **inconclusive**;
- an equivalence claim ("A is within ±m of B"): a TOST at α = 0.05, i.e. the 90 % t-interval inside ±m is
  **equivalent**, entirely outside it **different**, otherwise **inconclusive**.

With `BOOTSTRAP_MIN_SEEDS` or more seeds and per-video outcomes (top-1 / top-5 correctness), a two-level bootstrap
over seeds and validation videos (the "multi-bootstrap" of MultiBERTs) gives a second interval that also covers the
finite validation set; the wider of the two decides. A zero-width t-interval (every seed gave the same difference)
is kept as it is: the verdict then rests on the bootstrap where there is one.
"""

from __future__ import annotations

import enum
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from mml.spec import COST_METRICS, POSITIONS, ClaimSpec

MIN_SEEDS = 3
ORDERING_CONFIDENCE = 0.95
EQUIVALENCE_CONFIDENCE = 0.90  # TOST at alpha = 0.05 on each side
BOOTSTRAP_MIN_SEEDS = 5
BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0  # fixed: the same stored results always give the same interval
_BOOTSTRAP_BATCH = 100


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
    """A confidence interval of the mean paired difference, in the metric's units."""

    low: float
    high: float
    confidence: float
    method: str  # "t" (over seeds) or "bootstrap" (over seeds and videos)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2


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
    video_half_width: float | None = None  # 95 % half-width from the validation videos alone (first seed)
    caveat: str = ""  # e.g. the models behind it that did not learn

    @property
    def seeds(self) -> int:
        return len(self.differences)

    @property
    def measured(self) -> bool:
        """Whether the metric exists in every seed (not NaN: e.g. informative regions on data without them)."""
        return _measured(self.differences)


def _measured(differences: Sequence[float]) -> bool:
    return not any(math.isnan(difference) for difference in differences)


def t_interval(differences: Sequence[float], confidence: float) -> Interval:
    """The t-interval of the mean of `differences` (k − 1 degrees of freedom); zero width when all are equal."""
    count = len(differences)
    if count < 2:
        raise ValueError(f"a t-interval needs at least 2 values, got {count}")
    centre, spread = statistics.fmean(differences), statistics.stdev(differences)
    half = float(stats.t.ppf(0.5 + confidence / 2, count - 1)) * spread / math.sqrt(count)
    return Interval(centre - half, centre + half, confidence, "t")


def two_level_bootstrap(per_video: np.ndarray, confidence: float, resamples: int = BOOTSTRAP_RESAMPLES) -> Interval:
    """Percentile interval of the mean paired difference, resampling seeds and validation videos.

    `per_video[s, v]` is video v's contribution to the difference on seed s (e.g. 100 · (correct_better −
    correct_worse)), so a cell's metric difference on seed s is the mean over v. Each resample draws k seeds and n
    videos with replacement; the same videos serve both cells and every drawn seed, keeping the pairing.
    """
    seeds, videos = per_video.shape
    rng = np.random.default_rng(BOOTSTRAP_SEED)
    means = []
    for start in range(0, resamples, _BOOTSTRAP_BATCH):
        batch = min(_BOOTSTRAP_BATCH, resamples - start)
        seed_draws = rng.integers(seeds, size=(batch, seeds))
        video_draws = rng.integers(videos, size=(batch, videos))
        weights = np.stack([np.bincount(row, minlength=videos) for row in video_draws]) / videos  # (batch, n)
        per_seed = weights @ per_video.T  # (batch, k): each seed's mean difference over the drawn videos
        means.append(np.take_along_axis(per_seed, seed_draws, axis=1).mean(axis=1))
    low, high = np.quantile(np.concatenate(means), [0.5 - confidence / 2, 0.5 + confidence / 2])
    return Interval(float(low), float(high), confidence, "bootstrap")


def _advantage(claim: ClaimSpec, better: float, worse: float) -> float:
    """How far `better` is ahead of `worse`: the difference, sign-flipped where lower is better (sums of positions,
    costs), in % of `worse` for a relative claim."""
    lower_is_better = claim.metric == POSITIONS or claim.metric in COST_METRICS
    advantage = float(worse) - float(better) if lower_is_better else float(better) - float(worse)
    if not claim.relative:
        return advantage
    if worse == 0:
        raise ValueError(f"{claim.text}: a relative difference needs a non-zero {claim.metric} of {claim.worse}")
    return 100 * advantage / abs(float(worse))


def _outcome(claim: ClaimSpec, interval: Interval) -> Outcome:
    margin = claim.margin
    if claim.kind == "equivalence":
        if -margin < interval.low and interval.high < margin:
            return Outcome.EQUIVALENT
        return Outcome.DIFFERENT if interval.low > margin or interval.high < -margin else Outcome.INCONCLUSIVE
    if interval.low > margin:
        return Outcome.SUPPORTED
    return Outcome.CONTRADICTED if interval.high < margin else Outcome.INCONCLUSIVE


def judge(
    claim: ClaimSpec, better: Sequence[float], worse: Sequence[float], per_video: np.ndarray | None = None
) -> Verdict:
    """Judge a claim on the values of its two cells, paired by seed index.

    `per_video` (seeds × videos), when the metric is a mean over videos, holds each video's contribution to the
    difference (see `two_level_bootstrap`); it adds the bootstrap interval from `BOOTSTRAP_MIN_SEEDS` seeds on and the
    validation-set resolution at any seed count.

    Raises:
        ValueError: the two sequences differ in length or are empty, or `per_video` has another seed count.
    """
    if len(better) != len(worse) or not better:
        raise ValueError(f"{claim.text}: need the same positive number of seeds, got {len(better)} and {len(worse)}")
    differences = tuple(_advantage(claim, b, w) for b, w in zip(better, worse, strict=True))
    if per_video is not None and per_video.shape[0] != len(differences):
        raise ValueError(f"{claim.text}: per-video differences of {per_video.shape[0]} seeds for {len(differences)}")
    confidence = EQUIVALENCE_CONFIDENCE if claim.kind == "equivalence" else ORDERING_CONFIDENCE
    interval = None
    measured = _measured(differences)
    if len(differences) >= MIN_SEEDS and measured:
        interval = t_interval(differences, confidence)
        if per_video is not None and len(differences) >= BOOTSTRAP_MIN_SEEDS:
            bootstrap = two_level_bootstrap(per_video, confidence)
            interval = max(interval, bootstrap, key=lambda i: i.half_width)
    video_half_width = None
    if per_video is not None and per_video.shape[1] > 1 and measured:
        first = per_video[0]
        video_half_width = float(stats.norm.ppf(0.975) * first.std(ddof=1) / math.sqrt(len(first)))
    return Verdict(
        claim=claim,
        differences=differences,
        mean=statistics.fmean(differences) if measured else math.nan,
        std=statistics.stdev(differences) if len(differences) > 1 and measured else math.nan,
        wins=sum(difference > 0 for difference in differences),
        interval=interval,
        outcome=Outcome.NO_VERDICT if interval is None else _outcome(claim, interval),
        video_half_width=video_half_width,
    )


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


def verdict_lines(verdicts: Sequence[Verdict]) -> list[str]:
    """One Markdown bullet per verdict, e.g.
    `- **supported**: A > B (top1: Δ +2.31 ± 0.50 over 3 seeds, 95 % t-interval [+1.07, +3.55], 3/3 seeds)`."""
    lines = []
    for verdict in verdicts:
        claim = verdict.claim
        if not verdict.measured:
            lines.append(f"- **{label(verdict)}**: {claim.text} ({claim.metric}: not measured on this data)")
            continue
        parts = [f"{claim.metric}: Δ {_signed(verdict.mean)}{' %' if claim.relative else ''}"]
        if verdict.seeds > 1:
            parts[0] += f" ± {verdict.std:.2f}"
        parts[0] += f" over {verdict.seeds} seed{'s' if verdict.seeds > 1 else ''}"
        if verdict.interval:
            interval = verdict.interval
            parts.append(
                f"{interval.confidence * 100:.0f} % {interval.method}-interval "
                f"[{_signed(interval.low)}, {_signed(interval.high)}]"
            )
        if condition := _condition(claim):
            parts.append(condition)
        parts.append(f"{verdict.wins}/{verdict.seeds} seeds ahead")
        caveat = f" — {verdict.caveat}" if verdict.caveat else ""
        lines.append(f"- **{label(verdict)}**: {claim.text} ({', '.join(parts)}){caveat}")
    return lines


def resolution_line(verdicts: Sequence[Verdict]) -> str:
    """What a difference must exceed to be resolved here: the claims' interval half-widths (seeds) and, from the
    stored per-video scores, the validation set's own sampling error."""
    widths = sorted(v.interval.half_width for v in verdicts if v.interval)
    seeds = max(v.seeds for v in verdicts)
    if widths:
        text = (
            f"Resolvable here: differences beyond ±{statistics.median(widths):.2f} points (median interval half-width "
            f"of these claims, range ±{widths[0]:.2f} to ±{widths[-1]:.2f}, {seeds} seeds)"
        )
    else:
        text = f"Resolvable here: nothing — {seeds} seed{'s' if seeds > 1 else ''}, a verdict needs {MIN_SEEDS}"
    videos = sorted(v.video_half_width for v in verdicts if v.video_half_width is not None)
    if videos:
        text += (
            f"; the validation videos alone blur a paired difference by ±{statistics.median(videos):.2f} points (95 %,"
            " median over these claims, first seed)"
        )
    return text + "."
