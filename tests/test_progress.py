"""Per-epoch progress of a run: the log line, train.log, progress.json and TensorBoard event files."""

import functools
import json
import logging
import sys
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from test_reproduce import reproduce

from mml.progress import LOG_FILE, PROGRESS_FILE, TENSORBOARD_DIR, EpochReporter, duration
from mml.schedule import run_on_devices

RID = "0123456789abcdef"


def scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """Every scalar tag of the event files in `folder` as (step, value) pairs, as TensorBoard shows them."""
    events = EventAccumulator(str(folder))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_each_epoch_logs_one_line_with_loss_lr_speed_and_eta(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "mml.progress")
    with EpochReporter(tmp_path, RID, epochs=4, resumed_from=0) as reporter:
        reporter.report(1, [1.5, 0.25], 0.01, clips=40, seconds=10.0)
        reporter.report(2, [1.25, 0.125], 0.001, clips=40, seconds=20.0)  # mean 15 s an epoch, 2 epochs left
    assert caplog.messages == [
        f"{RID} epoch 1/4: loss 1.5000 0.2500, lr 0.01, 4.0 clips/s, ETA 0:00:30",
        f"{RID} epoch 2/4: loss 1.2500 0.1250, lr 0.001, 2.0 clips/s, ETA 0:00:30",
    ]
    assert (tmp_path / LOG_FILE).read_text().splitlines() == caplog.messages


def test_progress_json_holds_the_latest_epoch(tmp_path: Path) -> None:
    times = iter([1000.0, 1100.0, 1250.0])
    with EpochReporter(tmp_path, RID, epochs=3, resumed_from=0, clock=lambda: next(times)) as reporter:
        reporter.report(1, [2.0], 0.1, clips=12, seconds=4.0)
        reporter.report(2, [1.0], 0.1, clips=12, seconds=8.0)
    progress = json.loads((tmp_path / PROGRESS_FILE).read_text())
    expected = {"epoch": 2, "epochs": 3, "loss": [1.0], "lr": 0.1, "clips_per_s": 1.5, "eta_s": 6.0}
    assert progress == {**expected, "updated": 1250.0, "started": 1000.0}


def test_a_resumed_run_continues_the_log_and_counts_its_eta_from_the_resume(tmp_path: Path) -> None:
    with EpochReporter(tmp_path, RID, epochs=4, resumed_from=0) as first:
        first.report(1, [3.0], 0.1, clips=8, seconds=100.0)
        first.report(2, [2.0], 0.1, clips=8, seconds=100.0)
    with EpochReporter(tmp_path, RID, epochs=4, resumed_from=2) as resumed:
        resumed.report(3, [1.0], 0.01, clips=8, seconds=5.0)  # faster now: the ETA uses this attempt's epochs only
    lines = (tmp_path / LOG_FILE).read_text().splitlines()
    assert [line.split(":")[0] for line in lines] == [f"{RID} epoch {e}/4" for e in (1, 2, 3)]
    assert lines[-1].endswith("ETA 0:00:05")
    assert json.loads((tmp_path / PROGRESS_FILE).read_text())["eta_s"] == 5.0


def test_event_files_hold_every_scalar_by_epoch_and_a_resume_replaces_the_steps_after_its_checkpoint(
    tmp_path: Path,
) -> None:
    with EpochReporter(tmp_path, RID, epochs=4, resumed_from=0) as first:
        for epoch in (1, 2, 3):  # epoch 3's events written, its checkpoint lost: the run resumes after epoch 2
            first.report(epoch, [10.0 * epoch, float(epoch)], 0.1, clips=8, seconds=2.0)
    for events in (tmp_path / TENSORBOARD_DIR).iterdir():  # TensorBoard reads event files in name order, which
        name = events.name.split(".")  # starts with the second they were opened: make it an earlier attempt's
        events.rename(events.with_name(".".join([*name[:3], "0000000001", *name[4:]])))
    with EpochReporter(tmp_path, RID, epochs=4, resumed_from=2) as resumed:
        for epoch in (3, 4):
            resumed.report(epoch, [-10.0 * epoch, -float(epoch)], 0.01, clips=8, seconds=4.0)
    curves = scalars(tmp_path / TENSORBOARD_DIR)
    assert curves == {
        "loss/0": [(1, 10.0), (2, 20.0), (3, -30.0), (4, -40.0)],
        "loss/1": [(1, 1.0), (2, 2.0), (3, -3.0), (4, -4.0)],
        "lr": [(1, pytest.approx(0.1)), (2, pytest.approx(0.1)), (3, pytest.approx(0.01)), (4, pytest.approx(0.01))],
        "clips_per_s": [(1, 4.0), (2, 4.0), (3, 2.0), (4, 2.0)],
    }


