"""Ensembles of stored scores: probability averaging, alignment, pair matrices (Tab. 11/12), triples (Tab. 13)."""

import warnings
from pathlib import Path

import numpy as np
import pytest

from mml.evaluate import save_scores, topk_accuracy
from mml.report.ensemble import (
    SUM_OF_POSITIONS,
    Scores,
    ensemble_accuracy,
    ensemble_probabilities,
    pair_matrix,
    rank_triples,
    shared_ranks,
)


def scores(name: str, logits: list[list[float]] | np.ndarray, labels: list[int] | np.ndarray) -> Scores:
    logits = np.asarray(logits, dtype=np.float64)
    ids = np.array([f"v{i}" for i in range(len(logits))])
    return Scores(name=name, video_ids=ids, labels=np.asarray(labels), logits=logits)


def test_ensemble_is_right_where_every_member_is_wrong() -> None:
    # Label 0 is each member's second choice; the members' first choices differ, so the average picks label 0.
    first = scores("a", [[0.0, 0.5, -50.0]], [0])
    second = scores("b", [[0.0, -50.0, 0.5]], [0])
    assert ensemble_accuracy([first]) == (0.0, 100.0)
    assert ensemble_accuracy([second]) == (0.0, 100.0)
    assert ensemble_accuracy([first, second]) == (100.0, 100.0)


def test_probabilities_not_logits_are_averaged() -> None:
    probs_a, probs_b = np.array([0.9, 0.05, 0.05]), np.array([0.001, 0.4, 0.599])
    # Arithmetic mean of probabilities: [0.4505, 0.225, 0.3245] -> class 0; mean of logits (geometric mean) -> class 2.
    for label, expected in ((0, 100.0), (2, 0.0)):
        members = [scores("a", [np.log(probs_a)], [label]), scores("b", [np.log(probs_b)], [label])]
        np.testing.assert_allclose(ensemble_probabilities(members), [(probs_a + probs_b) / 2])
        mean_logits = (members[0].logits + members[1].logits) / 2
        assert topk_accuracy(mean_logits, np.array([label]), 1) == 100.0 - expected
        assert ensemble_accuracy(members)[0] == expected


