"""TSM-style rawframe datasets: frames (and flow) already extracted by other tools, listed in
``<frame folder> <num_frames> <label>`` files (TSM's ``*_videofolder.txt``, mmaction2's ``*_list_rawframes.txt``),
with an optional ``category.txt`` of class names, one per line."""

from __future__ import annotations

import hashlib
import json
import string
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path, PurePath

from mml.data.charades import read_text
from mml.data.frames import FolderLayout
from mml.data.sthv2 import VideoRecord, dataset_fingerprint
from mml.errors import DataError, SpecError

_FRAME_FIELDS = ("video", "index")
_FLOW_FIELDS = ("video", "index", "axis")


@dataclass(frozen=True)
class RawframesConfig:
    """Where a rawframe dataset's lists, classes and images lie, relative to the dataset folder.

    `frames` and `flow` are `FolderLayout` templates; the defaults are the names of TSM's flow lists and of
    mmaction2's and denseflow's extraction (``img_00001.jpg``, ``flow_x_00001.jpg``), counted from `start_index`.
    Without a `classes` file the classes are "0".."C-1", C being the largest label of the lists plus one.
    """

    train: str
    validation: str
    classes: str | None = None
    frames: str = "{video}/img_{index:05d}.jpg"
    flow: str = "{video}/flow_{axis}_{index:05d}.jpg"
    start_index: int = 1

    def __post_init__(self) -> None:
        for key in ("train", "validation", "classes", "frames", "flow"):
            value = getattr(self, key)
            if key == "classes" and value is None:
                continue
            if not isinstance(value, str) or not value:
                raise ValueError(f"{key}: expected a non-empty string, got {value!r}")
            if PurePath(value).is_absolute():
                raise ValueError(f"{key}: {value!r} must be relative to the dataset folder")
        for key, allowed in (("frames", _FRAME_FIELDS), ("flow", _FLOW_FIELDS)):
            reason = _template_error(getattr(self, key), allowed)
            if reason:
                raise ValueError(f"{key}: {reason}")
        if not isinstance(self.start_index, int) or isinstance(self.start_index, bool) or self.start_index < 0:
            raise ValueError(f"start_index: expected a non-negative integer, got {self.start_index!r}")

    @classmethod
    def from_mapping(cls, mapping: object, where: str) -> RawframesConfig:
        """The config of a TOML table (a profile's ``[<profile>.dataset] rawframes = {...}``).

        Raises:
            SpecError: ``"{where}: key: reason"`` for a missing, unknown or invalid key.
        """
        if not isinstance(mapping, Mapping):
            raise SpecError(f"{where}: expected a table, got {type(mapping).__name__} {mapping!r}")
        known = [field.name for field in fields(cls)]
        for key in mapping:
            if key not in known:
                raise SpecError(f"{where}: {key}: unknown key (known: {', '.join(known)})")
        for key in ("train", "validation"):
            if key not in mapping:
                raise SpecError(f"{where}: {key}: missing")
        try:
            return cls(**mapping)
        except ValueError as error:
            raise SpecError(f"{where}: {error}") from None


def _template_error(template: str, allowed: tuple[str, ...]) -> str | None:
    """Why `template` is not a usable file template with exactly the fields `allowed`, or None."""
    try:
        used = {field for _, field, _, _ in string.Formatter().parse(template) if field is not None}
        name_fields = {field for _, field, _, _ in string.Formatter().parse(PurePath(template).name)}
    except ValueError as error:
        return f"template {template!r} is malformed ({error})"
    if used != set(allowed):
        return f"template {template!r} must use exactly the fields {', '.join(f'{{{f}}}' for f in allowed)}"
    if "index" not in name_fields:
        return f"template {template!r} must have {{index}} in its file name, not in a folder"
    try:
        template.format(video="v", index=1, axis="x")
    except ValueError as error:
        return f"template {template!r} is malformed ({error})"
    return None


def read_rawframe_list(root: Path, list_file: str, num_classes: int | None) -> tuple[VideoRecord, ...]:
    """The videos of a ``<frame folder> <num_frames> <label>`` list (whitespace-separated, blank lines ignored).

    Each record's id is its folder as listed and its path ``root / folder``; the listed frame count is only checked
    to be positive (the frames are counted on disk when read). A line that is malformed, has no frames, a label
    outside 0..num_classes-1 (or a negative one when `num_classes` is None) or repeats a folder is skipped with a
    warning naming the file and the line.

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
            warnings.warn(f"{path}: line {number}: skipping: {entry}", stacklevel=2)
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
    videos_parent = next(string.Formatter().parse(config.frames))[0].rpartition("/")[0]
    listed = dataset_fingerprint(root, files, videos_parent)
    layout = [listed, config.frames, config.flow, config.start_index]
    return hashlib.sha256(json.dumps(layout).encode()).hexdigest()
