"""The accuracy metrics' display names, and the multi-label metrics of the Charades setup: per-class average
precision, Charades mAP and view fusion.

Written with numpy only, to the definitions PySlowFast uses (``slowfast/utils/meters.py::get_map``, which calls
sklearn's ``average_precision_score``), so results are comparable without depending on sklearn.
"""

import numpy as np

# How the tables and the runner's messages name the accuracy metrics evaluation stores (`mml.evaluate`).
METRIC_LABELS = {"top1": "Top-1", "top5": "Top-5", "map": "mAP"}


def average_precision(scores: np.ndarray, targets: np.ndarray) -> float:
    """Average precision of one class: ``sum_n (R_n - R_{n-1}) * P_n`` over the distinct scores, highest first.

    Each distinct score is one threshold and all items tied at it are counted together, as sklearn's
    ``average_precision_score`` does (no interpolation of the precision-recall curve).

    Args:
        scores: Scores of the items, shape (N,); higher means more likely positive.
        targets: 0/1 ground truth of the items, shape (N,), with at least one positive.

    Returns:
        The AP in [0, 1].

    Raises:
        ValueError: Shapes differ or are not 1-d, scores are not finite, targets are not 0/1, or there is no
            positive (AP is undefined then).
    """
    scores = np.asarray(scores, dtype=np.float64)
    targets = np.asarray(targets)
    if scores.ndim != 1 or scores.shape != targets.shape or scores.size == 0:
        raise ValueError(f"need non-empty 1-d scores and targets of equal shape, got {scores.shape}, {targets.shape}")
    if not np.all(np.isfinite(scores)):
        raise ValueError("scores must be finite")
    if not np.all((targets == 0) | (targets == 1)):
        raise ValueError("targets must be 0 or 1")
    positives = float(targets.sum())
    if positives == 0:
        raise ValueError("average precision is undefined without a positive target")
    order = np.argsort(-scores, kind="stable")
    ranked_scores, ranked_targets = scores[order], targets[order].astype(np.float64)
    # The last position of each run of equal scores: the threshold there admits the whole run.
    ends = np.append(np.flatnonzero(np.diff(ranked_scores)), scores.size - 1)
    true_positives = np.cumsum(ranked_targets)[ends]
    precision = true_positives / (ends + 1)
    recall = true_positives / positives
    return float(np.sum(np.diff(recall, prepend=0.0) * precision))


def charades_map(scores: np.ndarray, targets: np.ndarray) -> float:
    """Charades mAP in percent: the mean class AP over the classes with at least one positive video.

    Classes without a positive are skipped, as PySlowFast's ``get_map`` does.

    Args:
        scores: Per-video class scores, shape (videos, classes).
        targets: 0/1 video-level targets of the same shape.

    Raises:
        ValueError: Shapes differ or are not 2-d, or no class has a positive.
    """
    scores = np.asarray(scores)
    targets = np.asarray(targets)
    if scores.ndim != 2 or scores.shape != targets.shape:
        raise ValueError(f"need 2-d scores and targets of equal shape, got {scores.shape}, {targets.shape}")
    present = np.flatnonzero(targets.sum(axis=0) > 0)
    if present.size == 0:
        raise ValueError("mAP is undefined: no class has a positive target")
    return 100.0 * float(np.mean([average_precision(scores[:, c], targets[:, c]) for c in present]))


def fuse_views_max(view_scores: np.ndarray) -> np.ndarray:
    """Per-video scores as the element-wise max over test views (PySlowFast's Charades ``ENSEMBLE_METHOD max``).

    Args:
        view_scores: Scores of shape (videos, views, classes), views >= 1.

    Returns:
        Scores of shape (videos, classes).
    """
    view_scores = np.asarray(view_scores)
    if view_scores.ndim != 3 or view_scores.shape[1] == 0:
        raise ValueError(f"need view scores of shape (videos, views >= 1, classes), got {view_scores.shape}")
    return view_scores.max(axis=1)
