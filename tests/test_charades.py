"""Tests of the Charades reader and of the synthetic Charades generator."""

import csv
import json
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from mml.data.charades import (
    CSV_COLUMNS,
    Action,
    MultiLabelRecord,
    read_charades,
    targets,
)
from mml.data.synthetic import MARKER_NAME, typical_object
from mml.data.synthetic_charades import (
    GENERATOR_VERSION,
    SyntheticCharadesConfig,
    ensure_charades,
    generate_charades,
    plan_video,
    render_video,
    video_id,
)
from mml.data.video import decode_video
from mml.errors import DataError, InvalidValue

HEADER = ",".join(CSV_COLUMNS)
CLASSES = "c000 Holding some clothes\nc001 Putting clothes somewhere\nc002 Taking a cup\n"
TINY = SyntheticCharadesConfig(
    num_classes=3, train_videos=4, test_videos=2, min_frames=8, frames=12, height=32, width=48
)
# Plans are cheap: interval statistics can use many videos.
LARGE = SyntheticCharadesConfig(train_videos=300)
VIDEOS = "Charades_v1_480"


def _row(video: str, actions: str, length: str = "30.00") -> str:
    # Quoted free-text fields with commas, as in the real files.
    text = '"A person holds clothes, then a cup.",clothes;cup,"Holds, takes."'
    return f"{video},SUBJ,Kitchen,7,7,Yes,{text},{actions},{length}"


def _write(root: Path, rows: list[str], classes: str = CLASSES, header: str = HEADER) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Charades_v1_classes.txt").write_text(classes)
    (root / "Charades_v1_train.csv").write_text("\n".join([header, *rows]) + "\n")
    return root


