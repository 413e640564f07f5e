"""Tests of TSM-style rawframe datasets: lists, classes, templates, layout and fingerprint."""

import json
import logging
import re
import warnings
from pathlib import Path

import numpy as np
import pytest

from mml.data.frames import write_image
from mml.data.rawframes import (
    Rawframes,
    RawframesConfig,
    open_rawframes,
    rawframes_layout,
    read_class_names,
    read_rawframe_list,
)
from mml.data.sthv2 import VideoRecord
from mml.errors import DataError, InvalidValue, SpecError
from mml.spec import load_profile

JPEG_ERROR = 3  # flat JPEG images decode within a few levels of their value
FRAMES = {"vidA": 3, "vidB": 2, "vidC": 4}  # frames per video; flow fields are one fewer
TSM = RawframesConfig(train="train_videofolder.txt", validation="val_videofolder.txt", classes="category.txt")


def _frame_value(video: str, index: int) -> int:
    return 20 * sorted(FRAMES).index(video) + 5 * index


def _write_images(root: Path, frames: str = TSM.frames, flow: str = TSM.flow, start: int = 1) -> None:
    """Flat RGB frames (channels value, value + 1, value + 2) and flow x/y images (value, 255 - value)."""
    for video, count in FRAMES.items():
        for index in range(count):
            value = _frame_value(video, index)
            frame = root / frames.format(video=video, index=index + start)
            frame.parent.mkdir(parents=True, exist_ok=True)
            write_image(frame, np.full((16, 24, 3), [value, value + 1, value + 2], dtype=np.uint8))
            if index < count - 1:
                for axis, level in (("x", value), ("y", 255 - value)):
                    file = root / flow.format(video=video, index=index + start, axis=axis)
                    file.parent.mkdir(parents=True, exist_ok=True)
                    write_image(file, np.full((16, 24), level, dtype=np.uint8))


def _write_tsm(root: Path, config: RawframesConfig = TSM) -> Path:
    """Lists the way TSM's gen_label script writes them: single spaces and no trailing newline."""
    _write_images(root, config.frames, config.flow, config.start_index)
    for name, text in (
        (config.train, "vidA 3 1\nvidB 2 0"),
        (config.validation, "vidC 4 2"),
        (config.classes, "Holding something\nPutting something\nTaking something"),
    ):
        if name is not None:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_text(text)
    return root


def _strict_open(root: Path, config: RawframesConfig) -> Rawframes:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return open_rawframes(root, config)


def test_reads_tsm_lists_classes_and_records(tmp_path: Path) -> None:
    dataset = _strict_open(_write_tsm(tmp_path), TSM)
    assert dataset.classes == ("Holding something", "Putting something", "Taking something")
    assert dataset.train == (VideoRecord("vidA", tmp_path / "vidA", 1), VideoRecord("vidB", tmp_path / "vidB", 0))
    assert dataset.validation == (VideoRecord("vidC", tmp_path / "vidC", 2),)
    assert dataset.layout == rawframes_layout(tmp_path, TSM)


def _check_images(dataset: Rawframes) -> None:
    layout = dataset.layout
    for record in (*dataset.train, *dataset.validation):
        video, count = record.video_id, FRAMES[record.video_id]
        assert layout.count(video, flow=False) == count and layout.count(video, flow=True) == count - 1
        frames = layout.frame_sequence(video, count, short_side=None)[np.arange(count)[::-1]]
        assert frames.shape == (count, 16, 24, 3)
        for position, index in enumerate(range(count)[::-1]):
            value = _frame_value(video, index)
            assert np.abs(frames[position].astype(int) - [value, value + 1, value + 2]).max() <= JPEG_ERROR
        flow = layout.flow_sequence(video, count - 1, short_side=None)[np.arange(count - 1)]
        assert flow.shape == (count - 1, 16, 24, 2)
        for index in range(count - 1):
            value = _frame_value(video, index)
            assert np.abs(flow[index].astype(int) - [value, 255 - value]).max() <= JPEG_ERROR


def test_layout_counts_and_reads_the_frames_and_flow_of_each_video(tmp_path: Path) -> None:
    _check_images(_strict_open(_write_tsm(tmp_path), TSM))


