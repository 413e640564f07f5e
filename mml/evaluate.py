"""Evaluation: per-video scores over a view protocol, and top-k accuracy.

A model's score for a video is the mean of its logits over the test views (as the original `test_models.py`);
the scores of every video are stored with the run, per view protocol, so ensembles are post-processing of the
store and a new protocol evaluates stored models without retraining them. A late-fusion run (G-Blend) is
evaluated per branch, each with its own head, and then as the whole network on its fused head, stored as model
index M (one past the branches): the heads a method evaluates beyond its models (`Method.evaluation_heads`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from mml import atomic
from mml.atomic import staging_folder
from mml.data.cache import FrameSource
from mml.data.charades import targets
from mml.data.clips import FusedViews, ViewClips
from mml.execution import Execution, to_device
from mml.methods import METHODS
from mml.metrics import charades_map, fuse_views_max
from mml.networks import stored_heads, stored_models
from mml.spec import ViewProtocol
from mml.store import RunConfig, Store, evaluation_key, write_json

if TYPE_CHECKING:
    from collections.abc import Sequence

    from mml.data.charades import MultiLabelRecord
    from mml.data.datasets import VideoDataset
    from mml.data.regions import InformativeRegions
    from mml.data.sthv2 import VideoRecord

EVAL_BATCH = 8  # videos per loader batch
EVAL_CLIPS = 32  # clips per forward pass (a Charades video has 30 views of 8 x 256 x 256)
_SCORE_ARRAYS = ("video_ids", "labels", "logits")  # what every scores file holds; the rest are extras


@torch.no_grad()
def predict(
    model: nn.Module,
    views: ViewClips | FusedViews,
    device: str,
    workers: int,
    progress: bool,
    desc: str,
    fuse_max: bool = False,
) -> np.ndarray:
    """Logits (videos, classes) of `model` averaged over each video's views, or their maximum with `fuse_max`
    (`fuse_views_max`, PySlowFast's Charades fusion: the max of sigmoid scores, the sigmoid of the max logit)."""
    model.eval()
    loader = DataLoader(views, EVAL_BATCH, shuffle=False, num_workers=workers)
    scores = []
    for clips, _ in tqdm(loader, desc=desc, leave=False, disable=not progress):
        batch, count = next(iter(clips.values())).shape[:2] if isinstance(clips, dict) else clips.shape[:2]
        logits = torch.cat([model(to_device(chunk, device)).float() for chunk in _chunks(clips)])
        per_view = logits.view(batch, count, -1).cpu()
        scores.append(fuse_views_max(per_view.numpy()) if fuse_max else per_view.mean(1).numpy())
    return np.concatenate(scores)


@torch.no_grad()
def predict_videos(
    model: nn.Module, views: FusedViews, device: str, workers: int, progress: bool, desc: str
) -> tuple[np.ndarray, np.ndarray]:
    """Logits (videos, classes) and decisions (videos, views, modalities) of a network that takes each video's
    views at once (`per_video`: an AdaMML network, whose policy runs over the segments in order)."""
    model.eval()
    loader = DataLoader(views, EVAL_BATCH, shuffle=False, num_workers=workers)
    scores, decisions = [], []
    for clips, _ in tqdm(loader, desc=desc, leave=False, disable=not progress):
        logits, chosen = model(to_device(clips, device))
        scores.append(logits.float().cpu().numpy())
        decisions.append(chosen.cpu().numpy().astype(bool))
    return np.concatenate(scores), np.concatenate(decisions)


def _chunks(clips: torch.Tensor | dict[str, torch.Tensor]) -> list:
    """A batch of videos' views (videos, views, ...) as chunks of at most EVAL_CLIPS clips: tensors, or for a
    late-fusion network dicts of each modality's tensors."""
    if isinstance(clips, dict):
        parts = {modality: tensor.flatten(0, 1).split(EVAL_CLIPS) for modality, tensor in clips.items()}
        return [dict(zip(parts, chunk, strict=True)) for chunk in zip(*parts.values(), strict=True)]
    return list(clips.flatten(0, 1).split(EVAL_CLIPS))


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per video, whether its label is among the k highest scores (ties broken by class order)."""
    k = min(k, scores.shape[1])
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.any(top == labels[:, None], axis=1)


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, k: int) -> float:
    """Percentage of videos whose label is among the k highest scores."""
    return float(100.0 * np.mean(topk_correct(scores, labels, k)))


def save_scores(path: Path, video_ids: list[str], labels: np.ndarray, logits: np.ndarray, **extra: np.ndarray) -> None:
    """Atomically store per-video scores (and `extra` per-video arrays, e.g. an AdaMML network's decisions)."""
    buffer = io.BytesIO()
    arrays: dict[str, Any] = {"video_ids": np.array(video_ids), "labels": labels, "logits": logits, **extra}
    np.savez(buffer, **arrays)
    atomic.write_bytes(path, buffer.getvalue())


def load_scores(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(video ids, labels, logits) stored by `save_scores`."""
    with np.load(path) as data:
        return data["video_ids"], data["labels"], data["logits"]


def load_extras(path: Path) -> dict[str, np.ndarray]:
    """The per-video arrays stored beside the scores (`save_scores`' `extra`), read in one pass: an AdaMML network's
    `decisions` (videos, segments, modalities) and, on data with informative regions, `informative` (videos,
    segments); none for other models."""
    with np.load(path) as data:
        return {name: data[name] for name in data.files if name not in _SCORE_ARRAYS}


def evaluate_stored(
    store: Store,
    config: RunConfig,
    views: ViewProtocol,
    dataset: VideoDataset,
    cache: FrameSource,
    run: Execution,
) -> dict[str, Any]:
    """Top-1/top-5 of every model of a finished run under a view protocol, computing and storing them once.

    Writes `eval/<protocol>/scores<i>.npz` (per-video logits) and `metrics.json` into the run's folder through a
    staging folder and one rename, so an interrupted evaluation leaves nothing behind.
    """
    rid, key = config.run_id, evaluation_key(views, dataset.validation_fingerprint)
    found = current_evaluation(store, rid, key, dataset.regions)
    if found is not None:
        return found
    with store.lock(f"{rid}.eval.{key}"):  # a concurrent runner evaluates it once, not twice at once
        found = current_evaluation(store, rid, key, dataset.regions)
        return found or _evaluate(store, config, views, dataset, cache, run)


def current_evaluation(store: Store, rid: str, key: str, regions: InformativeRegions | None) -> dict[str, Any] | None:
    """A run's stored evaluation under a view protocol, or None when it has none, or when on data with informative
    `regions` it stored a policy's decisions without their segments' informative flags (evaluated before they
    existed: it is evaluated again)."""
    found = store.evaluation(rid, key)
    if found is None or regions is None:
        return found
    for path in sorted(store.evaluation_dir(rid, key).glob("scores*.npz")):
        with np.load(path) as data:
            if "decisions" in data and "informative" not in data:
                return None
    return found


def informative_segments(regions: InformativeRegions, views: ViewClips) -> np.ndarray:
    """(videos, views) whether each test view of each video lies in one of the video's informative regions."""
    return np.stack(
        [regions.flags(record.video_id, views.view_positions(index)) for index, record in enumerate(views.records)]
    )


def _evaluate(
    store: Store, config: RunConfig, views: ViewProtocol, dataset: VideoDataset, cache: FrameSource, run: Execution
) -> dict[str, Any]:
    rid = config.run_id
    multilabel = dataset.multilabel
    # A data set's records are all of one kind, the one `multilabel` reads off its first training record.
    if multilabel:
        labels = targets(cast("Sequence[MultiLabelRecord]", dataset.validation), config.num_classes)
    else:
        labels = np.array([r.label for r in cast("Sequence[VideoRecord]", dataset.validation)])
    ids = [r.video_id for r in dataset.validation]
    models = stored_models(store, config)
    branch_views = [
        ViewClips(dataset.validation, cache, spec.modality, config.recipe, views, config.num_classes)
        for spec in config.models
    ]
    evaluated: list[tuple[torch.nn.Module, ViewClips | FusedViews]] = list(zip(models, branch_views, strict=True))
    # Heads beyond the models (a late-fusion run's fused head, an AdaMML network: model index M), after each model
    # with its own head, on the views and modalities their method asks for.
    method = METHODS[config.method]
    head_protocol = method.head_views(config, views)
    head_views = [
        ViewClips(dataset.validation, cache, modality, config.recipe, head_protocol, config.num_classes)
        for modality in [m.modality for m in config.models] + method.extra_inputs(config)
    ]
    evaluated += [(head, FusedViews(head_views)) for head in stored_heads(store, config, models)]
    metrics = []
    with staging_folder(
        store.evaluation_dir(rid, evaluation_key(views, dataset.validation_fingerprint)), replace=True
    ) as staging:
        for index, (model, clips) in enumerate(evaluated):
            model = model.to(run.device)
            desc = f"{rid} eval {index}"
            if getattr(model, "per_video", False):
                assert isinstance(clips, FusedViews)  # a head beyond the models
                logits, decisions = predict_videos(model, clips, run.device, run.workers, run.progress, desc)
                extra = {"decisions": decisions}
                if dataset.regions is not None:
                    extra["informative"] = informative_segments(dataset.regions, clips.views[0])
                save_scores(staging / f"scores{index}.npz", ids, labels, logits, **extra)
            else:
                logits = predict(model, clips, run.device, run.workers, run.progress, desc, multilabel)
                save_scores(staging / f"scores{index}.npz", ids, labels, logits)
            if multilabel:
                metrics.append({"map": charades_map(logits, labels)})
            else:
                metrics.append({"top1": topk_accuracy(logits, labels, 1), "top5": topk_accuracy(logits, labels, 5)})
        result = {"views": views.key, "validation": dataset.validation_fingerprint, "models": metrics}
        write_json(staging / "metrics.json", result)
    return result
