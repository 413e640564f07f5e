"""Every fault and bad input we tried on the runner, and what happened; docs/guarantees.md rests on these tests.

`FAULTS` lists each one with its outcome, the test that shows it (a test below, or elsewhere in tests/) and a text
of that test's check; `test_every_listed_fault_has_its_test` keeps the list honest. The faults tried here: SIGKILL
of the runner at random points (several times, then a rerun), two runners on one store at once, a non-finite loss.
"""

import ast
import json
import os
import random
import re
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from runner_cli import TESTS, environment, reproduce_command
from safetensors import safe_open

import mml.methods.mutual
import mml.networks
from mml.data.cache import prepare
from mml.data.datasets import open_dataset
from mml.errors import MMLError
from mml.execution import Execution
from mml.plan import plan_tables
from mml.runner import init_loader
from mml.spec import load_profile, load_table
from mml.store import Store
from mml.train import train_run

FAULTS = [
    # (fault or bad input, what happens, the test that shows it, a text of that test's check)
    (
        "spec: unknown key, wrong type, bad value",
        "one line `file: key: reason`, exit 2",
        "test_spec.py::test_invalid_spec_names_file_key_and_reason",
        'startswith(f"{path}: ")',
    ),
    (
        "spec: init from an undefined run",
        "one line naming file and key, exit 2",
        "test_reproduce.py::test_bad_spec_is_a_one_line_error",
        "is not defined",
    ),
    (
        "spec: initialisation cycle",
        "one line naming the cycle",
        "test_spec.py::test_initialisation_cycle_is_refused",
        "initialisation cycle",
    ),
    (
        "profile override not key=value, or of an unknown key",
        "one line naming the override",
        "test_faults.py::test_malformed_profile_overrides",
        "is not key=value",
    ),
    (
        "video missing, truncated or undecodable",
        "skipped with its reason, the rest prepares",
        "test_prepare.py::test_bad_videos_are_skipped_with_their_reason_and_the_rest_prepares",
        "file not found",
    ),
    (
        "video with no frame",
        "skipped: no decodable video frames",
        "test_prepare.py::test_zero_frame_video_is_skipped",
        "no decodable video frames",
    ),
    (
        "video shorter than a sample needs",
        "kept, last frame repeated, reported once",
        "test_prepare.py::test_bad_videos_are_skipped_with_their_reason_and_the_rest_prepares",
        "frame is repeated",
    ),
    (
        "annotation: template not in the labels file, entry without template",
        "warning naming file and entry, entry skipped",
        "test_prepare.py::test_bad_annotations_are_warned_with_file_and_reason",
        "is not in the labels file",
    ),
    (
        "annotation: Charades action class not in the classes file, malformed CSV row",
        "warning naming file and video, video skipped",
        "test_prepare.py::test_charades_bad_rows_and_missing_frames",
        "is not in {CLASSES_FILE}",
    ),
    (
        "frame folder without frames",
        "skipped with its reason",
        "test_prepare.py::test_charades_bad_rows_and_missing_frames",
        "no frame images",
    ),
    (
        "prepare killed (SIGKILL) midway",
        "the rerun continues; the cache equals an uninterrupted one",
        "test_prepare.py::test_prepare_killed_midway_resumes_to_the_uninterrupted_result",
        "SIGKILL",
    ),
    (
        "prepare interrupted while writing a video",
        "the half-written video never counts as done",
        "test_prepare.py::test_a_half_written_video_never_counts_as_done",
        "KeyboardInterrupt",
    ),
    (
        "checkpoint: a pickle that would run code",
        "refused (weights_only), nothing runs",
        "test_convert.py::test_a_malicious_pickle_is_refused_and_not_run",
        "refused",
    ),
    (
        "checkpoint: wrong shapes, unknown or missing keys",
        "one line listing tensors and shapes",
        "test_checkpoint_runs.py::test_a_checkpoint_of_the_wrong_shape_is_refused_in_one_line",
        "does not fit",
    ),
    (
        "checkpoint file missing",
        "one line naming the file",
        "test_checkpoint_runs.py::test_missing_checkpoint_file",
        "weight file not found",
    ),
    (
        "runner killed (SIGKILL) at random points, three times",
        "the rerun finishes; the table equals an uninterrupted run's",
        "test_faults.py::test_runner_killed_at_random_points_ends_with_the_uninterrupted_table",
        "SIGKILL",
    ),
    (
        "two runners on one store at once",
        "each run trained once, both finish, same table",
        "test_faults.py::test_two_runners_on_one_store_train_each_run_once",
        "every run once",
    ),
    (
        "non-finite loss",
        "the run stops naming run, epoch and step; the last good checkpoint is kept and resumed",
        "test_faults.py::test_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint",
        "non-finite loss",
    ),
    (
        "training interrupted between epochs",
        "resumes to the uninterrupted result",
        "test_reproduce.py::test_resume_after_interruption_equals_uninterrupted_run",
        "interrupted",
    ),
    (
        "related-method spec: a bad setting, one modality twice, a missing teacher, the charades setup",
        "one line `file: key: reason`",
        "test_spec.py::test_invalid_related_method_specs",
        'startswith(f"{path}: ")',
    ),
    (
        "G-Blend run interrupted between super-epochs",
        "resumes with the weights it estimated; the result equals the uninterrupted run's",
        "test_related.py::test_gblend_resume_keeps_weights_and_super_epoch",
        "estimated_at",
    ),
    (
        "a single-process method (two views, late fusion) under torchrun",
        "one line: run it without torchrun",
        "test_related.py::test_single_process_methods_refuse_torchrun",
        "run it without torchrun",
    ),
    (
        "unknown table name",
        "one line listing the table ids and the related tables",
        "test_spec.py::test_related_table_names",
        "a table id looks like",
    ),
]


