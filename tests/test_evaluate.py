"""Evaluation's view fusion and its staging: the max over views is `mml.metrics.fuse_views_max`, and an interrupted
evaluation leaves nothing in the run's folder."""

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

import mml.evaluate
from mml.evaluate import evaluate_stored, predict
from mml.execution import Execution
from mml.metrics import fuse_views_max
from mml.spec import Recipe, ViewProtocol
from mml.store import ModelConfig, RunConfig, Store, evaluation_key

RECIPE = Recipe(segments=2, short_side=32, input_size=32, batch_size=4, epochs=1, lr=0.01, lr_steps=(1,))
CONFIG = RunConfig("ce", (ModelConfig("RGB", "random"),), "tsm_tiny", RECIPE, "d" * 64, 5, 0)


class Views(Dataset):
    """Three views of four features per video, and a label."""

    def __init__(self, videos: int) -> None:
        self.clips = torch.randn(videos, 3, 4, generator=torch.Generator().manual_seed(0))

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        return self.clips[index], 0


def test_the_max_over_views_is_fuse_views_max(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(0)
    model, views = nn.Linear(4, 5), Views(10)
    calls = []

    def spy(view_scores: np.ndarray) -> np.ndarray:
        calls.append(view_scores.shape)
        return fuse_views_max(view_scores)

    monkeypatch.setattr(mml.evaluate, "fuse_views_max", spy)
    scores = predict(model, views, "cpu", 0, False, "test", fuse_max=True)
    assert calls and all(shape[1:] == (3, 5) for shape in calls)
    with torch.no_grad():
        expected = model(views.clips).amax(dim=1).numpy()
    np.testing.assert_array_equal(scores, expected)
    averaged = predict(model, views, "cpu", 0, False, "test")
    with torch.no_grad():
        np.testing.assert_allclose(averaged, model(views.clips).mean(dim=1).numpy(), rtol=1e-6)


def test_an_interrupted_evaluation_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mml.evaluate, "stored_models", lambda store, config: [nn.Linear(4, 5)])
    monkeypatch.setattr(mml.evaluate, "predict", interrupted)
    store = Store(tmp_path / "store")
    dataset = SimpleNamespace(validation=[], validation_fingerprint="v" * 64, multilabel=False, regions=None)
    with pytest.raises(KeyboardInterrupt):
        evaluate_stored(store, CONFIG, ViewProtocol(), dataset, None, Execution(progress=False))
    evaluations = store.run_dir(CONFIG.run_id) / "eval"
    assert not evaluations.exists() or not any(evaluations.iterdir())
    assert store.evaluation(CONFIG.run_id, evaluation_key(ViewProtocol(), dataset.validation_fingerprint)) is None
