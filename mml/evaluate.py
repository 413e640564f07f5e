"""Evaluation: per-video scores over a view protocol, and top-k accuracy.

A model's score for a video is the mean of its logits over the test views (as the original `test_models.py`);
the scores of every video are stored with the run, so ensembles are post-processing of the store.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from mml.data.cache import FrameCache
from mml.data.clips import TestViews
from mml.runs import write_atomic

if TYPE_CHECKING:
    from mml.data.datasets import VideoDataset
    from mml.runs import RunConfig

EVAL_BATCH = 8


@torch.no_grad()
def predict(model: nn.Module, views: TestViews, device: str, workers: int, progress: bool, desc: str) -> np.ndarray:
    """Logits (videos, classes) of `model` averaged over each video's views."""
    model.eval()
    loader = DataLoader(views, EVAL_BATCH, shuffle=False, num_workers=workers)
    scores = []
    for clips, _ in tqdm(loader, desc=desc, leave=False, disable=not progress):
        batch, count = clips.shape[:2]
        logits = model(clips.flatten(0, 1).to(device)).float()
        scores.append(logits.view(batch, count, -1).mean(1).cpu())
    return torch.cat(scores).numpy()


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Percentage of videos whose label is among the k highest scores."""
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float(100.0 * np.mean(np.any(top == labels[:, None], axis=1)))


def save_scores(path: Path, video_ids: list[str], labels: np.ndarray, logits: np.ndarray) -> None:
    """Atomically store per-video scores."""
    buffer = io.BytesIO()
    np.savez(buffer, video_ids=np.array(video_ids), labels=labels, logits=logits)
    write_atomic(path, buffer.getvalue())


def load_scores(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(video ids, labels, logits) stored by `save_scores`."""
    with np.load(path) as data:
        return data["video_ids"], data["labels"], data["logits"]


def evaluate_run(
    config: RunConfig,
    models: list[nn.Module],
    dataset: VideoDataset,
    cache: FrameCache,
    out_dir: Path,
    device: str,
    workers: int,
    progress: bool,
) -> list[dict[str, float]]:
    """Score every model of a run on the validation videos; write `scores<i>.npz`; return top-1/top-5 per model."""
    labels = np.array([r.label for r in dataset.validation])
    ids = [r.video_id for r in dataset.validation]
    metrics = []
    for index, (model, spec) in enumerate(zip(models, config.models, strict=True)):
        views = TestViews(dataset.validation, cache, spec.modality, config.recipe, config.views)
        logits = predict(model, views, device, workers, progress, f"{config.run_id} eval model {index}")
        save_scores(out_dir / f"scores{index}.npz", ids, labels, logits)
        metrics.append({"top1": topk_accuracy(logits, labels, 1), "top5": topk_accuracy(logits, labels, 5)})
    return metrics