def test_reader_parses_actions_lengths_and_paths(tmp_path: Path) -> None:
    root = _write(tmp_path, [_row("46GP8", '"c002 11.90 21.20;c000 0.00 12.60"', "24.83"), _row("ABC12", "")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        split = read_charades(root, "train")
    assert split.classes == ("Holding some clothes", "Putting clothes somewhere", "Taking a cup")
    first, empty = split.records
    assert first == MultiLabelRecord(
        video_id="46GP8",
        path=root / VIDEOS / "46GP8.mp4",
        actions=(Action(label=2, start=11.9, end=21.2), Action(label=0, start=0.0, end=12.6)),
        length=24.83,
    )
    assert first.labels == (0, 2)
    assert empty.video_id == "ABC12" and empty.actions == () and empty.labels == ()


def test_labels_between_keeps_the_actions_overlapping_the_span() -> None:
    record = MultiLabelRecord(
        video_id="X",
        path=Path("X.mp4"),
        actions=(Action(2, 11.9, 21.2), Action(0, 0.0, 12.6), Action(1, 30.0, 31.0), Action(2, 25.0, 26.0)),
        length=32.0,
    )
    assert record.labels == (0, 1, 2)
    assert record.labels_between(0.0, 5.0) == (0,)
    assert record.labels_between(12.0, 13.0) == (0, 2)
    assert record.labels_between(21.2, 24.9) == (2,)  # Touching the end of an action counts.
    assert record.labels_between(21.3, 24.9) == ()
    assert record.labels_between(0.0, 32.0) == record.labels
    with pytest.raises(ValueError):
        record.labels_between(5.0, 4.0)


@pytest.mark.parametrize(
    ("actions", "reason"),
    [
        ("c009 1.00 2.00", "class c009 is not in Charades_v1_classes.txt"),
        ("c001 abc 2.00", "unparsable action 'c001 abc 2.00'"),
        ("c001 1.00", "unparsable action 'c001 1.00'"),
        ('"c000 1.00 2.00;c001 4.00 3.00"', "invalid time span"),
    ],
)
def test_bad_action_warns_naming_file_and_video_and_skips_only_that_row(
    tmp_path: Path, actions: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    root = _write(tmp_path, [_row("GOOD1", "c000 1.00 2.00"), _row("BAD01", actions), _row("GOOD2", "")])
    with caplog.at_level(logging.WARNING, "mml.data.charades"):
        split = read_charades(root, "train")
    (message,) = caplog.messages
    assert message.startswith(f"{root / 'Charades_v1_train.csv'}: skipping video BAD01: ")
    assert reason in message and "\n" not in message
    assert [record.video_id for record in split.records] == ["GOOD1", "GOOD2"]


def test_bad_length_and_repeated_id_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    root = _write(tmp_path, [_row("A", "", "long"), _row("B", ""), _row("B", "c000 0.00 1.00")])
    with caplog.at_level(logging.WARNING, "mml.data.charades"):
        split = read_charades(root, "train")
    assert ["unparsable length 'long'" in message for message in caplog.messages] == [True, False]
    assert "repeated id" in caplog.messages[1]
    assert [(record.video_id, record.labels) for record in split.records] == [("B", ())]


def test_csv_without_a_needed_column_is_a_data_error_naming_the_file(tmp_path: Path) -> None:
    root = _write(tmp_path, ["46GP8,SUBJ,Kitchen,7,7,Yes,s,o,d,24.83"], header=HEADER.replace(",actions", ""))
    with pytest.raises(DataError, match="header lacks column\\(s\\) actions") as caught:
        read_charades(root, "train")
    assert str(caught.value).startswith(f"{root / 'Charades_v1_train.csv'}: ")


@pytest.mark.parametrize(
    ("classes", "match"),
    [
        ("c000 Holding some clothes\nc002 Taking a cup\n", "expected c001"),
        ("c000 Holding some clothes\nHolding\n", "line 2"),
        ("\n", "no classes"),
    ],
)
def test_malformed_classes_file_is_a_data_error_naming_it(tmp_path: Path, classes: str, match: str) -> None:
    root = _write(tmp_path, [_row("A", "")], classes=classes)
    with pytest.raises(DataError, match=match) as caught:
        read_charades(root, "train")
    assert str(caught.value).startswith(f"{root / 'Charades_v1_classes.txt'}: ")


def test_missing_files_and_bad_split(tmp_path: Path) -> None:
    root = _write(tmp_path, [_row("A", "")])
    with pytest.raises(DataError, match="Charades_v1_test.csv: file not found"):
        read_charades(root, "test")
    with pytest.raises(ValueError, match="split"):
        read_charades(root, "validation")


def test_targets_are_video_level_multi_hot() -> None:
    records = [
        MultiLabelRecord("A", Path("A.mp4"), (Action(2, 0.0, 1.0), Action(0, 3.0, 4.0), Action(2, 5.0, 6.0)), 7.0),
        MultiLabelRecord("B", Path("B.mp4"), (), 3.0),
    ]
    out = targets(records, 4)
    assert out.dtype == np.float32
    assert np.array_equal(out, [[1, 0, 1, 0], [0, 0, 0, 0]])
    with pytest.raises(ValueError, match="video A"):
        targets(records, 2)


# --- synthetic generator ---


@pytest.fixture(scope="module")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_charades(tmp_path_factory.mktemp("tiny") / "charades", TINY, progress=False)


@pytest.mark.parametrize(
    "changes",
    [
        {"num_classes": 1},
        {"num_classes": 11},
        {"train_videos": 0},
        {"test_videos": 0},
        {"min_frames": 3},
        {"min_frames": 49},
        {"height": 47},
        {"width": 30},
        {"fps": 0},
        {"seed": -1},
        {"frames": 48.0},
        {"num_classes": True},
        {"typical_percent": 101},
    ],
)
def test_config_rejects_bad_values(changes: dict[str, object]) -> None:
    with pytest.raises(InvalidValue, match=f"^{next(iter(changes))}: "):
        SyntheticCharadesConfig(**changes)


def test_fingerprint_fields_hold_every_field_and_the_version() -> None:
    fields = SyntheticCharadesConfig(seed=3).fingerprint_fields()
    assert fields == {**vars(SyntheticCharadesConfig(seed=3)), "generator_version": GENERATOR_VERSION}
    assert fields["fps"] == 24 and SyntheticCharadesConfig().fingerprint_fields() != fields


def test_objects_move_only_during_their_action_interval() -> None:
    for index in range(LARGE.train_videos):
        plan = plan_video(LARGE, "train", index)
        assert LARGE.min_frames <= plan.frames <= LARGE.frames
        assert 1 <= len(plan.objects) <= 3
        assert len({obj.label for obj in plan.objects}) == len(plan.objects)
        assert plan.objects[0].label == index % LARGE.num_classes
        for obj in plan.objects:
            assert 0 <= obj.first < obj.last < plan.frames
            assert obj.last - obj.first + 1 < plan.frames  # No action spans the whole video.
            state = np.column_stack([obj.centres, obj.radii])
            moving = np.abs(np.diff(state, axis=0)).max(axis=1) > 1e-9
            # Frame t -> t+1 changes exactly when the action runs: first <= t < last.
            assert np.array_equal(np.flatnonzero(moving), np.arange(obj.first, obj.last)), (index, obj.label)
            assert np.all(obj.centres - obj.radii[:, None] >= 0)
            assert np.all(obj.centres + obj.radii[:, None] <= [LARGE.width, LARGE.height])


@pytest.mark.parametrize("percent", [0, 60, 100])
def test_objects_are_their_actions_typical_objects_at_the_configured_rate(percent: int) -> None:
    config = SyntheticCharadesConfig(train_videos=300, typical_percent=percent)
    objects = [obj for i in range(config.train_videos) for obj in plan_video(config, "train", i).objects]
    typical = np.mean([(obj.colour, obj.shape) == typical_object(obj.label) for obj in objects])
    # At most 3 binomial standard deviations off (plus the objects drawn at random that match by chance).
    assert percent / 100 - 3 * np.sqrt(0.25 / len(objects)) <= typical <= percent / 100 + 0.05


# (label, axis, sign): coordinate (x=0, y=1, radius=2) that grows (+1) or shrinks (-1) during the action.
MOTION_CHECKS = [(0, 0, 1), (1, 0, -1), (2, 1, -1), (3, 1, 1), (6, 0, -1), (6, 1, 1), (8, 2, 1), (9, 2, -1)]


@pytest.mark.parametrize(("label", "axis", "sign"), MOTION_CHECKS)
def test_actions_are_the_sthv2_motions(label: int, axis: int, sign: int) -> None:
    objects = [obj for i in range(LARGE.train_videos) for obj in plan_video(LARGE, "train", i).objects]
    chosen = [obj for obj in objects if obj.label == label]
    assert len(chosen) >= 10
    for obj in chosen:
        values = obj.radii if axis == 2 else obj.centres[:, axis]
        assert np.all(sign * np.diff(values[obj.first : obj.last + 1]) > 0)


def test_rendered_frames_change_only_while_an_object_moves() -> None:
    for split, index in [(name, i) for name in ("train", "test") for i in range(TINY.split_size(name))]:
        plan = plan_video(TINY, split, index)
        frames = render_video(TINY, split, index).astype(int)
        assert frames.shape == (plan.frames, TINY.height, TINY.width, 3)
        change = np.abs(np.diff(frames, axis=0)).max(axis=(1, 2, 3))
        moving = np.zeros(plan.frames - 1, dtype=bool)
        for obj in plan.objects:
            moving[obj.first : obj.last] = True
        assert np.all(change[~moving] < 20), index  # Only the pixel noise (sigma 2) differs.
        assert np.all(change[moving] >= 20), index


def test_layout_matches_the_real_charades_files(tiny_root: Path) -> None:
    assert sorted(path.name for path in tiny_root.iterdir()) == sorted(
        [MARKER_NAME, "Charades_v1_classes.txt", "Charades_v1_train.csv", "Charades_v1_test.csv", VIDEOS]
    )
    lines = (tiny_root / "Charades_v1_classes.txt").read_text().splitlines()
    assert [line[:5] for line in lines] == ["c000 ", "c001 ", "c002 "]
    assert all(re.fullmatch(r"c\d{3} [A-Z][a-z ]+", line) for line in lines)
    ids = []
    for split in ("train", "test"):
        path = tiny_root / f"Charades_v1_{split}.csv"
        assert path.read_text().splitlines()[0] == HEADER
        with path.open(newline="") as file:
            rows = list(csv.DictReader(file))
        assert len(rows) == TINY.split_size(split)
        for index, row in enumerate(rows):
            plan = plan_video(TINY, split, index)
            assert row["id"] == video_id(split, index)
            assert row["length"] == f"{plan.frames / 24:.2f}"
            actions = [action.split(" ") for action in row["actions"].split(";")]
            assert [label for label, _, _ in actions] == [f"c{obj.label:03d}" for obj in plan.objects]
            for (_, start, end), obj in zip(actions, plan.objects, strict=True):
                assert re.fullmatch(r"\d+\.\d\d", start) and re.fullmatch(r"\d+\.\d\d", end)
                # Two decimals rounded outwards: the interval holds frames first..last and no other frame.
                assert float(start) <= obj.first / 24 < float(start) + 0.01
                assert float(end) - 0.01 < obj.last / 24 <= float(end)
            ids.append(row["id"])
    assert sorted(path.name for path in (tiny_root / VIDEOS).iterdir()) == sorted(f"{i}.mp4" for i in ids)
    assert json.loads((tiny_root / MARKER_NAME).read_text()) == TINY.fingerprint_fields()


def test_reader_loads_the_generated_dataset_and_clip_targets_differ_from_video_targets(tiny_root: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        train, test = read_charades(tiny_root, "train"), read_charades(tiny_root, "test")
    assert len(train.classes) == 3 and train.classes == test.classes
    assert [len(train.records), len(test.records)] == [4, 2]
    differs = 0
    for index, record in enumerate(train.records):
        plan = plan_video(TINY, "train", index)
        assert record.labels == tuple(sorted(obj.label for obj in plan.objects))
        assert record.length == pytest.approx(plan.frames / 24, abs=0.0051)  # Two decimals.
        for t in range(plan.frames):
            # A one-frame clip at frame t holds the actions whose objects are moving into or out of frame t.
            during = tuple(sorted(obj.label for obj in plan.objects if obj.first <= t <= obj.last))
            assert record.labels_between(t / 24, t / 24) == during
            differs += during != record.labels
    assert differs > 0


def test_videos_are_h264_mp4_holding_the_rendered_frames(tiny_root: Path) -> None:
    for split in ("train", "test"):
        for index in range(TINY.split_size(split)):
            path = tiny_root / VIDEOS / f"{video_id(split, index)}.mp4"
            assert path.read_bytes()[4:8] == b"ftyp"
            decoded = decode_video(path)
            rendered = render_video(TINY, split, index)
            assert decoded.shape == rendered.shape
            assert np.abs(decoded.astype(int) - rendered.astype(int)).mean() < 5


def test_generation_is_deterministic(tiny_root: Path, tmp_path: Path) -> None:
    again = ensure_charades(tmp_path / "again", TINY, progress=False)
    other = ensure_charades(tmp_path / "other", SyntheticCharadesConfig(**{**vars(TINY), "seed": 1}), progress=False)
    for name in ("Charades_v1_classes.txt", "Charades_v1_train.csv", "Charades_v1_test.csv"):
        assert (again / name).read_bytes() == (tiny_root / name).read_bytes()
    videos = sorted((tiny_root / VIDEOS).iterdir())
    for path in videos:
        assert np.array_equal(decode_video(path), decode_video(again / VIDEOS / path.name))
    assert not any(np.array_equal(decode_video(path), decode_video(other / VIDEOS / path.name)) for path in videos)
    assert (other / "Charades_v1_train.csv").read_bytes() != (tiny_root / "Charades_v1_train.csv").read_bytes()


def test_ensure_reuses_existing_dataset_and_refuses_other_settings(tiny_root: Path) -> None:
    files = [tiny_root / MARKER_NAME, *sorted((tiny_root / VIDEOS).iterdir())]
    before = [path.stat().st_mtime_ns for path in files]
    assert ensure_charades(tiny_root, TINY, progress=False) == tiny_root
    assert [path.stat().st_mtime_ns for path in files] == before
    with pytest.raises(DataError, match="seed=0 \\(wanted 5\\)") as caught:
        ensure_charades(tiny_root, SyntheticCharadesConfig(**{**vars(TINY), "seed": 5}), progress=False)
    assert str(caught.value).startswith(f"{tiny_root}: ")


def test_ensure_refuses_folder_without_marker_and_generate_refuses_a_full_one(tmp_path: Path) -> None:
    (tmp_path / "user").mkdir()
    (tmp_path / "user" / "notes.txt").write_text("keep me")
    with pytest.raises(DataError, match="marker"):
        ensure_charades(tmp_path / "user", TINY, progress=False)
    with pytest.raises(DataError, match="not empty"):
        generate_charades(tmp_path / "user", TINY, progress=False)
    assert (tmp_path / "user" / "notes.txt").read_text() == "keep me"
    assert sorted(path.name for path in tmp_path.iterdir()) == ["user"]
