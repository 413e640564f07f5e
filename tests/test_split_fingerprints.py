"""A run's identity does not depend on the validation videos: runs are keyed by the training split's fingerprint,
evaluations by the validation split's too, so more validation videos evaluate the same runs again."""

from __future__ import annotations

import shutil
from pathlib import Path

from mml.data.datasets import open_dataset
from mml.plan import plan_tables
from mml.spec import DatasetConfig, load_profile, load_table

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"
TINY = {"num_classes": 2, "train_per_class": 2, "frames": 3, "min_frames": 3}


def _synthetic(tmp_path: Path, kind: str = "synthetic-sthv2", **sizes: int):
    synthetic = {**TINY, **sizes} if kind == "synthetic-sthv2" else {"num_classes": 2, **sizes}
    return open_dataset(DatasetConfig(kind=kind, synthetic=synthetic), None, tmp_path, progress=False)


def test_more_validation_videos_keep_the_training_fingerprint(tmp_path: Path) -> None:
    few, many = _synthetic(tmp_path, val_per_class=1), _synthetic(tmp_path, val_per_class=3)
    assert few.training_fingerprint == many.training_fingerprint
    assert few.validation_fingerprint != many.validation_fingerprint and few.fingerprint != many.fingerprint
    assert [r.video_id for r in few.validation] == [r.video_id for r in many.validation][:2]  # the same first ones
    more_training = _synthetic(tmp_path, val_per_class=1, train_per_class=3)
    assert more_training.training_fingerprint != few.training_fingerprint
    other_generator = _synthetic(tmp_path, val_per_class=1, typical_percent=0)
    assert other_generator.training_fingerprint != few.training_fingerprint


def test_the_charades_layout_keys_its_splits_alike(tmp_path: Path) -> None:
    kind = "synthetic-charades"
    few = _synthetic(tmp_path, kind, train_videos=4, test_videos=2, min_frames=8, frames=8)
    many = _synthetic(tmp_path, kind, train_videos=4, test_videos=5, min_frames=8, frames=8)
    assert few.training_fingerprint == many.training_fingerprint
    assert few.validation_fingerprint != many.validation_fingerprint


def test_a_user_dataset_split_changes_with_its_own_videos_only_and_not_with_its_folder(tmp_path: Path) -> None:
    generated = _synthetic(tmp_path, val_per_class=1)
    root = tmp_path / "moved"
    shutil.copytree(generated.root, root)
    opened = open_dataset(DatasetConfig(kind="sthv2"), root, tmp_path)
    moved = tmp_path / "moved-again"
    shutil.copytree(root, moved)
    again = open_dataset(DatasetConfig(kind="sthv2"), moved, tmp_path)
    assert (again.training_fingerprint, again.validation_fingerprint) == (
        opened.training_fingerprint,
        opened.validation_fingerprint,
    )
    training_video = moved / opened.train[0].path.relative_to(root)
    training_video.write_bytes(training_video.read_bytes() + b"\0")  # another size
    edited = open_dataset(DatasetConfig(kind="sthv2"), moved, tmp_path)
    assert edited.training_fingerprint != opened.training_fingerprint
    assert edited.validation_fingerprint == opened.validation_fingerprint


def test_the_small_profile_evaluates_smokes_runs_on_its_own_validation_videos(tmp_path: Path) -> None:
    profiles = REPRODUCTIONS / "profiles.toml"
    table = load_table(REPRODUCTIONS / "table07.toml")
    plans = {}
    for name, validation in (("smoke", 1), ("small", 10)):
        tiny = "num_classes = 2, train_per_class = 2, frames = 3, min_frames = 3"  # the profiles' sizes aside
        profile = load_profile(profiles, name, [f"dataset.synthetic={{ {tiny}, val_per_class = {validation} }}"])
        dataset = open_dataset(profile.dataset, None, tmp_path, progress=False)
        plans[name] = (plan_tables([table], profile, dataset), profile)
    (smoke, smoke_profile), (small, _) = plans["smoke"], plans["small"]
    seed0 = [smoke.run_id("table07", run, 0) for run in table.runs]
    assert seed0 == [small.run_id("table07", run, 0) for run in table.runs]
    for rid in seed0:
        assert smoke.evaluation_key(rid, smoke_profile.views) != small.evaluation_key(rid, smoke_profile.views)
        assert smoke.evaluation_key(rid, smoke_profile.views).startswith(smoke_profile.views.key)
