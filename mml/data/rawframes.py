"""TSM-style rawframe datasets: frames (and flow) already extracted by other tools, listed in
``<frame folder> <num_frames> <label>`` files (TSM's ``*_videofolder.txt``, mmaction2's ``*_list_rawframes.txt``),
with an optional ``category.txt`` of class names, one per line."""

from __future__ import annotations

import hashlib
import json
import logging
import string
from dataclasses import dataclass
from pathlib import Path

from mml.data.charades import read_text
from mml.data.frames import FolderLayout
from mml.data.sthv2 import VideoRecord, dataset_fingerprint
from mml.errors import DataError
from mml.spec.dataset import RawframesConfig

logger = logging.getLogger(__name__)


def read_rawframe_list(root: Path, list_file: str, num_classes: int | None) -> tuple[VideoRecord, ...]:
    """The videos of a ``<frame folder> <num_frames> <label>`` list (whitespace-separated, blank lines ignored).

    Each record's id is its folder as listed and its path ``root / folder``; the listed frame count is only checked
    to be positive (the frames are counted on disk when read). A line that is malformed, has no frames, a label
    outside 0..num_classes-1 (or a negative one when `num_classes` is None) or repeats a folder is skipped with a
    warning (logged) naming the file and the line.

    Raises:
        DataError: The list file is missing or unreadable.
    """
    path = root / list_file
    records: list[VideoRecord] = []
    listed_on: dict[str, int] = {}
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        entry = _parse_line(line, num_classes)
        if not isinstance(entry, str) and entry[0] in listed_on:
            entry = f"folder {entry[0]} already listed on line {listed_on[entry[0]]}"
        if isinstance(entry, str):
            logger.warning(f"{path}: line {number}: skipping: {entry}")
            continue
        folder, label = entry
        listed_on[folder] = number
        records.append(VideoRecord(video_id=folder, path=root / folder, label=label))
    return tuple(records)


def _parse_line(line: str, num_classes: int | None) -> tuple[str, int] | str:
    """(folder, label) of a list line, or the reason it cannot be used."""
    fields = line.split()
    if len(fields) != 3:
        return f"expected '<frame folder> <num_frames> <label>', got {len(fields)} field(s)"
    folder, count_text, label_text = fields
    try:
        count = int(count_text)
    except ValueError:
        return f"num_frames {count_text!r} is not an integer"
    try:
        label = int(label_text)
    except ValueError:
        return f"label {label_text!r} is not an integer"
    if count < 1:
        return f"no frames (num_frames {count})"
    if num_classes is None and label < 0:
        return f"label {label} is negative"
    if num_classes is not None and not 0 <= label < num_classes:
        return f"label {label} is outside 0..{num_classes - 1}"
    return folder, label


def read_class_names(path: Path) -> tuple[str, ...]:
    """Class names, one per line, the line number (from 0) being the class index, as TSM's ``category.txt``.

    Raises:
        DataError: The file is missing, unreadable, empty, has a blank line among the names or a repeated name.
    """
    names = [line.strip() for line in read_text(path).rstrip().splitlines()]
    if not names:
        raise DataError(f"{path}: no classes")
    first_line: dict[str, int] = {}
    for number, name in enumerate(names, start=1):
        if not name:
            raise DataError(f"{path}: line {number} is blank")
        if name in first_line:
            raise DataError(f"{path}: line {number} repeats class {name!r} of line {first_line[name]}")
        first_line[name] = number
    return tuple(names)


def rawframes_layout(root: Path, config: RawframesConfig) -> FolderLayout:
    """Where the frame and flow images of the dataset's videos lie."""
    return FolderLayout(root, config.frames, config.flow, config.start_index)


@dataclass(frozen=True)
class Rawframes:
    """An opened rawframe dataset: class names by index, the videos of both lists, their images, and the
    fingerprint that keys its runs and caches."""

    classes: tuple[str, ...]
    train: tuple[VideoRecord, ...]
    validation: tuple[VideoRecord, ...]
    layout: FolderLayout
    fingerprint: str


def open_rawframes(root: Path, config: RawframesConfig) -> Rawframes:
    """Read the classes and both lists of a rawframe dataset (see `read_rawframe_list` for skipped lines).

    Raises:
        DataError: A list or the classes file is missing or unreadable, the classes file is malformed, or
            a list has no usable line.
    """
    classes = None if config.classes is None else read_class_names(root / config.classes)
    num_classes = None if classes is None else len(classes)
    train = read_rawframe_list(root, config.train, num_classes)
    validation = read_rawframe_list(root, config.validation, num_classes)
    for list_file, records in ((config.train, train), (config.validation, validation)):
        if not records:
            raise DataError(f"{root / list_file}: no usable lines")
    if classes is None:
        classes = tuple(str(label) for label in range(max(r.label for r in (*train, *validation)) + 1))
    return Rawframes(classes, train, validation, rawframes_layout(root, config), _fingerprint(root, config))


def _fingerprint(root: Path, config: RawframesConfig) -> str:
    """Hash of the list and classes files, of the listing of the folder holding the video folders and of the
    templates.

    That folder is the dataset folder itself for ``{video}/...`` templates; listing it is one directory scan that
    notices video folders added, removed or renamed without looking inside them (the lists' frame counts stand for
    their content). The templates enter because they choose which images are read.
    """
    files = [config.train, config.validation, *([] if config.classes is None else [config.classes])]
    videos_parent = next(iter(string.Formatter().parse(config.frames)))[0].rpartition("/")[0]
    listed = dataset_fingerprint(root, files, videos_parent)
    layout = [listed, config.frames, config.flow, config.start_index]
    return hashlib.sha256(json.dumps(layout).encode()).hexdigest()
