"""Reader of PySlowFast / LFB frame lists (Charades): one row per frame with that frame's classes, turned into
multi-label records whose actions are the runs of consecutive frames carrying each class."""

import logging
from itertools import groupby
from pathlib import Path

from mml.data.charades import Action, MultiLabelRecord, read_text
from mml.errors import DataError

logger = logging.getLogger(__name__)

HEADER = ("original_vido_id", "video_id", "frame_id", "path", "labels")  # sic: PySlowFast asserts "vido"


def read_slowfast_frame_list(
    path: Path, num_classes: int, frames_root: Path, fps: float = 24.0
) -> tuple[MultiLabelRecord, ...]:
    """The videos of a space-separated frame list, in the order of their first row.

    Rows ``original_vido_id video_id frame_id path labels`` (labels a quoted comma list such as ``"147,148"`` or
    ``""``) are grouped by `original_vido_id`. Frame ids count from 0, as in PySlowFast's lists: each maximal run of
    consecutive frame ids carrying a class becomes ``Action(class, first / fps, (last + 1) / fps)``; the video
    lasts ``rows / fps`` seconds and its frames lie in ``frames_root / <video id>``. A malformed row (wrong field
    count, non-integer or repeated frame id, non-integer label or one outside 0..num_classes-1) is reported with a
    warning naming the file and the line, and its video is skipped.

    Raises:
        DataError: The file is missing, unreadable or lacks the header.
    """
    if not fps > 0:
        raise ValueError(f"fps must be positive, got {fps}")
    lines = read_text(path).splitlines()
    if not lines or tuple(lines[0].split()) != HEADER:
        found = lines[0] if lines else ""
        raise DataError(f"{path}: header is not {' '.join(HEADER)!r}: {found!r}")
    videos: dict[str, dict[int, set[int]]] = {}
    skipped: set[str] = set()
    for number, line in enumerate(lines[1:], start=2):
        row = line.split()
        if not row:
            continue
        frames = videos.setdefault(row[0], {})
        parsed = _parse_row(row, num_classes)
        if not isinstance(parsed, str) and parsed[0] in frames:
            parsed = f"frame_id {parsed[0]} already listed for this video"
        if isinstance(parsed, str):
            logger.warning(f"{path}: line {number}: skipping video {row[0]}: {parsed}")
            skipped.add(row[0])
            continue
        frame, labels = parsed
        frames[frame] = labels
    return tuple(
        MultiLabelRecord(video, frames_root / video, _actions(frames, fps), len(frames) / fps)
        for video, frames in videos.items()
        if video not in skipped
    )


def _parse_row(row: list[str], num_classes: int) -> tuple[int, set[int]] | str:
    """(frame id, classes) of a row's fields, or the reason they cannot be used."""
    if len(row) != len(HEADER):
        return f"expected {len(HEADER)} fields ({' '.join(HEADER)}), got {len(row)}"
    try:
        frame = int(row[2])
    except ValueError:
        return f"frame_id {row[2]!r} is not an integer"
    if frame < 0:
        return f"frame_id {frame} is negative"
    text = row[4].replace('"', "")
    try:
        labels = {int(label) for label in text.split(",")} if text else set()
    except ValueError:
        return f"labels {row[4]} are not a comma list of class indices"
    outside = sorted(label for label in labels if not 0 <= label < num_classes)
    if outside:
        return f"label(s) {', '.join(map(str, outside))} outside 0..{num_classes - 1}"
    return frame, labels


def _actions(frames: dict[int, set[int]], fps: float) -> tuple[Action, ...]:
    """One action per class and maximal run of consecutive frame ids carrying it, ordered by start then class."""
    actions = []
    for label in sorted(set().union(*frames.values())):
        carrying = sorted(frame for frame, labels in frames.items() if label in labels)
        for _, run in groupby(enumerate(carrying), key=lambda pair: pair[1] - pair[0]):
            ids = [frame for _, frame in run]
            actions.append(Action(label, ids[0] / fps, (ids[-1] + 1) / fps))
    return tuple(sorted(actions, key=lambda action: (action.start, action.label)))