def test_every_listed_fault_has_its_test() -> None:
    """Each listed test exists and checks its fault: its source holds the text its entry names (the message or
    signal it asserts on), so an entry cannot point at a test of something else."""
    for fault, _, reference, checked in FAULTS:
        file, test = reference.split("::")
        source = (TESTS / file).read_text()
        functions = {
            node.name: ast.get_source_segment(source, node)
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.FunctionDef)
        }
        assert test in functions, f"{reference} is listed in FAULTS but does not exist"
        assert checked in functions[test], f"{reference} does not check {fault!r} ({checked!r} not in it)"


@pytest.mark.slow
def test_runner_killed_at_random_points_ends_with_the_uninterrupted_table(
    table7_specs: Path, uninterrupted: str, tmp_path: Path
) -> None:
    delays = random.Random(7)
    kills = 0
    for _ in range(3):
        runner = subprocess.Popen(  # in a session of its own: the kill takes its --devices workers too, as a job's
            reproduce_command(table7_specs, tmp_path),
            env=environment(),
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        time.sleep(delays.uniform(2.0, 15.0))
        if runner.poll() is not None:
            break
        os.killpg(runner.pid, signal.SIGKILL)
        assert runner.wait() == -signal.SIGKILL
        kills += 1
    assert kills >= 2, "the runner finished before it could be killed twice"
    subprocess.run(reproduce_command(table7_specs, tmp_path), env=environment(), check=True, stdout=subprocess.DEVNULL)
    assert (tmp_path / "tables" / "micro" / "table07.md").read_text() == uninterrupted


@pytest.mark.slow
def test_two_runners_on_one_store_train_each_run_once(table7_specs: Path, uninterrupted: str, tmp_path: Path) -> None:
    runners = [
        subprocess.Popen(
            reproduce_command(table7_specs, tmp_path), env=environment(), stdout=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [runner.communicate()[0] for runner in runners]
    assert [runner.returncode for runner in runners] == [0, 0]
    trained = [line for out in outputs for line in out.splitlines() if re.match(r"\[\d+/\d+\] training ", line)]
    assert len(trained) == 11 and len({line.split()[2] for line in trained}) == 11  # every run once, by one runner
    assert (tmp_path / "tables" / "micro" / "table07.md").read_text() == uninterrupted


def test_non_finite_loss_stops_the_run_and_keeps_the_last_checkpoint(
    table7_specs: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profile = load_profile(table7_specs / "profiles.toml", "micro")
    dataset = open_dataset(profile.dataset, None, tmp_path / "data", progress=False)
    plan = plan_tables([load_table(table7_specs / "table07.toml")], profile, dataset)
    store, run = Store(tmp_path / "store"), Execution(progress=False)
    cache = dataset.frame_source(store.cache_dir(), profile.recipe.short_side)
    prepare(cache, (*dataset.train, *dataset.validation), with_flow=False, workers=1, progress=False)
    loader = init_loader(store, None)
    rgb = plan.run_id("table07", "rgb", 0)
    stand_in = plan.runs[rgb].upstream[0]
    train_run(plan.runs[stand_in], dataset.for_target(plan.runs[stand_in].target), cache, store, run, loader)
    steps_per_epoch = len(dataset.train) // profile.recipe.batch_size
    original, calls = mml.methods.mutual.group_step, []

    def diverging(*args, **kwargs):
        losses = original(*args, **kwargs)
        calls.append(1)
        return [loss * float("nan") for loss in losses] if len(calls) == steps_per_epoch + 1 else losses

    monkeypatch.setattr(mml.methods.mutual, "group_step", diverging)
    with pytest.raises(MMLError) as error:
        train_run(plan.runs[rgb], dataset, cache, store, run, loader)
    partial = store.partial_dir(rgb)
    assert str(error.value) == (
        f"run {rgb}: non-finite loss at epoch 2, step 1; the last good checkpoint is kept in {partial}"
    )
    with safe_open(str(partial / "checkpoint.safetensors"), "pt") as handle:
        assert json.loads(handle.metadata()["state"])["epoch"] == 1
    monkeypatch.undo()
    train_run(plan.runs[rgb], dataset, cache, store, run, loader)
    assert (
        store.is_done(rgb)
        and torch.isfinite(next(iter(mml.networks.stored_models(store, plan.runs[rgb])[0].parameters()))).all()
    )


def test_malformed_profile_overrides(table7_specs: Path) -> None:
    path = table7_specs / "profiles.toml"
    profile = load_profile(path, "micro", ["recipe.epochs=5", "recipe.sampling=dense", "charades.recipe.lr=0.5"])
    assert (profile.recipe.epochs, profile.recipe.sampling, profile.charades.recipe.lr) == (5, "dense", 0.5)
    with pytest.raises(MMLError, match=r"profiles.toml: micro: override 'recipe.epochs' is not key=value"):
        load_profile(path, "micro", ["recipe.epochs"])
    with pytest.raises(MMLError, match=r"profiles.toml: micro.recipe.epoch: unknown recipe setting"):
        load_profile(path, "micro", ["recipe.epoch=5"])
    with pytest.raises(MMLError, match=r"profiles.toml: micro: override 'arch.x=1': arch is not a table"):
        load_profile(path, "micro", ["arch.x=1"])
