"""The learning check behind every table: chance-level loss and accuracy, upstream runs, the training curves."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from mml.evaluate import save_scores
from mml.plan import Plan
from mml.report.learning import chance_loss, health_lines, table_health, write_curves
from mml.spec import load_profile
from mml.store import ModelConfig, RunConfig, Store, write_json

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"
PROFILE = load_profile(REPRODUCTIONS / "profiles.toml", "smoke")


def stored_run(store: Store, plan: Plan, name: str, init: str, losses: list[float], correct: int, **extra) -> str:
    """A finished 4-class run in `store` with the given loss history and `correct` of 40 videos right."""
    config = RunConfig(
        method="ce",
        models=(ModelConfig(modality="RGB", init=init),),
        arch="tsm_tiny",
        recipe=PROFILE.recipe,
        dataset="fingerprint",
        num_classes=4,
        seed=0,
        **extra,
    )
    rid = plan.add(config, name)
    folder = store.run_dir(rid)
    write_json(
        folder / "metrics.json", {"history": [{"epoch": i + 1, "lr": 0.1, "loss": [v]} for i, v in enumerate(losses)]}
    )
    labels = np.arange(40) % 4
    logits = np.zeros((40, 4), dtype=np.float32)
    logits[np.arange(40), np.where(np.arange(40) < correct, labels, (labels + 1) % 4)] = 1.0
    evaluation = store.evaluation_dir(rid, PROFILE.views.key)
    save_scores(evaluation / "scores0.npz", [str(i) for i in range(40)], labels, logits)
    write_json(evaluation / "metrics.json", {"models": [{"top1": 100.0 * correct / 40, "top5": 100.0}]})
    return rid


def test_chance_loss() -> None:
    assert chance_loss(np.array([0, 1, 2]), 8) == pytest.approx(math.log(8))
    # Two classes present in half and a quarter of the videos: mean binary entropy.
    labels = np.array([[1, 0], [1, 1], [0, 0], [0, 0]])
    expected = (math.log(2) + (-(0.25 * math.log(0.25) + 0.75 * math.log(0.75)))) / 2
    assert chance_loss(labels, 2) == pytest.approx(expected)


def test_unlearned_models_are_named_with_their_upstream(tmp_path: Path) -> None:
    store, plan = Store(tmp_path), Plan()
    # Chance is 25 % of 40 videos, noise 1.96 * sqrt(0.25 * 0.75 / 40) = 13.4 points: 38.4 % is the bar.
    pretrain = stored_run(store, plan, "imagenet", "random", [1.6, 1.3], correct=15)  # 37.5 %: within noise
    student = stored_run(store, plan, "table:rgb", f"imagenet:run:{pretrain}/0", [1.2, 0.9], correct=30)
    stuck = stored_run(store, plan, "table:flow", "random", [1.39, 1.40], correct=20, replica=1)  # 50 %, loss ≥ ln 4
    health = {h.name: h for h in table_health(store, plan, [student, stuck], PROFILE.views)}
    assert set(health) == {"imagenet/0 (seed 0)", "table:rgb/0 (seed 0)", "table:flow/0 (seed 0)"}
    assert list(health)[0] == "imagenet/0 (seed 0)"  # upstream runs first
    assert health["table:rgb/0 (seed 0)"].learned
    assert health["imagenet/0 (seed 0)"].problems == ("top-1 37.50 within noise of chance 25.00 ± 13.42",)
    assert health["table:flow/0 (seed 0)"].problems == ("final training loss 1.400 not below chance 1.386",)
    lines = health_lines(list(health.values()))
    assert lines[0].startswith("**2 of 3 models behind this table did not learn**")
    assert health_lines([health["table:rgb/0 (seed 0)"]]) == [
        "All 1 models behind this table learned (loss below chance, top-1 above chance noise)."
    ]
    png = write_curves(list(health.values()), tmp_path / "curves.png", "title")
    assert png.read_bytes().startswith(b"\x89PNG")


def test_a_distillation_student_is_judged_on_accuracy_only(tmp_path: Path) -> None:
    store, plan = Store(tmp_path), Plan()
    teacher = stored_run(store, plan, "flow", "random", [1.0], correct=40)
    student = stored_run(
        store, plan, "mars", "random", [45.0], correct=30, teacher=ModelConfig("Flow", f"run:{teacher}/0")
    )
    assert all(h.learned for h in table_health(store, plan, [student], PROFILE.views))
    assert json.loads((store.run_dir(student) / "metrics.json").read_text())["history"][0]["loss"] == [45.0]
