"""Reader of the Charades annotation layout (classes file, train and test CSV files) with multi-label records."""

import csv
import io
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mml.errors import DataError

logger = logging.getLogger(__name__)

VIDEO_DIR = "Charades_v1_480"
FRAMES_DIR = "Charades_v1_rgb"  # the official 24 fps frames, used as they are when present
FRAMES_LAYOUT = {
    "frames": "Charades_v1_rgb/{video}/{video}-{index:06d}.jpg",
    "flow": "Charades_v1_flow/{video}/{video}-{index:06d}{axis}.jpg",
}
CLASSES_FILE = "Charades_v1_classes.txt"
SPLIT_FILES = {"train": "Charades_v1_train.csv", "test": "Charades_v1_test.csv"}
CSV_COLUMNS = (
    "id",
    "subject",
    "scene",
    "quality",
    "relevance",
    "verified",
    "script",
    "objects",
    "descriptions",
    "actions",
    "length",
)
_USED_COLUMNS = ("id", "actions", "length")
_CLASS_LINE = re.compile(r"c(\d{3,})\s+(\S.*)")


@dataclass(frozen=True)
class Action:
    """One annotated action: its class index and its time span in seconds."""

    label: int
    start: float
    end: float


@dataclass(frozen=True)
class MultiLabelRecord:
    """One annotated video: its id, its file (which may not exist), its actions and its length in seconds."""

    video_id: str
    path: Path
    actions: tuple[Action, ...]
    length: float

    @property
    def labels(self) -> tuple[int, ...]:
        """The video-level target: sorted unique classes of all actions (empty for a video without actions)."""
        return tuple(sorted({action.label for action in self.actions}))

    def labels_between(self, start: float, end: float) -> tuple[int, ...]:
        """Sorted unique classes of the actions overlapping [start, end] seconds (inclusive).

        This is PySlowFast's training target of a clip spanning [start, end]: the union of its frames' labels.
        """
        if start > end:
            raise ValueError(f"labels_between needs start <= end, got {start} > {end}")
        return tuple(sorted({a.label for a in self.actions if a.start <= end and a.end >= start}))


@dataclass(frozen=True)
class CharadesSplit:
    """A split of the dataset: class names ordered by index, and its videos."""

    classes: tuple[str, ...]
    records: tuple[MultiLabelRecord, ...]


def read_charades(root: Path, split: str) -> CharadesSplit:
    """Read the class list and the annotated videos of a split.

    A row with an unparsable length or action, an action of a class not in the classes file, or a repeated id is
    skipped with a warning naming the file and the video; videos without actions are kept. Whether the video files
    exist is not checked here.

    Args:
        root: Dataset folder holding the annotation files and the video folder.
        split: "train" or "test".

    Raises:
        DataError: The classes or split file is missing, unreadable or malformed (e.g. lacks a needed column).
    """
    if split not in SPLIT_FILES:
        raise ValueError(f"split must be one of {tuple(SPLIT_FILES)}, got {split!r}")
    classes = read_classes(root / CLASSES_FILE)
    indices = {class_id: index for index, class_id in enumerate(classes)}
    path = root / SPLIT_FILES[split]
    records: list[MultiLabelRecord] = []
    seen: set[str] = set()
    for row in _read_rows(path):
        video_id = row["id"] or ""
        record = _parse_row(row, indices, root / VIDEO_DIR)
        if isinstance(record, MultiLabelRecord) and video_id in seen:
            record = "repeated id"
        if isinstance(record, str):
            logger.warning(f"{path}: skipping video {video_id or '?'}: {record}")
            continue
        seen.add(video_id)
        records.append(record)
    return CharadesSplit(classes=tuple(classes.values()), records=tuple(records))


def read_classes(path: Path) -> dict[str, str]:
    """Class id -> name from a classes file (lines ``c000 Holding some clothes``), ids exactly c000..c{C-1} in order.

    Raises:
        DataError: The file is missing, unreadable, empty, has a malformed line or ids out of order.
    """
    classes: dict[str, str] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        match = _CLASS_LINE.fullmatch(line.strip())
        if match is None:
            raise DataError(f"{path}: line {number} is not 'cNNN class name': {line.strip()!r}")
        if int(match[1]) != len(classes):
            raise DataError(f"{path}: line {number} has class id c{match[1]}, expected c{len(classes):03d}")
        classes[f"c{match[1]}"] = match[2].strip()
    if not classes:
        raise DataError(f"{path}: no classes")
    return classes


def targets(records: Sequence[MultiLabelRecord], num_classes: int) -> np.ndarray:
    """Video-level 0/1 targets of shape (videos, num_classes), float32."""
    out = np.zeros((len(records), num_classes), dtype=np.float32)
    for row, record in enumerate(records):
        labels = record.labels
        if labels and not 0 <= labels[0] <= labels[-1] < num_classes:
            raise ValueError(f"video {record.video_id} has classes {labels} outside 0..{num_classes - 1}")
        out[row, list(labels)] = 1.0
    return out


def read_text(path: Path) -> str:
    """A UTF-8 text file's content, turning a missing or unreadable file into a DataError naming it."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DataError(f"{path}: unreadable ({error})") from error


def _read_rows(path: Path) -> list[dict[str, str | None]]:
    """The CSV rows as dicts, after checking the header has the columns this reader needs."""
    text = read_text(path)
    try:
        reader = csv.DictReader(io.StringIO(text))
        header = reader.fieldnames or []
        missing = [column for column in _USED_COLUMNS if column not in header]
        if missing:
            raise DataError(f"{path}: header lacks column(s) {', '.join(missing)}")
        return list(reader)
    except csv.Error as error:
        raise DataError(f"{path}: malformed CSV ({error})") from error


def _parse_row(row: dict[str, str | None], indices: dict[str, int], videos: Path) -> MultiLabelRecord | str:
    """The record of one CSV row (``indices``: class id -> index), or the reason it cannot be used."""
    video_id, actions_field, length_field = (row.get(column) for column in _USED_COLUMNS)
    if not video_id or actions_field is None or length_field is None:
        return "row has too few fields or no id"
    try:
        length = float(length_field)
    except ValueError:
        length = math.nan
    if not math.isfinite(length) or length < 0:
        return f"unparsable length {length_field!r}"
    actions = []
    for item in filter(None, (part.strip() for part in actions_field.split(";"))):
        fields = item.split()
        try:
            class_id, start, end = fields[0], float(fields[1]), float(fields[2])
        except (IndexError, ValueError):
            return f"unparsable action {item!r}"
        if len(fields) != 3:
            return f"unparsable action {item!r}"
        if not (math.isfinite(start) and math.isfinite(end) and start <= end):
            return f"action {item!r} has an invalid time span"
        if class_id not in indices:
            return f"action class {class_id} is not in {CLASSES_FILE}"
        actions.append(Action(label=indices[class_id], start=start, end=end))
    return MultiLabelRecord(video_id=video_id, path=videos / f"{video_id}.mp4", actions=tuple(actions), length=length)
