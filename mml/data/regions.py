"""Which parts of a video carry its class's motion: the informative regions of a generated long dataset (AdaMML's
setup, `mml.data.synthetic` with `regions` > 1), read from its `regions.json`, and whether a test segment lies in
one, so a report can tell whether a policy runs a modality where the action is."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mml.data.generated import MARKER_NAME
from mml.data.synthetic import REGIONS_FILE
from mml.errors import DataError


@dataclass(frozen=True)
class InformativeRegions:
    """A video is `count` equal regions; `informative` maps each video id to the regions with its class's motion."""

    count: int
    informative: Mapping[str, tuple[int, ...]]
    source: Path  # the regions.json they were read from, for messages

    def flags(self, video_id: str, positions: np.ndarray) -> np.ndarray:
        """Whether each position in the video (a fraction of its frames, in [0, 1)) lies in an informative region.

        Raises:
            DataError: the video has no entry in `regions.json`.
        """
        if video_id not in self.informative:
            raise DataError(f"{self.source}: no informative regions listed for video {video_id}")
        regions = np.minimum((positions * self.count).astype(np.int64), self.count - 1)
        return np.isin(regions, self.informative[video_id])


def read_informative_regions(root: Path) -> InformativeRegions | None:
    """The informative regions of the generated dataset in `root`, or None when it has no `regions.json` (one-region
    videos, a user's dataset).

    Raises:
        DataError: `regions.json` or the generator's marker beside it is unreadable or malformed.
    """
    path = root / REGIONS_FILE
    if not path.is_file():
        return None
    marker = root / MARKER_NAME
    try:
        listed, settings = json.loads(path.read_text()), json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: unreadable informative regions ({error})") from error
    count = settings.get("regions") if isinstance(settings, dict) else None
    if not isinstance(count, int) or count < 2:
        raise DataError(f"{marker}: no region count (regions >= 2) for the informative regions of {path}")
    if not isinstance(listed, dict):
        raise DataError(f"{path}: expected an object of video id -> region indices")
    informative: dict[str, tuple[int, ...]] = {}
    for video_id, indices in listed.items():
        if not isinstance(indices, list) or not all(isinstance(i, int) and 0 <= i < count for i in indices):
            raise DataError(f"{path}: video {video_id}: expected region indices in 0..{count - 1}, got {indices!r}")
        informative[video_id] = tuple(indices)
    return InformativeRegions(count, informative, path)
