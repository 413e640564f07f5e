"""The reproduced values of a table's cells, read from the run store: single models, ensembles, ensemble matrices
and triple rankings, one value per seed of the profile."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mml.evaluate import topk_correct
from mml.plan import Plan
from mml.report.cost import inference_gflops, video_gflops
from mml.report.ensemble import Scores, ensemble_accuracy, ensemble_probabilities, pair_matrix, rank_triples
from mml.spec import INFORMATIVE_METRICS, SELECTION_METRICS, ModelRef, Profile, ResultCell, TableSpec, ViewProtocol
from mml.store import RunConfig, Store

METRIC_INDEX = {"top1": 0, "top5": 1}
TOPK = {"top1": 1, "top5": 5}  # the metrics that are means over videos of a per-video outcome


class StoredResults:
    """Per-seed results of one table under one profile."""

    def __init__(self, store: Store, plan: Plan, profile: Profile, table: TableSpec) -> None:
        self.store, self.plan, self.profile, self.table = store, plan, profile, table

    def run_ids(self, run: str) -> list[str]:
        """The store ids of spec run `run`, one per seed."""
        return self.plan.run_ids(self.table.id, run)

    def scores(self, ref: ModelRef, seed: int, views: ViewProtocol | None = None, name: str = "") -> Scores:
        """The stored per-video scores of model `ref` for the `seed`-th seed."""
        views = views or self.profile.views
        rid = self.run_ids(ref[0])[seed]
        path = self.store.evaluation_dir(rid, self.plan.evaluation_key(rid, views)) / f"scores{ref[1]}.npz"
        return Scores.load(name or f"{ref[0]}/{ref[1]}", path)

    def cell(self, cell: ResultCell) -> tuple[tuple[float, ...], ...]:
        """The cell's metrics (in the table's metric order) for each seed."""
        views = cell.views or self.profile.views
        values = []
        for seed in range(len(self.profile.seeds)):
            if len(cell.members) == 1:
                run, model = cell.members[0]
                rid = self.run_ids(run)[seed]
                evaluation = self.store.evaluation(rid, self.plan.evaluation_key(rid, views))
                assert evaluation is not None  # a report reads evaluated runs only
                stored = dict(evaluation["models"][model])
            else:
                top1, top5 = ensemble_accuracy([self.scores(ref, seed, views) for ref in cell.members])
                stored = {"top1": top1, "top5": top5}
            stored.update(self._costs_and_selection(cell, seed, views))
            values.append(tuple(stored[m] for m in self.table.metrics))
        return tuple(values)

    def _costs_and_selection(self, cell: ResultCell, seed: int, views: ViewProtocol) -> dict[str, float]:
        """The table's cost and selection metrics of a cell for one seed. An ensemble costs the sum of its members
        and runs a modality if any member does; a model's selection is the % of test segments its stored decisions
        (an AdaMML network's) run each modality on, else 100 for the modalities it takes and 0 for the others; the
        informative metrics are a single model's (`informative_gap`; NaN for an ensemble)."""
        metrics = self.table.metrics
        members = [(self.plan.runs[self.run_ids(run)[seed]], run, model) for run, model in cell.members]
        scores = {
            (run, model): self.scores((run, model), seed, views)
            for _, run, model in members
            if {"video_gflops", *SELECTION_METRICS, *INFORMATIVE_METRICS} & set(metrics)
        }
        decisions = {ref: found.decisions for ref, found in scores.items()}
        values: dict[str, float] = {}
        if "gflops" in metrics:
            values["gflops"] = sum(inference_gflops(config, model, views) for config, _, model in members)
        if "video_gflops" in metrics:
            values["video_gflops"] = sum(
                video_gflops(config, model, views, decisions[(run, model)]) for config, run, model in members
            )
        for metric, modality in SELECTION_METRICS.items():
            if metric in metrics:
                values[metric] = max(
                    selection_percent(config, model, decisions[(run, model)], modality)
                    for config, run, model in members
                )
        for metric, modality in INFORMATIVE_METRICS.items():
            if metric in metrics:
                (config, run, model), *others = members
                found = scores[(run, model)]
                values[metric] = math.nan if others else informative_gap(config, found, modality)
        return values

    def correct(self, members: tuple[ModelRef, ...], metric: str, views: ViewProtocol | None = None) -> np.ndarray:
        """Whether each validation video is classified correctly (top-k of `metric`) by one model or the ensemble of
        `members`, per seed: a bool array of shape (seeds, videos); 100 × a seed's mean is the cell's value."""
        rows = []
        for seed in range(len(self.profile.seeds)):
            members_scores = [self.scores(ref, seed, views) for ref in members]
            probabilities = ensemble_probabilities(members_scores)
            rows.append(topk_correct(probabilities, members_scores[0].labels, TOPK[metric]))
        return np.stack(rows)

    def matrices(self) -> list[pd.DataFrame]:
        """The two-model ensemble matrix of each seed (cells are (top1, top5) tuples)."""
        matrix = self.table.matrix
        assert matrix is not None  # called for a matrix table only (`build_report`)
        return [
            pair_matrix(
                [self.scores(ref, seed, name=label) for label, ref in matrix.rows],
                [self.scores(ref, seed, name=label) for label, ref in matrix.columns],
            )
            for seed in range(len(self.profile.seeds))
        ]

    def triple_sums(self) -> dict[str, list[float]]:
        """Each model's sum of positions in the triple ranking, per seed, keyed "group: label"."""
        triples = self.table.triples
        assert triples is not None  # called for a triples table only (`build_report`)
        groups = triples.groups
        sums: dict[str, list[float]] = {}
        for seed in range(len(self.profile.seeds)):
            frames = rank_triples([[self.scores(ref, seed, name=label) for label, ref in g] for _, g in groups])
            for (name, _), frame in zip(groups, frames, strict=True):
                for label, total in frame["sum of positions"].items():
                    sums.setdefault(f"{name}: {label}", []).append(float(total))
        return sums


def selection_percent(config: RunConfig, model: int, decisions: np.ndarray | None, modality: str) -> float:
    """% of test segments on which model `model` of a run runs `modality` (see `StoredResults._costs_and_selection`)."""
    modalities = [m.modality for m in config.models]
    if decisions is not None:
        return 100.0 * float(decisions[:, :, modalities.index(modality)].mean()) if modality in modalities else 0.0
    used = modalities if model >= len(modalities) else [modalities[model]]
    return 100.0 if modality in used else 0.0


def informative_gap(config: RunConfig, scores: Scores, modality: str) -> float:
    """Points by which an AdaMML network runs `modality` more often on test segments in informative regions than on
    the others (0: it does not tell them apart); NaN where it cannot be told: no stored decisions or informative
    flags (a network without a policy, data without informative regions), a modality the run does not have, or
    segments all of one kind."""
    modalities = [m.modality for m in config.models]
    if scores.decisions is None or scores.informative is None or modality not in modalities:
        return math.nan
    used, informative = scores.decisions[:, :, modalities.index(modality)], scores.informative.astype(bool)
    if informative.all() or not informative.any():
        return math.nan
    return 100.0 * (float(used[informative].mean()) - float(used[~informative].mean()))
