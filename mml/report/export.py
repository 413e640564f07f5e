"""Machine-readable files beside each table: `<table>.json` holds every cell's per-seed values, the per-video outcomes
behind each claim's interval, and every claim's per-seed differences, Δ, sd, variance components, interval, p-value,
Benjamini–Hochberg decision over the invocation's claims and verdict (for a claim against several rivals, each
pairwise comparison and the deciding one), with the code's git commit and every run
behind the table (upstream ones included), so that a reader can recompute each verdict without this package
(`tests/test_recompute.py` does, with numpy and scipy alone)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mml import atomic
from mml.report.claims import (
    ALPHA,
    EQUIVALENCE_CONFIDENCE,
    FALSE_DISCOVERY_RATE,
    ORDERING_CONFIDENCE,
    Adjusted,
    Verdict,
    adjust,
    label,
    lower_is_better,
    unit,
)
from mml.report.tables import Report
from mml.store import code_version

FORMAT = 1  # raised when the file's layout changes
RANKING_RULE = (
    "intersection-union: supported (equivalent) only if so against every rival in `pairs`, contradicted (different)"
    " if so against a rival whose p-value times the number of rivals (Bonferroni) is below 0.05, otherwise"
    " inconclusive, no verdict if any pair has none; the claim's numbers are those of `deciding`: if contradicted,"
    " that contradicting rival with the smallest p-value (the claim's p-value: its corrected one), else the rival"
    " with the largest p-value (none: largest) among those the claim is not supported against, or among all if"
    " supported against every one (the claim's p-value: that rival's)"
)


@dataclass(frozen=True)
class Provenance:
    """Where a table's numbers come from: the code's commit and every run behind it."""

    commit: str | None  # git commit of the checkout holding the package; None outside a git checkout
    dirty: bool | None  # uncommitted changes (untracked files included) in the package or the specs folder
    run_ids: tuple[str, ...]  # every run behind the table, upstream runs included, in plan order


@dataclass(frozen=True)
class CellRecord:
    """One cell of a table as the file records it."""

    members: tuple[tuple[str, int], ...]  # (spec run, model index)
    views: str  # the test views' key
    values: dict[str, tuple[float, ...]]  # metric -> value per seed
    correct: dict[str, np.ndarray]  # metric -> (seeds, videos) bool, for the top-k metrics claims compare


@dataclass(frozen=True)
class TableRecord:
    """What a table's file holds beyond its `Report`."""

    cells: dict[str, CellRecord]
    provenance: Provenance


def _number(value: float | None) -> float | None:
    """JSON has no NaN: a metric not measured is null."""
    return None if value is None or math.isnan(value) else value


def _test(verdict: Verdict) -> str:
    """What the claim's p-value tests (`mml.report.claims.p_value`)."""
    claim = verdict.claim
    if claim.kind != "equivalence":
        return f"two-sided t-test of H0: mean difference = {claim.margin:g}"
    if abs(verdict.mean) < claim.margin:
        return f"TOST, one-sided: H0 |mean difference| >= {claim.margin:g}"
    return f"one-sided t-test of H0: |mean difference| <= {claim.margin:g}"


def _claim(verdict: Verdict, adjusted: Adjusted, first: tuple[str, int] | None) -> dict[str, Any]:
    claim = verdict.claim
    return {
        "text": claim.text,
        "better": claim.better,
        "worse": claim.worse if isinstance(claim.worse, str) else list(claim.worse),
        "metric": claim.metric,
        "kind": claim.kind,
        "margin": claim.margin,
        "relative": claim.relative,
        "lower_is_better": lower_is_better(claim),
        "unit": unit(claim),
        "identity": verdict.identity,
        "duplicate_of": None if first is None else {"table": first[0], "claim": first[1]},
        # a claim against several rivals: every pairwise comparison, and the rival whose numbers follow
        "pairs": [{"worse": pair.claim.rival, **_judged(pair)} for pair in verdict.pairs] if verdict.pairs else None,
        "deciding": verdict.deciding or None,
        **_judged(verdict),
        "p_adjusted": adjusted.p_adjusted,
        "decided_after_bh": adjusted.p_adjusted is not None and adjusted.p_adjusted < FALSE_DISCOVERY_RATE,
        "verdict_after_bh": adjusted.label,
        "caveat": verdict.caveat,
    }


