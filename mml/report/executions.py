"""How the runs behind a table were executed — device, world size, precision, memory format, compilation, CPU numerics
(`mml.numerics`), or loaded from weight files — read from each run's record in the store
(`mml.checkpoint.write_finished`, `import_run`), so that a table's footnote shows when its runs were trained in
different ways, and which CPU model native numbers belong to."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable

from mml.store import Store

LOADED = "loaded from weight files"
UNRECORDED = "with no recorded execution"  # trained before `run.json` recorded its world size and speed settings


def run_execution(store: Store, rid: str) -> str:
    """How stored run `rid` was produced, in words: e.g. "on cuda, world size 4, bf16, channels_last, compiled" (a CPU
    run adds its `cpu_numerics`), `LOADED` or `UNRECORDED`; a run recorded before its device was says "on an
    unrecorded device"."""
    folder = store.run_dir(rid)
    if "loaded_from" in json.loads((folder / "metrics.json").read_text()):
        return LOADED
    record = json.loads((folder / "run.json").read_text())
    speed = record.get("execution")
    if speed is None or "world_size" not in record:
        return UNRECORDED
    parts = [
        f"on {record.get('device', 'an unrecorded device')}",
        f"world size {record['world_size']}",
        speed["precision"],
        *(["channels_last"] if speed["channels_last"] else []),
        "compiled" if speed["compile"] else "eager",
        *([cpu_numerics(record.get("cpu_numerics"))] if record.get("device") == "cpu" else []),
    ]
    return ", ".join(parts)


def cpu_numerics(recorded: dict | None) -> str:
    """A CPU run's numerics in words: "CPU numerics portable-avx2", "CPU numerics native to <CPU model> (<ATen
    kernels>)" (numbers of that CPU model only), or "CPU numerics unrecorded" (trained before runs recorded them)."""
    if recorded is None:
        return "CPU numerics unrecorded"
    if recorded["setting"] == "native":
        return f"CPU numerics native to {recorded['cpu']} ({recorded['aten_capability']})"
    return f"CPU numerics {recorded['setting']}"


def execution_counts(store: Store, run_ids: Iterable[str]) -> tuple[tuple[str, int], ...]:
    """The distinct executions of the stored runs `run_ids` (each counted once) with their run counts, the most
    frequent first and ties by name, so that the same runs always give the same order."""
    counts = Counter(run_execution(store, rid) for rid in dict.fromkeys(run_ids))
    return tuple(sorted(counts.items(), key=lambda item: (-item[1], item[0])))


def executions_line(counts: tuple[tuple[str, int], ...]) -> str:
    """The footnote line of `execution_counts`: "Executions: 11 runs on cpu, world size 1, fp32, eager, CPU numerics
    portable-avx2.", or
    "Executions (mixed): …; …." when the runs were executed in more than one way."""
    parts = "; ".join(f"{count} run{'s' if count > 1 else ''} {execution}" for execution, count in counts)
    return f"Executions{' (mixed)' if len(counts) > 1 else ''}: {parts}."