def test_softmax_rows_sum_to_one_and_sigmoid_is_per_class() -> None:
    logits = [[0.0, np.log(3.0)], [800.0, -800.0]]
    single = scores("a", logits, [1, 0])
    np.testing.assert_allclose(ensemble_probabilities([single]), [[0.25, 0.75], [1.0, 0.0]])
    multi = scores("a", logits, np.array([[0, 1], [1, 0]]))
    other = scores("b", np.zeros((2, 2)), np.array([[0, 1], [1, 0]]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow in exp for large logits of either sign
        np.testing.assert_allclose(ensemble_probabilities([multi], multilabel=True), [[0.5, 0.75], [1.0, 0.0]])
    np.testing.assert_allclose(ensemble_probabilities([multi, other], multilabel=True), [[0.5, 0.625], [0.75, 0.25]])
    with pytest.raises(ValueError, match="one class index per video"):
        ensemble_accuracy([multi])


def test_misaligned_members_raise_naming_the_member() -> None:
    first = scores("first", np.zeros((3, 4)), [0, 1, 2])
    good = scores("good", np.ones((3, 4)), [0, 1, 2])
    reordered = Scores("reordered", first.video_ids[::-1], first.labels, first.logits)
    relabelled = scores("relabelled", np.zeros((3, 4)), [0, 1, 3])
    with pytest.raises(ValueError, match="^reordered: video ids"):
        ensemble_probabilities([first, good, reordered, relabelled])
    with pytest.raises(ValueError, match="^relabelled: labels"):
        ensemble_probabilities([first, good, relabelled, reordered])
    with pytest.raises(ValueError, match="^narrow: logits"):
        ensemble_probabilities([first, scores("narrow", np.zeros((3, 3)), [0, 1, 2])])
    with pytest.raises(ValueError, match="at least one member"):
        ensemble_probabilities([])


def test_load_reads_stored_scores(tmp_path: Path) -> None:
    logits = np.arange(6, dtype=np.float32).reshape(2, 3)
    save_scores(tmp_path / "scores0.npz", ["x", "y"], np.array([2, 0]), logits)
    loaded = Scores.load("RGB CE", tmp_path / "scores0.npz")
    assert loaded.name == "RGB CE" and list(loaded.video_ids) == ["x", "y"]
    np.testing.assert_array_equal(loaded.labels, [2, 0])
    np.testing.assert_array_equal(loaded.logits, logits)
    assert ensemble_accuracy([loaded]) == (50.0, 100.0)


def test_pair_matrix_keeps_order_and_matches_direct_ensembles() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 8, size=40)
    rows = [scores(name, rng.normal(size=(40, 8)) * 3, labels) for name in ("z flow", "a flow")]
    columns = [scores(name, rng.normal(size=(40, 8)) * 3, labels) for name in ("m rgb", "b rgb", "x rgb")]
    matrix = pair_matrix(rows, columns)
    assert matrix.shape == (2, 3)
    assert list(matrix.index) == ["z flow", "a flow"] and list(matrix.columns) == ["m rgb", "b rgb", "x rgb"]
    for row in rows:
        for column in columns:
            assert matrix.loc[row.name, column.name] == ensemble_accuracy([row, column])
    assert len({cell for row in matrix.itertuples(index=False) for cell in row}) > 1
    with pytest.raises(ValueError, match="duplicate"):
        pair_matrix(rows, [columns[0], columns[0]])


def voter(name: str, correct: str) -> Scores:
    """Two classes; probability 0.9 on the label of video i when correct[i] == "1", else 0.1."""
    labels = np.array([0, 1, 0, 1])
    logits = np.full((4, 2), np.log(0.1))
    for video, (label, flag) in enumerate(zip(labels, correct, strict=True)):
        logits[video, label if flag == "1" else 1 - label] = np.log(0.9)
    return scores(name, logits, labels)


def test_rank_triples_sums_positions_by_hand() -> None:
    # With three voters an ensemble is right on a video iff at least two members are.
    #   (strong, F1, D): 3+2+2+1 correct votes per video -> 3/4 = 75 %
    #   (strong, F2, D): 2+2+1+2 -> 75 %, tied with the first on top-1 and top-5 (100 with two classes): both take
    #                    the average of positions 0 and 1, 0.5
    #   (weak, F1, D):   2+1+1+0 -> 25 %, position 2
    #   (weak, F2, D):   1+1+0+1 -> 0 %, position 3
    # Sums (the paper counts from 0): strong 0.5+0.5 = 1, weak 2+3 = 5; flow 1: 0.5+2 = 2.5, flow 2: 0.5+3 = 3.5;
    # diff 0.5+0.5+2+3 = 6 = 0+1+2+3, as without the tie.
    rgb = [voter("RGB weak", "0000"), voter("RGB strong", "1111")]
    flow = [voter("flow 2", "0001"), voter("flow 1", "1010")]
    diff = [voter("diff", "1100")]
    assert ensemble_accuracy([rgb[1], flow[1], diff[0]])[0] == 75.0
    assert ensemble_accuracy([rgb[1], flow[0], diff[0]])[0] == 75.0
    frames = rank_triples([rgb, flow, diff])
    assert [list(frame.index) for frame in frames] == [["RGB strong", "RGB weak"], ["flow 1", "flow 2"], ["diff"]]
    assert [list(frame[SUM_OF_POSITIONS]) for frame in frames] == [[1, 5], [2.5, 3.5], [6]]
    assert all(frame.index.name == "model" for frame in frames)


def test_tied_triples_are_not_ordered_by_names() -> None:
    # Two Flow models that are right on the same videos make every triple with one tie with the triple with the
    # other: whatever their names, they get equal sums, listed in the group's order, and share a rank.
    rgb = [voter("RGB strong", "1110"), voter("RGB weak", "0100")]
    diff = [voter("diff", "1001")]
    for first, second in (("a", "b"), ("b", "a")):
        flow = [voter(first, "1010"), voter(second, "1010")]
        frames = rank_triples([rgb, flow, diff])
        # strong: 2/4 with either Flow model (positions 0, 1 -> 0.5 each), weak: 1/4 (positions 2, 3 -> 2.5 each)
        assert list(frames[0][SUM_OF_POSITIONS]) == [1, 5]
        assert list(frames[1].index) == [first, second] and list(frames[1][SUM_OF_POSITIONS]) == [3, 3]
        assert shared_ranks(list(frames[1][SUM_OF_POSITIONS])) == [1, 1]


def test_shared_ranks_are_standard_competition_ranks() -> None:
    assert shared_ranks([30.0, 10.0, 20.0, 20.0, 5.0]) == [5, 2, 3, 3, 1]
    assert shared_ranks([7.0, 7.0, 7.0]) == [1, 1, 1]
    assert shared_ranks([]) == []


def test_rank_triples_rejects_empty_groups() -> None:
    with pytest.raises(ValueError, match="at least one model"):
        rank_triples([[voter("a", "1111")], []])
