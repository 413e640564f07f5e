"""Tests of the Something-Something-v2 annotation reader and dataset fingerprint."""

import json
import logging
import shutil
from pathlib import Path

import pytest

from mml.data.sthv2 import VideoRecord, dataset_fingerprint, read_sthv2
from mml.data.synthetic import TEMPLATES, SyntheticConfig, ensure_sthv2
from mml.errors import DataError

CONFIG = SyntheticConfig(num_classes=4, train_per_class=2, val_per_class=1, frames=4, min_frames=3, height=32, width=32)
LABELS = "something-something-v2-labels.json"
TRAIN = "something-something-v2-train.json"


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return ensure_sthv2(tmp_path_factory.mktemp("data") / "sthv2", CONFIG, progress=False)


@pytest.fixture
def root(generated: Path, tmp_path: Path) -> Path:
    """A private copy of the generated dataset that a test may edit."""
    return Path(shutil.copytree(generated, tmp_path / "sthv2"))


def _write(path: Path, value: object) -> None:
    path.write_text(json.dumps(value))


def test_reads_generated_splits(generated: Path) -> None:
    expected_classes = tuple(template.replace("[", "").replace("]", "") for template in TEMPLATES[:4])
    train = read_sthv2(generated, "train")
    validation = read_sthv2(generated, "validation")
    assert train.classes == validation.classes == expected_classes
    assert len(train.records) == 8 and len(validation.records) == 4
    entries = json.loads((generated / TRAIN).read_text())
    for record, entry in zip(train.records, entries, strict=True):
        assert record == VideoRecord(
            video_id=entry["id"],
            path=generated / "20bn-something-something-v2" / f"{entry['id']}.webm",
            label=TEMPLATES.index(entry["template"]),
            placeholders=tuple(entry["placeholders"]),
        )
        assert record.path.is_file()
    assert {record.label for record in validation.records} == {0, 1, 2, 3}
    assert not {record.video_id for record in train.records} & {record.video_id for record in validation.records}


def test_classes_follow_label_indices_not_file_order(tmp_path: Path) -> None:
    _write(tmp_path / LABELS, {"Zooming something": "1", "Dropping something": "2", "Holding something": "0"})
    entries = [{"id": "7", "template": "Dropping [something]"}, {"id": 8, "template": "Zooming [something]"}]
    _write(tmp_path / TRAIN, entries)
    split = read_sthv2(tmp_path, "train")
    assert split.classes == ("Holding something", "Zooming something", "Dropping something")
    assert [(record.video_id, record.label) for record in split.records] == [("7", 2), ("8", 1)]


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        ({"a": "0", "b": "2"}, "exactly 0..1"),
        ({"a": "1", "b": "1"}, "exactly 0..1"),
        ({"a": "x"}, "non-integer"),
        ({}, "non-empty"),
        (["a"], "non-empty"),
    ],
)
def test_bad_label_indices_raise(tmp_path: Path, labels: object, match: str) -> None:
    _write(tmp_path / LABELS, labels)
    _write(tmp_path / TRAIN, [])
    with pytest.raises(DataError, match=match) as caught:
        read_sthv2(tmp_path, "train")
    assert str(caught.value).startswith(f"{tmp_path / LABELS}: ")


@pytest.mark.parametrize("name", [LABELS, TRAIN])
def test_malformed_json_names_the_file(root: Path, name: str) -> None:
    (root / name).write_text('{"truncated": ')
    with pytest.raises(DataError, match="malformed JSON") as caught:
        read_sthv2(root, "train")
    assert str(caught.value).startswith(f"{root / name}: ")
    assert "\n" not in str(caught.value)


def test_missing_annotation_file_names_it(root: Path) -> None:
    (root / "something-something-v2-validation.json").unlink()
    with pytest.raises(DataError, match="validation.json: file not found"):
        read_sthv2(root, "validation")


def test_entries_must_be_a_list(root: Path) -> None:
    _write(root / TRAIN, {"id": "1"})
    with pytest.raises(DataError, match="JSON list"):
        read_sthv2(root, "train")


def test_unusable_entries_are_skipped_with_a_warning(root: Path, caplog: pytest.LogCaptureFixture) -> None:
    entries = json.loads((root / TRAIN).read_text())
    good = len(entries)
    entries += [
        {"id": "999", "template": "Juggling [something]"},
        {"template": "Moving [something] up"},
        {"id": "1000"},
        "not an entry",
    ]
    _write(root / TRAIN, entries)
    with caplog.at_level(logging.WARNING, "mml.data.sthv2"):
        split = read_sthv2(root, "train")
    messages = caplog.messages
    assert len(split.records) == good
    assert len(messages) == 4
    assert all(message.startswith(f"{root / TRAIN}: skipping entry ") for message in messages)
    assert "entry 999: template 'Juggling [something]' is not in the labels file" in messages[0]
    assert f"entry #{good + 1}: missing id" in messages[1]
    assert "entry 1000: missing template" in messages[2]
    assert f"entry #{good + 3}: not a JSON object" in messages[3]


def test_unknown_split_is_rejected(generated: Path) -> None:
    with pytest.raises(ValueError, match="split"):
        read_sthv2(generated, "test")


def test_fingerprint_is_stable_and_tracks_annotations_and_videos(root: Path) -> None:
    first = dataset_fingerprint(root)
    assert len(first) == 64 and first == dataset_fingerprint(root)
    (root / ".mml-synthetic.json").write_text("{}")
    assert dataset_fingerprint(root) == first
    seen = {first}
    (root / "something-something-v2-test.json").write_text('[{"id": "12345"}]')
    seen.add(dataset_fingerprint(root))
    entries = json.loads((root / TRAIN).read_text())
    _write(root / TRAIN, entries[:-1])
    seen.add(dataset_fingerprint(root))
    videos = root / "20bn-something-something-v2"
    first_video = sorted(videos.iterdir())[0]
    first_video.write_bytes(first_video.read_bytes() + b"\0")
    seen.add(dataset_fingerprint(root))
    (videos / "extra.webm").write_bytes(b"")
    seen.add(dataset_fingerprint(root))
    assert len(seen) == 5


def test_fingerprint_of_a_missing_root_raises(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        dataset_fingerprint(tmp_path / "absent")
