"""Ensembles as post-processing of stored per-video scores (paper §4, Appendix 3, Tab. 11–13).

An ensemble averages its members' probabilities (softmax, or sigmoid for multi-label data), not their logits.
Every member must score the same videos in the same order with the same labels.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from mml.evaluate import load_extras, load_scores, topk_accuracy

SUM_OF_POSITIONS = "sum of positions"


@dataclass(frozen=True, eq=False)
class Scores:
    """One model's stored scores: video ids (N,), labels ((N,) class indices or (N, C) 0/1) and logits (N, C)."""

    name: str
    video_ids: np.ndarray
    labels: np.ndarray
    logits: np.ndarray
    decisions: np.ndarray | None = None  # an AdaMML network's (N, segments, modalities) use/skip decisions
    informative: np.ndarray | None = None  # with them, on data with regions.json: (N, segments) in an informative one

    def __post_init__(self) -> None:
        count = len(self.video_ids)
        if self.logits.ndim != 2 or self.logits.shape[0] != count or self.labels.shape[0] != count:
            raise ValueError(
                f"{self.name}: expected {count} rows of logits and labels, got logits {self.logits.shape} "
                f"and labels {self.labels.shape}"
            )

    @classmethod
    def load(cls, name: str, path: Path) -> Scores:
        """The scores stored at `path` (`scores<i>.npz` of an evaluation folder) under a display name."""
        video_ids, labels, logits = load_scores(path)
        extras = load_extras(path)
        return cls(name, video_ids, labels, logits, extras.get("decisions"), extras.get("informative"))


def _check_aligned(members: Sequence[Scores]) -> None:
    """Raise ValueError naming the first member whose videos, labels or classes differ from the first member's."""
    if not members:
        raise ValueError("an ensemble needs at least one member")
    reference = members[0]
    for member in members[1:]:
        if not np.array_equal(member.video_ids, reference.video_ids):
            raise ValueError(f"{member.name}: video ids differ from those of {reference.name} (or their order)")
        if not np.array_equal(member.labels, reference.labels):
            raise ValueError(f"{member.name}: labels differ from those of {reference.name}")
        if member.logits.shape != reference.logits.shape:
            raise ValueError(
                f"{member.name}: logits {member.logits.shape} vs {reference.logits.shape} of {reference.name}"
            )


def _probabilities(scores: Scores, multilabel: bool) -> np.ndarray:
    """Softmax (or, for multi-label data, sigmoid) of a model's logits, in float64."""
    logits = scores.logits.astype(np.float64)
    if multilabel:
        return np.exp(-np.logaddexp(0.0, -logits))
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def _mean(probabilities: Sequence[np.ndarray]) -> np.ndarray:
    return np.mean(np.stack(probabilities), axis=0)


def _accuracy(probabilities: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    if labels.ndim != 1:
        raise ValueError(f"top-k accuracy needs one class index per video, got labels of shape {labels.shape}")
    return topk_accuracy(probabilities, labels, 1), topk_accuracy(probabilities, labels, 5)


def ensemble_probabilities(members: Sequence[Scores], multilabel: bool = False) -> np.ndarray:
    """The mean of the members' softmax (sigmoid if `multilabel`) probabilities, shape (N, C).

    Raises:
        ValueError: no members, or a member's video ids (or their order), labels or class count differ from the
            first member's; the message names the first such member.
    """
    _check_aligned(members)
    return _mean([_probabilities(member, multilabel) for member in members])


def ensemble_accuracy(members: Sequence[Scores]) -> tuple[float, float]:
    """Top-1 and top-5 accuracy (%) of the averaged softmax probabilities of single-label members."""
    return _accuracy(ensemble_probabilities(members), members[0].labels)


def _unique_names(members: Sequence[Scores], what: str) -> list[str]:
    names = [member.name for member in members]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(f"{what}: duplicate model names {duplicates}")
    return names


def pair_matrix(rows: Sequence[Scores], columns: Sequence[Scores]) -> pd.DataFrame:
    """(top-1, top-5) of every two-model ensemble of a row model and a column model (paper Tab. 11/12).

    Args:
        rows: Flow (Tab. 11) or Diff (Tab. 12) models, in display order.
        columns: RGB models, in display order.

    Returns:
        A frame indexed by row names with one column per column name; each cell a (top1, top5) tuple.
    """
    row_names, column_names = _unique_names(rows, "rows"), _unique_names(columns, "columns")
    _check_aligned([*rows, *columns])
    labels = rows[0].labels
    row_probs = [_probabilities(member, False) for member in rows]
    column_probs = [_probabilities(member, False) for member in columns]
    cells = [[_accuracy(_mean([r, c]), labels) for c in column_probs] for r in row_probs]
    return pd.DataFrame(cells, index=row_names, columns=column_names, dtype=object)


def rank_triples(groups: Sequence[Sequence[Scores]]) -> list[pd.DataFrame]:
    """Each model's sum of positions over the ranking of all ensembles with one model per group (paper Tab. 13).

    Every combination of one model from each group (RGB, Flow, Diff in the paper) is ranked by ensemble top-1,
    descending, then by top-5; positions count from 0, as the paper's sums do. Combinations tied on both share the
    average of the positions they span (fractional ranking: the expected position under any arbitrary order of the
    tie, e.g. by names), so every group's sums still add up to 0 + 1 + ... + (triples − 1). A model's score is the sum
    of the positions of all combinations it belongs to: the smaller, the better it ensembles.

    Returns:
        One frame per group, indexed by model name (index name "model"), with the column "sum of positions" (a
        multiple of 0.5), sorted ascending (equal sums in the group's order).
    """
    if not groups or any(not group for group in groups):
        raise ValueError("every group needs at least one model")
    names = [_unique_names(group, f"group {index}") for index, group in enumerate(groups)]
    _check_aligned([member for group in groups for member in group])
    labels = groups[0][0].labels
    probs = [[_probabilities(member, False) for member in group] for group in groups]
    scored = []
    for combination in itertools.product(*(range(len(group)) for group in groups)):
        top1, top5 = _accuracy(_mean([probs[g][m] for g, m in enumerate(combination)]), labels)
        scored.append(((-top1, -top5), combination))
    scored.sort(key=lambda item: item[0])
    sums = [[0.0] * len(group) for group in groups]
    first = 0  # the first position of the current block of tied combinations
    for _, tied in itertools.groupby(scored, key=lambda item: item[0]):
        block = [combination for _, combination in tied]
        position = first + (len(block) - 1) / 2
        for combination in block:
            for g, m in enumerate(combination):
                sums[g][m] += position
        first += len(block)
    frames = []
    for group_names, group_sums in zip(names, sums, strict=True):
        order = sorted(range(len(group_names)), key=lambda m: group_sums[m])
        index = pd.Index([group_names[m] for m in order], name="model")
        frames.append(pd.DataFrame({SUM_OF_POSITIONS: [group_sums[m] for m in order]}, index=index))
    return frames


def shared_ranks(values: Sequence[float]) -> list[int]:
    """The rank of each value, smallest first, equal values sharing the best rank of their block (standard competition
    ranking, "1224"): Tab. 13's rank of a model by its sum of positions."""
    return [1 + sum(other < value for other in values) for value in values]
