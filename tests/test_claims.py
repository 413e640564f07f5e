"""Verdicts on the paper's claims: paired per-seed differences, mean against a margin, wins, Markdown lines."""

import pytest

from mml.report.claims import judge, verdict_lines
from mml.spec import ClaimSpec

FLOW = ClaimSpec("Flow from RGB > Flow from ImageNet", better="flow_rgb", worse="flow_imagenet")


def test_claim_holds_on_the_mean_of_paired_differences() -> None:
    verdict = judge(FLOW, [60.0, 61.5, 59.0], [58.0, 58.0, 57.5])
    assert verdict.differences == (2.0, 3.5, 1.5)
    assert verdict.mean == pytest.approx(7 / 3)
    assert verdict.wins == 3 and verdict.holds


def test_claim_fails_on_the_mean_even_with_a_majority_of_wins() -> None:
    verdict = judge(FLOW, [50.1, 50.1, 45.0], [50.0, 50.0, 50.0])
    assert verdict.wins == 2 and not verdict.holds
    assert verdict.mean == pytest.approx(-4.8 / 3)


def test_ties_are_neither_wins_nor_enough_to_hold() -> None:
    verdict = judge(FLOW, [50.0, 51.0], [50.0, 51.0])
    assert verdict.wins == 0 and verdict.mean == 0.0 and not verdict.holds


def test_margin() -> None:
    strict = ClaimSpec("MML RGB > CE RGB by 1 point", "mml", "ce", margin=1.0)
    lenient = ClaimSpec("MML is not worse than ML", "mml", "ml", margin=-0.5)
    assert not judge(strict, [61.0, 61.8], [60.0, 61.0]).holds  # mean +0.9
    assert not judge(strict, [61.0, 62.0], [60.0, 61.0]).holds  # mean exactly +1.0: not more than the margin
    assert judge(strict, [61.2, 62.0], [60.0, 61.0]).holds  # mean +1.1
    assert judge(lenient, [60.0, 60.0], [60.3, 60.1]).holds  # mean -0.2 > -0.5
    assert not judge(lenient, [60.0, 60.0], [60.6, 60.6]).holds


def test_seed_counts_must_match_and_be_positive() -> None:
    with pytest.raises(ValueError, match="same positive number of seeds"):
        judge(FLOW, [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="same positive number of seeds"):
        judge(FLOW, [], [])


def test_verdict_lines() -> None:
    held = judge(FLOW, [62.0, 62.5, 61.93], [60.0, 60.0, 59.5])
    failed = judge(ClaimSpec("MML RGB > ML RGB", "mml", "ml", metric="top5"), [60.0, 60.0, 60.5], [61.0, 60.5, 60.5])
    single = judge(ClaimSpec("A > B", "a", "b", margin=0.5), [61.0], [60.0])
    assert verdict_lines([held, failed, single]) == [
        "- ✓ held: Flow from RGB > Flow from ImageNet (top1: +2.31 mean over 3 seeds, 3/3 seeds)",
        "- ✗ not held: MML RGB > ML RGB (top5: −0.50 mean over 3 seeds, 0/3 seeds)",
        "- ✓ held: A > B (top1: +1.00 mean over 1 seed, margin +0.50, 1/1 seeds)",
    ]
    assert verdict_lines([]) == []