@pytest.mark.parametrize(
    "config",
    [
        # the original MML code's sthv2 layout (ops/dataset_config.py)
        RawframesConfig(
            train="lists/train_videofolder.txt",
            validation="lists/val_videofolder.txt",
            classes="lists/category.txt",
            frames="images/{video}/img_{index:06d}.jpg",
            flow="flow_images/{video}/flow_{axis}_{index:05d}.jpg",
        ),
        # TSM's vid2img output (%06d.jpg, no prefix) counted from 0, flow per axis in its own folder
        RawframesConfig(
            train="train.txt",
            validation="val.txt",
            frames="rgb/{video}/{index:06d}.jpg",
            flow="{axis}/{video}/{index:05d}.jpg",
            start_index=0,
        ),
    ],
)
def test_custom_templates(tmp_path: Path, config: RawframesConfig) -> None:
    dataset = _strict_open(_write_tsm(tmp_path, config), config)
    assert dataset.layout.frame_file("vidA", 0) == tmp_path / config.frames.format(
        video="vidA", index=config.start_index
    )
    _check_images(dataset)


def test_without_classes_file_classes_are_label_numbers(tmp_path: Path) -> None:
    config = RawframesConfig(train="train.txt", validation="val.txt")
    _write_tsm(tmp_path, config)
    (tmp_path / "val.txt").write_text("vidC 4 6\n")
    dataset = _strict_open(tmp_path, config)
    assert dataset.classes == tuple(str(label) for label in range(7))
    assert [record.label for record in dataset.validation] == [6]


def test_malformed_lines_are_skipped_with_file_and_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    lines = [
        "good 3 0",
        "",
        "short 3",
        "long 3 1 2",
        "count x 0",
        "label 3 y",
        "outside 3 3",
        "negative 3 -1",
        "empty 0 1",
        "good 5 2",
        "last 2 2",
    ]
    (tmp_path / "list.txt").write_text("\n".join(lines) + "\n")
    with caplog.at_level(logging.WARNING, "mml.data.rawframes"):
        records = read_rawframe_list(tmp_path, "list.txt", num_classes=3)
    assert records == (VideoRecord("good", tmp_path / "good", 0), VideoRecord("last", tmp_path / "last", 2))
    list_path = tmp_path / "list.txt"
    assert caplog.messages == [
        f"{list_path}: line 3: skipping: expected '<frame folder> <num_frames> <label>', got 2 field(s)",
        f"{list_path}: line 4: skipping: expected '<frame folder> <num_frames> <label>', got 4 field(s)",
        f"{list_path}: line 5: skipping: num_frames 'x' is not an integer",
        f"{list_path}: line 6: skipping: label 'y' is not an integer",
        f"{list_path}: line 7: skipping: label 3 is outside 0..2",
        f"{list_path}: line 8: skipping: label -1 is outside 0..2",
        f"{list_path}: line 9: skipping: no frames (num_frames 0)",
        f"{list_path}: line 10: skipping: folder good already listed on line 1",
    ]


def test_without_classes_only_negative_labels_are_rejected(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "list.txt").write_text("a 3 0\nb 3 -1\nc 3 999")
    with caplog.at_level(logging.WARNING, "mml.data.rawframes"):
        records = read_rawframe_list(tmp_path, "list.txt", num_classes=None)
    assert caplog.messages == [f"{tmp_path / 'list.txt'}: line 2: skipping: label -1 is negative"]
    assert [record.label for record in records] == [0, 999]


def test_missing_list_file_is_an_error_naming_it(tmp_path: Path) -> None:
    _write_tsm(tmp_path)
    (tmp_path / TSM.validation).unlink()
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / TSM.validation}: file not found")):
        open_rawframes(tmp_path, TSM)


def test_a_list_without_usable_lines_is_an_error(tmp_path: Path) -> None:
    _write_tsm(tmp_path)
    (tmp_path / TSM.train).write_text("\n")
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / TSM.train}: no usable lines")):
        open_rawframes(tmp_path, TSM)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("", "no classes"),
        ("a\n\nb", "line 2 is blank"),
        ("a\nb\na\n", "line 3 repeats class 'a' of line 1"),
    ],
)
def test_bad_classes_file(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "category.txt").write_text(text)
    with pytest.raises(DataError, match=rf"category\.txt: {match}"):
        read_class_names(tmp_path / "category.txt")


def test_classes_file_may_end_with_a_newline(tmp_path: Path) -> None:
    (tmp_path / "category.txt").write_text("a\nb\n")
    assert read_class_names(tmp_path / "category.txt") == ("a", "b")


