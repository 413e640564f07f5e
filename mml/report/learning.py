"""Did a table's runs learn? A chance-level check of every model behind a table, and its training curves.

Every evaluated model of a run is checked: its models, and the heads beyond them (a late-fusion or G-Blend run's
fused head, an AdaMML network: model index M). Each against the right baseline:

- its validation top-1 against chance (100 / K): a one-sided exact binomial test on the validation videos; a top-1
  not above chance at the 5 % level means the model did not learn;
- its training cross-entropy term alone, as the trainer records it (the history's `ce`; multi-label: BCE), not the
  whole objective (no mutual KL, second view, distillation or efficiency term), against the loss of guessing: ln K,
  or for multi-label data the mean binary entropy of the classes' validation prevalence. On multi-label data this is
  the check; with a top-1 it is not a flag on its own, since a classifier can be well above chance in accuracy and
  still lose more than a guess in log-loss (overconfident where wrong): such a model is named as a note.

A model's own head that its run never trains (naive late fusion trains its fused head alone,
`Method.trains_model_heads`) is labelled as such and not flagged. A run stored before the trainer recorded the
cross-entropy term is judged on its top-1 alone, and the report says so. A verdict resting on a model that did not
learn says nothing about the method, so the report names these models beside the table and each verdict using them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from scipy import stats

from mml.evaluate import load_scores
from mml.methods import METHODS
from mml.plan import Plan
from mml.report.heatmap import DPI, save_figure
from mml.spec import ViewProtocol
from mml.store import Store

ALPHA = 0.05  # the level of the binomial test of top-1 against chance
PANEL_SIZE = (2.6, 1.9)  # inches per panel of the curves
PANEL_COLUMNS = 4


@dataclass(frozen=True)
class ModelHealth:
    """One evaluated model (or head) of one stored run: its training curve and whether it learned."""

    name: str  # e.g. "table07:A/0 (seed 0)"
    role: str  # the model across seeds, e.g. "table07:A/0": one panel of the curves
    run_id: str
    model: int
    curve: tuple[float, ...]  # training CE term per epoch; the whole loss where no CE term was recorded
    cross_entropy: bool  # whether `curve` is the CE term (False: the run recorded none, or loaded from files)
    chance_loss: float  # the loss of guessing
    top1: float | None  # validation top-1 (single-label)
    chance_top1: float | None
    p_value: float | None  # one-sided binomial test of top-1 > chance on the validation videos
    problems: tuple[str, ...]  # why it did not learn
    trained: bool = True  # False: a head its run never trains (labelled, not checked)

    @property
    def learned(self) -> bool:
        """Not flagged: checked and above chance, or a head its run never trains (labelled instead)."""
        return not self.problems

    @property
    def loss_note(self) -> bool:
        """A top-1 above chance with a final training CE term not below the loss of guessing (noted, not flagged)."""
        above = self.cross_entropy and bool(self.curve) and not self.curve[-1] < self.chance_loss
        return self.trained and self.learned and above


def chance_loss(labels: np.ndarray, num_classes: int) -> float:
    """The training loss of guessing: ln K for class indices; mean binary entropy of each class's prevalence for
    multi-label 0/1 rows."""
    if labels.ndim == 1:
        return math.log(num_classes)
    prevalence = np.clip(labels.mean(axis=0), 1e-12, 1 - 1e-12)
    return float(np.mean(-(prevalence * np.log(prevalence) + (1 - prevalence) * np.log(1 - prevalence))))


def above_chance(top1: float, videos: int, num_classes: int) -> float:
    """The p-value of a one-sided exact binomial test that a top-1 (%) on `videos` videos is above chance, 1 / K."""
    correct = round(top1 * videos / 100)
    return float(stats.binomtest(correct, videos, 1 / num_classes, alternative="greater").pvalue)


def model_health(store: Store, plan: Plan, rid: str, model: int, views: ViewProtocol) -> ModelHealth:
    """The learning check of evaluated model `model` of stored run `rid` (a head beyond its models from index M on)
    under the evaluation of `views`."""
    config = plan.runs[rid]
    history = json.loads((store.run_dir(rid) / "metrics.json").read_text()).get("history", [])
    cross_entropy = [float(epoch["ce"][model]) for epoch in history if model < len(epoch.get("ce", []))]
    recorded = len(cross_entropy) == len(history) > 0
    curve = cross_entropy if recorded else [float(e["loss"][model]) for e in history if model < len(e["loss"])]
    key = plan.evaluation_key(rid, views)
    _, labels, _ = load_scores(store.evaluation_dir(rid, key) / f"scores{model}.npz")
    guess = chance_loss(labels, config.num_classes)
    trained = model >= len(config.models) or METHODS[config.method].trains_model_heads
    problems = []
    top1 = chance = p_value = None
    if labels.ndim == 1:
        evaluation = store.evaluation(rid, key)
        assert evaluation is not None  # its metrics.json is written with the scores read above (one rename)
        top1, chance = float(evaluation["models"][model]["top1"]), 100 / config.num_classes
        p_value = above_chance(top1, len(labels), config.num_classes)
        if trained and p_value >= ALPHA:
            problems.append(f"top-1 {top1:.2f} not above chance {chance:.2f} (one-sided binomial p = {p_value:.3f})")
    if trained and recorded and not curve[-1] < guess and (problems or labels.ndim > 1):
        problems.append(
            f"final training {'BCE' if labels.ndim > 1 else 'CE'} term {curve[-1]:.3f} not below chance {guess:.3f}"
        )
    name = f"{plan.names[rid][0]}/{model}"
    return ModelHealth(
        f"{name} (seed {config.seed})",
        name,
        rid,
        model,
        tuple(curve),
        recorded,
        guess,
        top1,
        chance,
        p_value,
        tuple(problems),
        trained,
    )


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


def evaluated_models(plan: Plan, rid: str) -> range:
    """The model indices a run is evaluated on: its models, then its method's heads beyond them."""
    config = plan.runs[rid]
    return range(len(config.models) + METHODS[config.method].extra_heads)


