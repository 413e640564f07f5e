"""Did a table's runs learn? Chance-level checks on every model behind a table, and its training curves.

A model did not learn when its final training loss is not below the loss of guessing (ln K for K single-label
classes; for multi-label data the mean binary entropy of the classes' validation prevalence), or when its
validation top-1 lies within the 95 % binomial noise of chance (100 / K). The logged loss is the method's whole
objective: for a student of a frozen teacher it is dominated by the distillation term (MARS weighs it 50×), so
there only the top-1 is checked. A verdict resting on such a model says
nothing about the method, so the report names these models beside the table and beside each verdict that uses them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from mml.evaluate import load_scores
from mml.plan import Plan
from mml.report.heatmap import DPI, save_figure
from mml.spec import ViewProtocol
from mml.store import Store

_Z95 = 1.959963984540054


@dataclass(frozen=True)
class ModelHealth:
    """One model of one stored run: its losses per epoch and whether it learned."""

    name: str  # e.g. "table07:A/0 (seed 0)"
    run_id: str
    model: int
    losses: tuple[float, ...]  # training loss per epoch (empty for a run loaded from weight files)
    chance_loss: float
    top1: float | None  # validation top-1 (single-label)
    chance_top1: float | None
    noise_top1: float | None  # 95 % binomial half-width of a chance-level top-1 on these videos
    problems: tuple[str, ...]

    @property
    def learned(self) -> bool:
        return not self.problems


def chance_loss(labels: np.ndarray, num_classes: int) -> float:
    """The training loss of guessing: ln K for class indices; mean binary entropy of each class's prevalence for
    multi-label 0/1 rows."""
    if labels.ndim == 1:
        return math.log(num_classes)
    prevalence = np.clip(labels.mean(axis=0), 1e-12, 1 - 1e-12)
    return float(np.mean(-(prevalence * np.log(prevalence) + (1 - prevalence) * np.log(1 - prevalence))))


def model_health(store: Store, plan: Plan, rid: str, model: int, views: ViewProtocol) -> ModelHealth:
    """The learning check of model `model` of stored run `rid` under the evaluation of `views`."""
    config = plan.runs[rid]
    history = json.loads((store.run_dir(rid) / "metrics.json").read_text()).get("history", [])
    losses = tuple(float(epoch["loss"][model]) for epoch in history if model < len(epoch["loss"]))
    _, labels, _ = load_scores(store.evaluation_dir(rid, views.key) / f"scores{model}.npz")
    guess = chance_loss(labels, config.num_classes)
    problems = []
    if losses and config.teacher is None and not losses[-1] < guess:
        problems.append(f"final training loss {losses[-1]:.3f} not below chance {guess:.3f}")
    top1 = chance = noise = None
    if labels.ndim == 1:
        evaluation = store.evaluation(rid, views.key)
        assert evaluation is not None  # its metrics.json is written with the scores read above (one rename)
        top1 = float(evaluation["models"][model]["top1"])
        p = 1 / config.num_classes
        chance, noise = 100 * p, 100 * _Z95 * math.sqrt(p * (1 - p) / len(labels))
        if top1 <= chance + noise:
            problems.append(f"top-1 {top1:.2f} within noise of chance {chance:.2f} ± {noise:.2f}")
    name = f"{plan.names[rid][0]}/{model} (seed {config.seed})"
    return ModelHealth(name, rid, model, losses, guess, top1, chance, noise, tuple(problems))


def upstream_closure(plan: Plan, run_ids: Iterable[str]) -> list[str]:
    """`run_ids` and every run they are initialised from or taught by, in plan order."""
    seen: set[str] = set()
    pending = list(run_ids)
    while pending:
        rid = pending.pop()
        if rid not in seen:
            seen.add(rid)
            pending += plan.runs[rid].upstream
    return [rid for rid in plan.order() if rid in seen]


def table_health(store: Store, plan: Plan, run_ids: Iterable[str], views: ViewProtocol) -> list[ModelHealth]:
    """The learning check of every model of `run_ids` and of the runs upstream of them."""
    return [
        model_health(store, plan, rid, model, views)
        for rid in upstream_closure(plan, run_ids)
        for model in range(len(plan.runs[rid].models))
    ]


def health_lines(health: list[ModelHealth]) -> list[str]:
    """Markdown lines naming each model that did not learn, or one line saying all did."""
    failed = [h for h in health if not h.learned]
    if not failed:
        return [f"All {len(health)} models behind this table learned (loss below chance, top-1 above chance noise)."]
    lines = [
        f"**{len(failed)} of {len(health)} models behind this table did not learn** — verdicts on them mean little:"
    ]
    lines += [f"  - `{h.name}` ({h.run_id}): {'; '.join(h.problems)}" for h in failed]
    return lines


def write_curves(health: list[ModelHealth], path: Path, title: str) -> Path | None:
    """A PNG of every model's training loss per epoch, with each run's chance level dashed; None without history."""
    curves = [h for h in health if h.losses]
    if not curves:
        return None
    fig = Figure(figsize=(8, 4.5), dpi=DPI, layout="constrained")
    ax = fig.subplots()
    for h in curves:
        epochs = range(1, len(h.losses) + 1)
        (line,) = ax.plot(epochs, h.losses, linewidth=1.2 if h.learned else 2.0, label=h.name)
        if not h.learned:
            line.set_linestyle(":")
    for level in sorted({round(h.chance_loss, 6) for h in curves}):
        ax.axhline(level, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(f"{title}\n(dashed: chance level; dotted curves: models that did not learn)", fontsize=9)
    ax.legend(fontsize=6, ncol=2 if len(curves) > 12 else 1, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    save_figure(fig, path, dpi=DPI, metadata={"Software": None})
    return path
