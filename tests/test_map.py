"""Tests of the multi-label metrics: per-class AP, Charades mAP and max fusion over views."""

import numpy as np
import pytest

from mml.metrics import average_precision, charades_map, fuse_views_max


@pytest.mark.parametrize(
    ("scores", "targets", "expected"),
    [
        # Thresholds 0.9, 0.8, 0.7, 0.6: (P, R) = (1, .5), (.5, .5), (2/3, 1), (.5, 1) -> .5 * 1 + .5 * 2/3.
        ([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0], 0.5 + 1 / 3),
        # Perfect ranking.
        ([0.1, 0.9, 0.8, 0.2], [0, 1, 1, 0], 1.0),
        # The only positive ranked last of four: P = 1/4 at R = 1.
        ([0.4, 0.3, 0.2, 0.1], [0, 0, 0, 1], 0.25),
        # A three-way tie at 0.5 holding one positive: (P, R) = (1/3, .5), then 0.2 gives (1/2, 1).
        ([0.5, 0.5, 0.5, 0.2], [1, 0, 0, 1], 0.5 / 3 + 0.5 / 2),
        # All tied: one threshold, AP = the positive rate.
        ([0.3, 0.3, 0.3, 0.3], [1, 0, 1, 0], 0.5),
        # Tie at the top (1 of 2 positive), then a positive alone: (1/2, 1/2), (2/3, 1).
        ([0.9, 0.9, 0.5], [1, 0, 1], 0.5 * 0.5 + 0.5 * 2 / 3),
    ],
)
def test_average_precision_matches_hand_computed_values(
    scores: list[float], targets: list[int], expected: float
) -> None:
    assert average_precision(np.array(scores), np.array(targets)) == pytest.approx(expected)


def test_average_precision_does_not_depend_on_the_order_of_tied_items() -> None:
    scores = np.array([0.5, 0.5, 0.5, 0.2])
    assert average_precision(scores, np.array([1, 0, 0, 1])) == average_precision(scores, np.array([0, 0, 1, 1]))


@pytest.mark.parametrize(
    ("scores", "targets"),
    [
        ([0.1, 0.2], [0, 0]),
        ([0.1, 0.2], [1, 2]),
        ([0.1, np.nan], [1, 0]),
        ([0.1, 0.2, 0.3], [1, 0]),
        ([], []),
    ],
)
def test_average_precision_rejects_bad_input(scores: list[float], targets: list[int]) -> None:
    with pytest.raises(ValueError):
        average_precision(np.array(scores), np.array(targets))


def test_charades_map_averages_classes_with_a_positive_and_skips_the_rest() -> None:
    scores = np.array([[0.9, 0.1, 0.5], [0.8, 0.7, 0.4], [0.7, 0.2, 0.3], [0.6, 0.5, 0.2]])
    targets = np.array([[1, 0, 0], [0, 0, 0], [1, 0, 0], [0, 1, 0]])
    # Class 0: AP 1/2 + 1/3 (the first hand-computed case); class 1: its positive ranks second, AP 1/2;
    # class 2 has no positive and is skipped rather than counted as 0.
    assert charades_map(scores, targets) == pytest.approx(100 * (0.5 + 1 / 3 + 0.5) / 2)


def test_charades_map_rejects_no_positive_and_bad_shapes() -> None:
    with pytest.raises(ValueError, match="no class"):
        charades_map(np.zeros((3, 2)), np.zeros((3, 2)))
    with pytest.raises(ValueError):
        charades_map(np.zeros((3, 2)), np.zeros((3, 3)))
    with pytest.raises(ValueError):
        charades_map(np.zeros(3), np.ones(3))


def test_matches_sklearn_on_random_data_with_ties() -> None:
    from sklearn import metrics  # a test dependency (pyproject's `test` extra): this check is never skipped

    rng = np.random.default_rng(0)
    scores = rng.integers(0, 6, size=(60, 8)) / 5.0  # Few distinct values: many ties.
    targets = (rng.random((60, 8)) < 0.3).astype(int)
    targets[:, 5] = 0
    for c in range(8):
        if targets[:, c].any():
            assert average_precision(scores[:, c], targets[:, c]) == pytest.approx(
                metrics.average_precision_score(targets[:, c], scores[:, c])
            )
    present = targets.any(axis=0)
    expected = 100 * np.mean(metrics.average_precision_score(targets[:, present], scores[:, present], average=None))
    assert charades_map(scores, targets) == pytest.approx(expected)


def test_fuse_views_max_takes_the_elementwise_maximum_over_views() -> None:
    views = np.array([[[0.1, 0.9], [0.5, 0.2], [0.3, 0.4]], [[0.0, 0.0], [0.2, 0.1], [0.1, 0.3]]])
    assert np.array_equal(fuse_views_max(views), np.array([[0.5, 0.9], [0.2, 0.3]]))
    assert np.array_equal(fuse_views_max(views[:, :1]), views[:, 0])
    with pytest.raises(ValueError):
        fuse_views_max(views[0])
    with pytest.raises(ValueError):
        fuse_views_max(np.zeros((2, 0, 3)))
