"""The dataset section of a profile: which dataset, and for TSM-style rawframe datasets where their lists and
images lie. Checked on construction (`mml.validation`); the profile reader names the file."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from pathlib import PurePath

from mml import validation
from mml.errors import InvalidValue

DATASET_KINDS = ("synthetic-sthv2", "sthv2", "rawframes", "synthetic-charades", "charades")
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
            validation.require(
                isinstance(value, str) and bool(value), key, f"expected a non-empty string, got {value!r}"
            )
            validation.require(
                not PurePath(value).is_absolute(), key, f"{value!r} must be relative to the dataset folder"
            )
        for key, allowed in (("frames", _FRAME_FIELDS), ("flow", _FLOW_FIELDS)):
            reason = _template_error(getattr(self, key), allowed)
            validation.require(reason is None, key, str(reason))
        start = self.start_index
        ok = isinstance(start, int) and not isinstance(start, bool) and start >= 0
        validation.require(ok, "start_index", f"expected a non-negative integer, got {start!r}")


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


@dataclass(frozen=True)
class DatasetConfig:
    """The dataset of a profile: generated on first use (`synthetic-sthv2`, `synthetic-charades`) or a user's
    `--data DIR` (`sthv2`, `charades`, or `rawframes`: TSM-style frame folders listed in rawframe list files).

    `synthetic` holds the generator's settings (checked by the generator's config when the dataset is opened);
    `frame_lists` (Charades only) reads PySlowFast's `frame_lists/{train,val}.csv` instead of the official CSVs.
    """

    kind: str
    synthetic: dict[str, int] = field(default_factory=dict)
    rawframes: RawframesConfig | None = None
    frame_lists: bool = False

    def __post_init__(self) -> None:
        validation.one_of("kind", self.kind, DATASET_KINDS)
        if self.kind.startswith("synthetic") and not all(type(v) is int for v in self.synthetic.values()):
            raise InvalidValue("synthetic", "expected integer settings")
        validation.require(
            (self.rawframes is None) != (self.kind == "rawframes"),
            "rawframes",
            "needed by kind rawframes, and only by it",
        )
        validation.require(
            not self.frame_lists or self.kind == "charades",
            "frame_lists",
            "only the charades kind reads PySlowFast frame lists",
        )