def test_fingerprint_is_stable_and_tracks_lists_classes_and_templates(tmp_path: Path) -> None:
    root = _write_tsm(tmp_path)
    first = open_rawframes(root, TSM).fingerprint
    assert len(first) == 64 and first == open_rawframes(root, TSM).fingerprint
    other_start = RawframesConfig(train=TSM.train, validation=TSM.validation, classes=TSM.classes, start_index=0)
    assert open_rawframes(root, other_start).fingerprint != first
    (root / TSM.classes).write_text("Holding something\nPutting something\nTaking something else")
    second = open_rawframes(root, TSM).fingerprint
    assert second != first
    (root / TSM.train).write_text("vidA 3 1\nvidB 2 1")
    third = open_rawframes(root, TSM).fingerprint
    assert third != second
    (root / "vidD").mkdir()
    assert open_rawframes(root, TSM).fingerprint != third


def test_a_rawframes_table_gets_the_defaults(tmp_path: Path) -> None:
    config = _load_rawframes(tmp_path, '{ train = "t.txt", validation = "v.txt" }')
    assert config == RawframesConfig(train="t.txt", validation="v.txt")
    assert (config.frames, config.flow, config.start_index, config.classes) == (
        "{video}/img_{index:05d}.jpg",
        "{video}/flow_{axis}_{index:05d}.jpg",
        1,
        None,
    )


PROFILE = """[p]
arch = "tsm_tiny"
dataset = {{ kind = "rawframes", rawframes = {table} }}
imagenet = {{ source = "torchvision" }}
recipe = {{ segments = 2, short_side = 32, input_size = 28, batch_size = 4, epochs = 1, lr = 0.01, lr_steps = [] }}
"""


def _load_rawframes(tmp_path: Path, table: str) -> RawframesConfig | None:
    """The rawframes config of a profile whose dataset section sets `rawframes = table` (TOML text)."""
    path = tmp_path / "profiles.toml"
    path.write_text(PROFILE.format(table=table))
    return load_profile(path, "p").dataset.rawframes


def _inline_table(values: dict) -> str:
    """`values` as a TOML inline table."""
    return "{ " + ", ".join(f"{key} = {json.dumps(value)}" for key, value in values.items()) + " }"


def test_a_profile_reads_its_rawframes_table(tmp_path: Path) -> None:
    table = {"train": "t.txt", "validation": "v.txt", "classes": "c.txt", "start_index": 0}
    assert _load_rawframes(tmp_path, _inline_table(table)) == RawframesConfig(**table)


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"train": None}, "train: missing"),
        ({"test": "x.txt"}, "test: unknown key"),
        ({"validation": 3}, "validation: expected a non-empty string, got 3"),
        ({"classes": ""}, "classes: expected a non-empty string"),
        ({"train": "/abs/train.txt"}, "train: '/abs/train.txt' must be relative to the dataset folder"),
        ({"frames": "{video}/img_{frame:05d}.jpg"}, "frames: template .* must use exactly the fields {video}, {index}"),
        ({"frames": "img_{index:05d}.jpg"}, "frames: template .* must use exactly the fields"),
        (
            {"flow": "{video}/flow_{index:05d}.jpg"},
            "flow: template .* must use exactly the fields {video}, {index}, {axis}",
        ),
        ({"frames": "{video}_{index}/img.jpg"}, r"frames: template .* must have {index} in its file name"),
        ({"frames": "{video}/img_{index:05s}.jpg"}, "frames: template .* is malformed"),
        ({"frames": "{video}/img_{index.jpg"}, "frames: template .* is malformed"),
        ({"start_index": -1}, "start_index: expected a non-negative integer, got -1"),
        ({"start_index": True}, "start_index: expected a non-negative integer, got True"),
    ],
)
def test_a_bad_rawframes_table_is_refused_naming_file_and_key(tmp_path: Path, changes: dict, reason: str) -> None:
    table = {"train": "t.txt", "validation": "v.txt"} | changes
    table = {key: value for key, value in table.items() if value is not None}
    where = re.escape(f"{tmp_path / 'profiles.toml'}: p.dataset.rawframes.")
    with pytest.raises(SpecError, match=f"^{where}{reason}"):
        _load_rawframes(tmp_path, _inline_table(table))


def test_rawframes_must_be_a_table(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match=r"profiles\.toml: p\.dataset\.rawframes: expected dict, got str"):
        _load_rawframes(tmp_path, "'lists.txt'")


def test_the_config_checks_its_values_itself() -> None:
    with pytest.raises(InvalidValue, match=r"^start_index: expected a non-negative integer, got -1$"):
        RawframesConfig(train="t.txt", validation="v.txt", start_index=-1)
