"""Verdicts on the paper's claims (orderings such as "Flow from RGB > Flow from ImageNet") from per-seed results.

A claim compares two cells on one metric; the values of both are paired by seed. It holds when the mean of the
paired differences better − worse exceeds the claim's margin (a negative margin expresses "not worse than by more
than"); the number of seeds where better beats worse is reported beside it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from mml.spec import ClaimSpec


@dataclass(frozen=True)
class Verdict:
    """A claim judged on paired per-seed values."""

    claim: ClaimSpec
    differences: tuple[float, ...]
    mean: float
    wins: int
    holds: bool


def judge(claim: ClaimSpec, better: Sequence[float], worse: Sequence[float]) -> Verdict:
    """Judge a claim on the values of its two cells, paired by seed index.

    Raises:
        ValueError: the two sequences differ in length or are empty.
    """
    if len(better) != len(worse) or not better:
        raise ValueError(f"{claim.text}: need the same positive number of seeds, got {len(better)} and {len(worse)}")
    differences = tuple(float(b) - float(w) for b, w in zip(better, worse, strict=True))
    mean = statistics.fmean(differences)
    return Verdict(
        claim=claim,
        differences=differences,
        mean=mean,
        wins=sum(difference > 0 for difference in differences),
        holds=mean > claim.margin,
    )


def _signed(value: float) -> str:
    return f"{value:+.2f}".replace("-", "−")


def verdict_lines(verdicts: Sequence[Verdict]) -> list[str]:
    """One Markdown bullet per verdict, e.g. `- ✓ held: A > B (top1: +2.31 mean over 3 seeds, 3/3 seeds)`."""
    lines = []
    for verdict in verdicts:
        claim, seeds = verdict.claim, len(verdict.differences)
        status = "✓ held" if verdict.holds else "✗ not held"
        margin = f", margin {_signed(claim.margin)}" if claim.margin else ""
        plural = "s" if seeds > 1 else ""
        lines.append(
            f"- {status}: {claim.text} ({claim.metric}: {_signed(verdict.mean)} mean over {seeds} seed{plural}"
            f"{margin}, {verdict.wins}/{seeds} seeds)"
        )
    return lines
