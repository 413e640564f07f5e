"""Independent runs of a DAG at the same time, one per device, each after the runs it depends on."""

import functools
import json
import time
from pathlib import Path

import pytest

from mml.errors import MMLError
from mml.schedule import run_on_devices


def record(folder: Path, rid: str, device: str) -> None:
    """A stand-in run: notes when it ran and where, taking a moment; run "bad" fails."""
    start = time.monotonic()
    time.sleep(0.3)
    if rid == "bad":
        raise MMLError(f"run {rid}: failed on purpose")
    (folder / f"{rid}.json").write_text(json.dumps({"device": device, "start": start, "end": time.monotonic()}))


def test_runs_start_after_their_upstream_runs_one_per_device(tmp_path: Path) -> None:
    upstream = {"a": set(), "b": set(), "c": {"a"}, "d": {"a", "b"}, "e": {"outside"}}
    run_on_devices(list(upstream), upstream, ["cuda:0", "cuda:1"], functools.partial(record, tmp_path))
    runs = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(runs) == set(upstream)
    for rid, ups in upstream.items():
        assert all(runs[rid]["start"] >= runs[up]["end"] for up in ups if up in runs)
    for device in ("cuda:0", "cuda:1"):
        spans = sorted((r["start"], r["end"]) for r in runs.values() if r["device"] == device)
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:]))  # one run per device at once
    assert runs["a"]["start"] < runs["b"]["end"] and runs["b"]["start"] < runs["a"]["end"]  # a and b overlapped


def test_a_failed_run_stops_the_schedule_with_its_error(tmp_path: Path) -> None:
    upstream = {"bad": set(), "after": {"bad"}}
    with pytest.raises(MMLError, match="run bad: failed on purpose"):
        run_on_devices(list(upstream), upstream, ["cpu"], functools.partial(record, tmp_path))
    assert not (tmp_path / "after.json").exists()
