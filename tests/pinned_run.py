"""The pinned runs: a few micro runs trained from scratch in seconds, whose ids and results are committed in
`tests/pinned/runs.json`. tests/test_pinned_run.py retrains them and compares, so that a change of training or
evaluation behaviour that keeps the run ids (no `mml.store.SEMANTICS` bump) fails.

Re-pin, from the checkout root, after bumping SEMANTICS or changing what the pinned runs are (their specs in
`tests/pinned/`, the synthetic generator, a recipe default): `python -m tests.pinned_run`. The pin file is only ever
written by this command, never edited by hand.
"""

from __future__ import annotations

import json
import logging
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from mml.data.datasets import open_dataset
from mml.evaluate import load_scores
from mml.execution import Execution
from mml.plan import plan_tables
from mml.runner import Setup, execute
from mml.spec import load_profile, load_table
from mml.store import CPU_THREADS, Store, pinned_cpu_threads

FOLDER = Path(__file__).parent / "pinned"
PIN_FILE = FOLDER / "runs.json"
REPIN_COMMAND = "python -m tests.pinned_run"


def measure(root: Path, threads: int = CPU_THREADS) -> dict[str, dict[str, Any]]:
    """Train and evaluate every pinned run (upstream runs included) from scratch in a new store under `root`, with
    `threads` CPU threads (mml's own count by default); per run (named by the spec runs it serves): its id, training-
    loss history and, per model, top-1 / top-5 and the per-video logits under the profile's views."""
    profile = load_profile(FOLDER / "profiles.toml", "pinned")
    table = load_table(FOLDER / "pinned.toml")
    store = Store(root / "store")
    with pinned_cpu_threads(threads):
        dataset = open_dataset(profile.dataset, None, root / "data", progress=False)
        plan = plan_tables([table], profile, dataset)
        execute([Setup(profile, (table,), dataset, plan)], store, Execution(progress=False))
    measured = {}
    for rid in plan.order():
        evaluation = store.evaluation(rid, plan.evaluation_key(rid, profile.views))
        folder = store.evaluation_dir(rid, plan.evaluation_key(rid, profile.views))
        history = json.loads((store.run_dir(rid) / "metrics.json").read_text())["history"]
        measured[", ".join(plan.names[rid])] = {
            "id": rid,
            "loss": [epoch["loss"] for epoch in history],
            "top1": [model["top1"] for model in evaluation["models"]],
            "top5": [model["top5"] for model in evaluation["models"]],
            "logits": [load_scores(folder / f"scores{i}.npz")[2].tolist() for i in range(len(evaluation["models"]))],
        }
    return measured


# Allowed differences of losses and logits between machines (tests/test_pinned_run.py says how they were chosen).
RTOL, ATOL = 1e-5, 1e-6
# The stand-in for another machine's rounding when re-pinning: the same runs with another thread count.
OTHER_THREADS = 2


def changed_ids(pinned: dict[str, dict[str, Any]], measured: dict[str, dict[str, Any]]) -> list[str]:
    """One line per pinned run whose id (or presence) differs between the pin and this code."""
    names = sorted(set(pinned) | set(measured))
    return [
        f"{name}: pinned {pinned.get(name, {}).get('id', 'no run')}, now {measured.get(name, {}).get('id', 'no run')}"
        for name in names
        if pinned.get(name, {}).get("id") != measured.get(name, {}).get("id")
    ]


def changed_results(pinned: dict[str, dict[str, Any]], measured: dict[str, dict[str, Any]]) -> list[str]:
    """One line per result of a run (of the same id in both) that differs: losses and logits beyond the tolerance,
    top-1 / top-5 at all."""
    lines = []
    for name, pin in pinned.items():
        now = measured[name]
        for key in ("loss", "logits"):
            expected, actual = np.asarray(pin[key]), np.asarray(now[key])
            if expected.shape != actual.shape or not np.allclose(actual, expected, rtol=RTOL, atol=ATOL):
                difference = np.abs(actual - expected).max() if expected.shape == actual.shape else "shape"
                lines.append(f"{name} ({pin['id']}): {key} differs (largest difference {difference})")
        for key in ("top1", "top5"):
            if pin[key] != now[key]:
                lines.append(f"{name} ({pin['id']}): {key} pinned {pin[key]}, now {now[key]}")
    return lines


def main() -> int:
    """Measure the pinned runs with this checkout's code and write them into the pin file, after checking that the
    tolerance covers rounding differences: the runs trained with `OTHER_THREADS` threads must agree with them
    (otherwise the pinned recipe amplifies rounding too much to tell it from a change of semantics)."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    with tempfile.TemporaryDirectory() as root:
        measured = measure(Path(root) / "pin")
        rounded = measure(Path(root) / "other", OTHER_THREADS)
    beyond = changed_results(measured, rounded)
    if beyond:
        logging.error(
            "%s: not re-pinned, with %d threads the runs differ beyond the tolerance:", PIN_FILE, OTHER_THREADS
        )
        for line in beyond:
            logging.error("  %s", line)
        return 1
    PIN_FILE.write_text(json.dumps(measured, indent=1, sort_keys=True) + "\n")
    logging.info("pinned %d runs in %s", len(measured), PIN_FILE)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