def test_without_tensorboard_it_says_so_once_and_writes_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # the import fails as without the package
    caplog.set_level(logging.INFO, "mml.progress")
    with EpochReporter(tmp_path, RID, epochs=2, resumed_from=0) as reporter:
        reporter.report(1, [1.0], 0.1, clips=8, seconds=1.0)
        reporter.report(2, [0.5], 0.1, clips=8, seconds=1.0)
    notes = [message for message in caplog.messages if "pip install mml[tensorboard]" in message]
    assert len(notes) == 1 and len(caplog.messages) == 3
    assert not (tmp_path / TENSORBOARD_DIR).exists()
    assert len((tmp_path / LOG_FILE).read_text().splitlines()) == 2
    assert json.loads((tmp_path / PROGRESS_FILE).read_text())["epoch"] == 2


def test_a_reporter_that_never_reports_writes_nothing(tmp_path: Path) -> None:
    with EpochReporter(tmp_path / "partial", RID, epochs=2, resumed_from=0):
        pass
    assert not (tmp_path / "partial").exists()


@pytest.mark.parametrize(("epoch", "seconds"), [(2, 1.0), (5, 1.0), (3, 0.0)])
def test_an_epoch_outside_the_attempt_or_without_time_is_refused(tmp_path: Path, epoch: int, seconds: float) -> None:
    with EpochReporter(tmp_path, RID, epochs=4, resumed_from=2) as reporter, pytest.raises(ValueError):
        reporter.report(epoch, [1.0], 0.1, clips=8, seconds=seconds)


def test_durations_read_as_hours_minutes_seconds() -> None:
    assert [duration(s) for s in (0, 59.6, 3725, 90061)] == ["0:00:00", "0:01:00", "1:02:05", "25:01:01"]


def report_one_epoch(folder: Path, rid: str, device: str) -> None:
    """A `--devices` worker's job that reports one epoch of run `rid` (module level: it is pickled to the worker)."""
    with EpochReporter(folder / rid, rid, epochs=1, resumed_from=0) as reporter:
        reporter.report(1, [0.5], 0.1, clips=8, seconds=2.0)


@pytest.mark.slow
def test_the_lines_of_runs_in_device_workers_reach_the_console(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    rids = ["a" * 16, "b" * 16]
    run_on_devices(rids, {rid: set() for rid in rids}, ["cpu", "cpu"], functools.partial(report_one_epoch, tmp_path))
    out = capfd.readouterr().out.splitlines()  # the spawned workers write to this process's stdout
    assert sorted(line for line in out if " epoch " in line) == [
        f"{rid} epoch 1/1: loss 0.5000, lr 0.1, 4.0 clips/s, ETA 0:00:00" for rid in rids
    ]


@pytest.mark.slow
def test_every_trained_run_of_table7_reports_each_epoch(
    table7_specs: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    assert reproduce(table7_specs, tmp_path) == 0
    out = capsys.readouterr().out
    folders = sorted((tmp_path / "store" / "runs").glob("*/DONE"))
    assert folders
    for done in folders:
        folder, rid = done.parent, done.parent.name
        epochs = len(json.loads((folder / "metrics.json").read_text())["history"])
        lines = (folder / LOG_FILE).read_text().splitlines()
        assert [line.split(":")[0] for line in lines] == [f"{rid} epoch {e}/{epochs}" for e in range(1, epochs + 1)]
        assert all(line in out.splitlines() for line in lines)
        progress = json.loads((folder / PROGRESS_FILE).read_text())
        assert (progress["epoch"], progress["epochs"], progress["eta_s"]) == (epochs, epochs, 0)
        assert progress["started"] <= progress["updated"] and progress["clips_per_s"] > 0
        assert [step for step, _ in scalars(folder / TENSORBOARD_DIR)["loss/0"]] == list(range(1, epochs + 1))
    assert not list((tmp_path / "store" / ".partial").glob("*/" + LOG_FILE))
