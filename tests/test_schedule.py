"""Independent runs of a DAG at the same time, one per device, each after the runs it depends on."""

import functools
import json
import logging
import time
from pathlib import Path

import pytest

from mml.errors import MMLError
from mml.schedule import run_on_devices

TOGETHER = ("a", "b")  # runs that can only finish if they run at the same time


def record(folder: Path, patience: float, rid: str, device: str) -> str:
    """A stand-in run: notes when it ran and where. The runs of TOGETHER wait (up to `patience` seconds) until each
    of them has started, so they finish only if the schedule runs them at once; run "bad" fails on bad input, run
    "crash" as a bug or an out-of-memory error does."""
    start = time.monotonic()
    (folder / f"{rid}.started").touch()
    if rid in TOGETHER:
        deadline = start + patience
        while not all((folder / f"{other}.started").exists() for other in TOGETHER):
            if time.monotonic() > deadline:
                raise MMLError(f"run {rid}: the runs {TOGETHER} did not run at the same time")
            time.sleep(0.05)
    if rid == "bad":
        raise MMLError(f"run {rid}: failed on purpose")
    if rid == "crash":
        raise RuntimeError("CUDA out of memory (a stand-in)")
    (folder / f"{rid}.json").write_text(json.dumps({"device": device, "start": start, "end": time.monotonic()}))
    return f"{rid} on {device}"


def test_runs_start_after_their_upstream_runs_one_per_device(tmp_path: Path) -> None:
    upstream = {"a": set(), "b": set(), "c": {"a"}, "d": {"a", "b"}, "e": {"outside"}}
    results = run_on_devices(list(upstream), upstream, ["cuda:0", "cuda:1"], functools.partial(record, tmp_path, 60.0))
    runs = {p.stem: json.loads(p.read_text()) for p in tmp_path.glob("*.json")}
    assert set(runs) == set(upstream)
    assert results == {rid: f"{rid} on {runs[rid]['device']}" for rid in upstream}
    for rid, ups in upstream.items():
        assert all(runs[rid]["start"] >= runs[up]["end"] for up in ups if up in runs)
    for device in ("cuda:0", "cuda:1"):
        spans = sorted((r["start"], r["end"]) for r in runs.values() if r["device"] == device)
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[1:]))  # one run per device at once


def test_a_failed_run_stops_the_schedule_with_its_error(tmp_path: Path) -> None:
    upstream = {"bad": set(), "after": {"bad"}}
    with pytest.raises(MMLError, match="run bad: failed on purpose"):
        run_on_devices(list(upstream), upstream, ["cpu"], functools.partial(record, tmp_path, 60.0))
    assert not (tmp_path / "after.json").exists()


def test_a_run_that_crashes_keeps_its_error_type_and_traceback(tmp_path: Path) -> None:
    """Only bad input (MMLError) is reported in one line; a bug or out-of-memory stays what it is, with the worker's
    traceback, so that it is not mistaken for bad input."""
    with pytest.raises(RuntimeError, match="CUDA out of memory") as error:
        run_on_devices(["crash"], {"crash": set()}, ["cuda:1"], functools.partial(record, tmp_path, 60.0))
    assert not isinstance(error.value, MMLError)
    assert "(run crash on cuda:1)" in error.value.__notes__
    assert 'raise RuntimeError("CUDA out of memory' in str(error.value.__cause__)  # the worker's traceback


def test_runs_that_wait_for_each_other_fail_on_one_device(tmp_path: Path) -> None:
    """The check of the first test can fail: on one device the TOGETHER runs cannot meet."""
    with pytest.raises(MMLError, match="did not run at the same time"):
        run_on_devices(["a", "b"], {"a": set(), "b": set()}, ["cpu"], functools.partial(record, tmp_path, 2.0))


def announce(rid: str, device: str) -> str:
    """A stand-in run that reports through `logging`, as the runner's runs do."""
    logging.getLogger("mml.runner").info("run %s trained on %s", rid, device)
    return rid


def test_workers_report_through_logging(capfd: pytest.CaptureFixture[str]) -> None:
    run_on_devices(["x"], {"x": set()}, ["cpu", "cpu"], announce)
    assert "run x trained on cpu" in capfd.readouterr().out


def test_a_worker_refuses_a_run_whose_id_it_computes_otherwise() -> None:
    """A spawned worker imports the code on disk: if it changed since the plan was made, the worker's ids differ
    from the plan's, and the run must not be stored under an id no table looks for."""
    from types import SimpleNamespace

    from mml.execution import Execution
    from mml.runner import Job, Jobs
    from mml.spec import Recipe
    from mml.store import ModelConfig, RunConfig

    recipe = Recipe(segments=2, short_side=32, input_size=28, batch_size=4, epochs=1, lr=0.01, lr_steps=(1,))
    config = RunConfig("ce", (ModelConfig("RGB", "random"),), "tsm_tiny", recipe, "d" * 64, 3, 0)
    planned = "0" * 16  # the id of another version of the code
    setup = SimpleNamespace(plan=SimpleNamespace(runs={planned: config}))
    jobs = {planned: Job(setup=setup, train=True, protocols=())}  # type: ignore[arg-type]
    message = rf"^run {planned}: this worker computes its id as {config.run_id}: mml's code changed"
    with pytest.raises(MMLError, match=message):
        Jobs(jobs, None, Execution(progress=False), False, [planned]).on_device(planned, "cpu")  # type: ignore[arg-type]