def _judged(verdict: Verdict) -> dict[str, Any]:
    """A verdict's numbers: per-seed differences, Δ, sd, interval, p-value and what it tests, and the verdict."""
    interval = verdict.interval
    return {
        "differences": [_number(d) for d in verdict.differences],
        "n": verdict.seeds,
        "mean": _number(verdict.mean),
        "sd": _number(verdict.std),
        "videos": verdict.videos,
        "interval": None
        if interval is None
        else {
            "low": interval.low,
            "high": interval.high,
            "confidence": interval.confidence,
            "method": interval.method,
            "se": interval.se,
            "df": interval.df,
        },
        "p_value": verdict.p_value,
        "test": _test(verdict) if verdict.p_value is not None else None,
        "verdict": label(verdict),
    }


def _cell(cell: CellRecord, run_ids: dict[str, tuple[str, ...]]) -> dict[str, Any]:
    return {
        "members": [{"run": run, "model": model, "run_ids": list(run_ids[run])} for run, model in cell.members],
        "views": cell.views,
        "values": {metric: [_number(v) for v in values] for metric, values in cell.values.items()},
        "correct": {
            metric: ["".join("1" if c else "0" for c in seed) for seed in outcomes]
            for metric, outcomes in cell.correct.items()
        },
    }


def table_json(
    report: Report, adjusted: Sequence[Adjusted], firsts: Sequence[tuple[str, int] | None], family: Sequence[str]
) -> dict[str, Any]:
    """The file's content for one table: `adjusted` and `firsts` (the first occurrence of a duplicate claim) are its
    claims' places in the family of claims of the tables `family` (the invocation's, in order)."""
    record = report.record
    assert record is not None  # built by `mml.report.build.build_report`
    provenance = record.provenance
    spec_runs = {rid for ids in report.run_ids.values() for rid in ids}
    return {
        "format": FORMAT,
        "table": report.spec.id,
        "title": report.spec.title,
        "profile": report.profile.name,
        "seeds": list(report.profile.seeds),
        "command": report.command,
        "code_version": code_version(),
        "commit": provenance.commit,
        "dirty": provenance.dirty,
        "runs": {name: list(ids) for name, ids in report.run_ids.items()},
        "run_ids": list(provenance.run_ids),
        "upstream_run_ids": [rid for rid in provenance.run_ids if rid not in spec_runs],
        "rules": {
            "ordering_confidence": ORDERING_CONFIDENCE,
            "equivalence_confidence": EQUIVALENCE_CONFIDENCE,
            "alpha": ALPHA,
            "false_discovery_rate": FALSE_DISCOVERY_RATE,
            "family": list(family),
            "several_rivals": RANKING_RULE,
        },
        "cells": {key: _cell(cell, report.run_ids) for key, cell in record.cells.items()},
        "claims": [
            _claim(verdict, adjustment, first)
            for verdict, adjustment, first in zip(report.verdicts, adjusted, firsts, strict=True)
        ],
    }


def write_records(reports: Sequence[Report], directory: Path) -> list[Path]:
    """Write `<table>.json` for every report of an invocation, the Benjamini–Hochberg family being all their claims
    (each claim written twice counted once); returns the paths."""
    places = [(report.spec.id, index) for report in reports for index in range(len(report.verdicts))]
    verdicts = [verdict for report in reports for verdict in report.verdicts]
    adjusted = adjust(verdicts)
    family = [report.spec.id for report in reports]
    paths, start = [], 0
    for report in reports:
        count = len(report.verdicts)
        mine = adjusted[start : start + count]
        firsts = [None if not a.duplicate(start + i) else places[a.first] for i, a in enumerate(mine)]
        path = directory / f"{report.spec.id}.json"
        atomic.write_text(path, _dumps(table_json(report, mine, firsts, family)))
        paths.append(path)
        start += count
    return paths


def _dumps(value: Any) -> str:
    return json.dumps(value, indent=1, allow_nan=False) + "\n"