def table_health(store: Store, plan: Plan, run_ids: Iterable[str], views: ViewProtocol) -> list[ModelHealth]:
    """The learning check of every evaluated model of `run_ids` and of the runs upstream of them."""
    return [
        model_health(store, plan, rid, model, views)
        for rid in upstream_closure(plan, run_ids)
        for model in evaluated_models(plan, rid)
    ]


def _names(health: Iterable[ModelHealth]) -> str:
    return ", ".join(f"`{h.name}`" for h in health)


def health_lines(health: Sequence[ModelHealth]) -> list[str]:
    """Markdown lines naming each model that did not learn (or one line saying all checked ones did), then the heads
    never trained, the runs without a recorded CE term, and the models noted for a CE term above chance."""
    failed = [h for h in health if not h.learned]
    checked = [h for h in health if h.trained]
    if failed:
        lines = [
            f"**{len(failed)} of {len(checked)} checked models behind this table did not learn** — verdicts on them"
            " mean little:"
        ]
        lines += [f"  - `{h.name}` ({h.run_id}): {'; '.join(h.problems)}" for h in failed]
    else:
        lines = [
            f"All {len(checked)} checked models behind this table learned (top-1 above chance by a one-sided binomial"
            " test at 5 %; multi-label: training BCE term below the loss of guessing)."
        ]
    untrained = [h for h in health if not h.trained]
    if untrained:
        lines.append(f"Not checked, heads their run never trains (it trains the fused head only): {_names(untrained)}.")
    unrecorded = [h for h in checked if not h.cross_entropy]
    if unrecorded:
        lines.append(
            f"{len(unrecorded)} models have no recorded cross-entropy term (runs stored before it was recorded, or"
            " loaded from files): judged on top-1 alone (multi-label: not checked); their curves show the whole loss."
        )
    noted = [h for h in health if h.loss_note]
    if noted:
        lines.append(
            f"Above chance in top-1, but a final training CE term not below ln K (overconfident where wrong, or a"
            f" diverging last epoch; not flagged): {_names(noted)}."
        )
    return lines


def curve_panels(health: Sequence[ModelHealth]) -> dict[str, list[ModelHealth]]:
    """The models with a training curve grouped by role (one panel each), in the order of `health`."""
    panels: dict[str, list[ModelHealth]] = {}
    for h in health:
        if h.curve:
            panels.setdefault(h.role, []).append(h)
    return panels


def write_curves(health: Sequence[ModelHealth], path: Path, title: str) -> Path | None:
    """A PNG of small multiples: one panel per model role with the training curve of each of its seeds in one
    colour (dotted: seeds that did not learn), the loss of guessing dashed; None without any history."""
    panels = curve_panels(health)
    if not panels:
        return None
    columns = min(PANEL_COLUMNS, len(panels))
    rows = math.ceil(len(panels) / columns)
    size = (PANEL_SIZE[0] * columns, PANEL_SIZE[1] * rows + 0.6)
    fig = Figure(figsize=size, dpi=DPI, layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, (role, seeds) in zip(axes.flat, panels.items(), strict=False):
        for h in seeds:
            epochs = range(1, len(h.curve) + 1)
            ax.plot(epochs, h.curve, color="tab:blue", linewidth=1.0, linestyle="-" if h.learned else ":")
        ax.axhline(seeds[0].chance_loss, color="grey", linestyle="--", linewidth=0.8)
        what = "CE term" if all(h.cross_entropy for h in seeds) else "whole loss"
        suffix = "" if seeds[0].trained else ", never trained"
        ax.set_title(f"{role} ({len(seeds)} seeds{suffix})", fontsize=7)
        ax.set_ylabel(what, fontsize=6)
        ax.tick_params(labelsize=6)
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in axes.flat[len(panels) :]:
        ax.set_axis_off()
    fig.suptitle(
        f"{title}\n(per model role, each seed a line; dashed: the loss of guessing; dotted: did not learn)", fontsize=9
    )
    fig.supxlabel("epoch", fontsize=8)
    save_figure(fig, path, dpi=DPI, metadata={"Software": None})
    return path
