"""Informative regions of a generated long dataset: reading `regions.json` and flagging test positions."""

import json
from pathlib import Path

import numpy as np
import pytest

from mml.data.generated import MARKER_NAME
from mml.data.regions import read_informative_regions
from mml.data.synthetic import REGIONS_FILE
from mml.errors import DataError


def _dataset(root: Path, regions: object, marker: object) -> Path:
    root.mkdir(exist_ok=True)
    (root / REGIONS_FILE).write_text(json.dumps(regions))
    (root / MARKER_NAME).write_text(json.dumps(marker))
    return root


def test_positions_are_flagged_by_the_equal_region_they_fall_in(tmp_path: Path) -> None:
    found = read_informative_regions(_dataset(tmp_path, {"7": [1, 4]}, {"regions": 5}))
    assert found is not None and found.count == 5
    positions = np.array([0.0, 0.19, 0.2, 0.39, 0.4, 0.79, 0.8, 0.999])
    expected = [False, False, True, True, False, False, True, True]
    assert found.flags("7", positions).tolist() == expected


def test_a_dataset_without_regions_has_none(tmp_path: Path) -> None:
    assert read_informative_regions(tmp_path) is None


def test_a_video_missing_from_the_regions_is_named(tmp_path: Path) -> None:
    found = read_informative_regions(_dataset(tmp_path, {"7": [0]}, {"regions": 2}))
    assert found is not None
    with pytest.raises(DataError, match=r"regions\.json: no informative regions listed for video 8"):
        found.flags("8", np.array([0.5]))


@pytest.mark.parametrize(
    ("regions", "marker", "message"),
    [
        ({"7": [5]}, {"regions": 5}, r"regions\.json: video 7: expected region indices in 0\.\.4, got \[5\]"),
        ({"7": "1"}, {"regions": 5}, r"regions\.json: video 7: expected region indices"),
        ([1, 2], {"regions": 5}, r"regions\.json: expected an object of video id -> region indices"),
        ({"7": [1]}, {"frames": 8}, r"\.mml-synthetic\.json: no region count"),
    ],
)
def test_malformed_regions_are_refused_with_the_file(tmp_path: Path, regions: object, marker: object, message: str):
    with pytest.raises(DataError, match=message):
        read_informative_regions(_dataset(tmp_path, regions, marker))


def test_unreadable_regions_are_refused_with_the_file(tmp_path: Path) -> None:
    _dataset(tmp_path, {}, {"regions": 2})
    (tmp_path / REGIONS_FILE).write_text("{not json")
    with pytest.raises(DataError, match=r"regions\.json: unreadable informative regions"):
        read_informative_regions(tmp_path)
