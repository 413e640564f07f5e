"""Reader of the Something-Something-v2 annotation layout (labels, train and validation JSON files)."""

import hashlib
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from mml.errors import DataError

logger = logging.getLogger(__name__)

VIDEO_DIR = "20bn-something-something-v2"
LABELS_FILE = "something-something-v2-labels.json"
SPLIT_FILES = {
    "train": "something-something-v2-train.json",
    "validation": "something-something-v2-validation.json",
}
TEST_FILE = "something-something-v2-test.json"
ANNOTATION_FILES = (LABELS_FILE, *SPLIT_FILES.values(), TEST_FILE)


@dataclass(frozen=True)
class VideoRecord:
    """One annotated video: its id, its file (which may not exist), its class index and the objects it names."""

    video_id: str
    path: Path
    label: int
    placeholders: tuple[str, ...] = ()


@dataclass(frozen=True)
class Sthv2Split:
    """A split of the dataset: class names ordered by index, and its videos."""

    classes: tuple[str, ...]
    records: tuple[VideoRecord, ...]


def read_sthv2(root: Path, split: str) -> Sthv2Split:
    """Read the class list and the annotated videos of a split.

    An entry lacking `id` or `template`, or whose template is not in the labels file, is skipped with a warning;
    whether the video files exist is not checked here.

    Args:
        root: Dataset folder holding the annotation files and the video folder.
        split: "train" or "validation".

    Raises:
        DataError: An annotation file is missing or malformed, or the label indices are not exactly 0..C-1.
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {tuple(SPLIT_FILES)}, got {split!r}")
    label_index = _read_labels(root / LABELS_FILE)
    classes = tuple(sorted(label_index, key=label_index.__getitem__))
    entries_file = root / SPLIT_FILES[split]
    entries = _load_json(entries_file)
    if not isinstance(entries, list):
        raise DataError(f"{entries_file}: expected a JSON list of entries, got {type(entries).__name__}")
    records = []
    for position, entry in enumerate(entries):
        record = _parse_entry(entry, label_index, root / VIDEO_DIR)
        if isinstance(record, str):
            name = entry.get("id") if isinstance(entry, dict) and "id" in entry else f"#{position}"
            logger.warning(f"{entries_file}: skipping entry {name}: {record}")
        else:
            records.append(record)
    return Sthv2Split(classes=classes, records=tuple(records))


def _read_labels(path: Path) -> dict[str, int]:
    """Class name -> index from the labels file, checking the indices are exactly 0..C-1."""
    raw = _load_json(path)
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a non-empty JSON object of class name -> index")
    labels = {}
    for name, value in raw.items():
        try:
            labels[name] = int(value)
        except (TypeError, ValueError):
            raise DataError(f"{path}: class {name!r} has a non-integer index {value!r}") from None
    if sorted(labels.values()) != list(range(len(labels))):
        raise DataError(f"{path}: class indices must be exactly 0..{len(labels) - 1}, got {sorted(labels.values())}")
    return labels


def _parse_entry(entry: object, label_index: dict[str, int], videos: Path) -> VideoRecord | str:
    """The record of one annotation entry, or the reason it cannot be used."""
    if not isinstance(entry, dict):
        return f"not a JSON object ({type(entry).__name__})"
    missing = [key for key in ("id", "template") if key not in entry]
    if missing:
        return f"missing {', '.join(missing)}"
    template = entry["template"]
    if not isinstance(template, str):
        return f"template is not a string ({template!r})"
    name = class_name(template)
    if name not in label_index:
        return f"template {template!r} is not in the labels file"
    video_id = str(entry["id"])
    placeholders = entry.get("placeholders")
    objects = tuple(str(p) for p in placeholders) if isinstance(placeholders, list) else ()
    return VideoRecord(
        video_id=video_id, path=videos / f"{video_id}.webm", label=label_index[name], placeholders=objects
    )


def class_name(template: str) -> str:
    """Class name as keyed in the labels file: the template (e.g. "Moving [something] up") without brackets."""
    return template.replace("[", "").replace("]", "")


def _load_json(path: Path) -> object:
    """Parse a JSON file, turning a missing or malformed file into a DataError naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: unreadable ({error})") from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise DataError(f"{path}: malformed JSON ({error})") from None


def dataset_fingerprint(
    root: Path, annotation_files: Sequence[str] = ANNOTATION_FILES, video_dir: str = VIDEO_DIR
) -> str:
    """Hash of the annotation files present and of the video folder's (file name, size) list (by default the
    sthv2 layout's; other layouts pass theirs; a sub-folder, e.g. one video's frames, counts by its name only).

    Stable across calls; it changes when an annotation file changes or a video is added, removed, renamed or resized
    (a same-size edit of a video goes unnoticed: hashing every video would be too slow on the real dataset).

    Raises:
        DataError: `root` is not a folder.
    """
    if not root.is_dir():
        raise DataError(f"{root}: dataset folder not found")
    digest = hashlib.sha256()
    for name in annotation_files:
        path = root / name
        if path.is_file():
            content = path.read_bytes()
            digest.update(f"{name}\0{len(content)}\0".encode())
            digest.update(content)
    videos = root / video_dir
    listing = []
    if videos.is_dir():
        with os.scandir(videos) as entries:
            listing = sorted((entry.name, entry.stat().st_size if entry.is_file() else -1) for entry in entries)
    digest.update(json.dumps(listing).encode())
    return digest.hexdigest()
