"""Tests of the PySlowFast / LFB frame-list reader (Charades)."""

import logging
import re
import warnings
from pathlib import Path

import pytest

from mml.data.charades import Action, MultiLabelRecord
from mml.data.frame_lists import read_slowfast_frame_list
from mml.errors import DataError

HEADER = "original_vido_id video_id frame_id path labels"
FPS = 24.0
FRAMES_ROOT = Path("/data/Charades_v1_rgb")


def _row(video: str, number: int, frame: int, labels: str) -> str:
    return f'{video} {number} {frame} {video}/{video}-{frame + 1:06d}.jpg "{labels}"'


# Video ZZZ comes first (file order is kept); XYZ lists its frames out of order and has a gap after frame 2.
ROWS = [
    _row("ZZZ", 0, 0, "147"),
    _row("ZZZ", 0, 1, "147,148"),
    _row("ZZZ", 0, 2, "148"),
    _row("ZZZ", 0, 3, ""),
    _row("ZZZ", 0, 4, "147"),
    _row("ZZZ", 0, 5, ""),
    _row("AAA", 1, 0, ""),
    _row("AAA", 1, 1, ""),
    _row("XYZ", 2, 1, "3"),
    _row("XYZ", 2, 0, "3"),
    _row("XYZ", 2, 2, "3,0"),
    _row("XYZ", 2, 4, "3"),
]


def _write(tmp_path: Path, rows: list[str], header: str = HEADER) -> Path:
    path = tmp_path / "train.csv"
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def _read(path: Path) -> tuple[MultiLabelRecord, ...]:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return read_slowfast_frame_list(path, num_classes=157, frames_root=FRAMES_ROOT, fps=FPS)


def test_frame_labels_become_runs_of_consecutive_frames(tmp_path: Path) -> None:
    records = _read(_write(tmp_path, ROWS))
    assert records == (
        MultiLabelRecord(
            "ZZZ",
            FRAMES_ROOT / "ZZZ",
            (Action(147, 0 / FPS, 2 / FPS), Action(148, 1 / FPS, 3 / FPS), Action(147, 4 / FPS, 5 / FPS)),
            6 / FPS,
        ),
        MultiLabelRecord("AAA", FRAMES_ROOT / "AAA", (), 2 / FPS),
        MultiLabelRecord(
            "XYZ",
            FRAMES_ROOT / "XYZ",
            (Action(3, 0 / FPS, 3 / FPS), Action(0, 2 / FPS, 3 / FPS), Action(3, 4 / FPS, 5 / FPS)),
            4 / FPS,
        ),
    )


def test_video_labels_are_the_union_of_frame_labels(tmp_path: Path) -> None:
    union: dict[str, set[int]] = {}
    for row in ROWS:
        video, labels = row.split()[0], row.split()[-1].strip('"')
        union.setdefault(video, set()).update(int(label) for label in labels.split(",") if label)
    records = _read(_write(tmp_path, ROWS))
    assert {record.video_id: record.labels for record in records} == {
        video: tuple(sorted(labels)) for video, labels in union.items()
    }


def test_clip_labels_follow_the_frames(tmp_path: Path) -> None:
    zzz = _read(_write(tmp_path, ROWS))[0]
    # inside frame 3, which carries no class, then inside frame 4, which carries 147
    assert zzz.labels_between(3.1 / FPS, 3.9 / FPS) == ()
    assert zzz.labels_between(4.1 / FPS, 4.9 / FPS) == (147,)


@pytest.mark.parametrize("header", ["", "original_video_id video_id frame_id path labels", 'ZZZ 0 0 a.jpg ""'])
def test_bad_header_is_an_error_naming_the_file(tmp_path: Path, header: str) -> None:
    path = _write(tmp_path, ROWS, header=header)
    with pytest.raises(DataError, match=re.escape(f"{path}: header is not {HEADER!r}")):
        read_slowfast_frame_list(path, 157, FRAMES_ROOT)


def test_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'val.csv'}: file not found")):
        read_slowfast_frame_list(tmp_path / "val.csv", 157, FRAMES_ROOT)


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        (
            'BAD 3 0 BAD/BAD-000001.jpg "1" extra',
            "expected 5 fields (original_vido_id video_id frame_id path labels), got 6",
        ),
        ("BAD 3 0 BAD/BAD-000001.jpg", "expected 5 fields (original_vido_id video_id frame_id path labels), got 4"),
        ('BAD 3 one BAD/BAD-000001.jpg "1"', "frame_id 'one' is not an integer"),
        ('BAD 3 -1 BAD/BAD-000001.jpg "1"', "frame_id -1 is negative"),
        ('BAD 3 0 BAD/BAD-000001.jpg "1,x"', 'labels "1,x" are not a comma list of class indices'),
        ('BAD 3 0 BAD/BAD-000001.jpg "157,2,-1"', "label(s) -1, 157 outside 0..156"),
        ('BAD 3 1 BAD/BAD-000002.jpg "1"', "frame_id 1 already listed for this video"),
    ],
)
def test_malformed_row_skips_its_video_with_file_and_line(
    tmp_path: Path, row: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    good_bad = [_row("BAD", 3, 0, "1"), _row("BAD", 3, 1, "1")]
    path = _write(tmp_path, [*ROWS[:6], *good_bad, row, _row("BAD", 3, 2, "")])
    with caplog.at_level(logging.WARNING, "mml.data.frame_lists"):
        records = read_slowfast_frame_list(path, 157, FRAMES_ROOT, fps=FPS)
    assert caplog.messages == [f"{path}: line 10: skipping video BAD: {reason}"]
    assert [record.video_id for record in records] == ["ZZZ"]


def test_fps_must_be_positive(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fps must be positive"):
        read_slowfast_frame_list(_write(tmp_path, ROWS), 157, FRAMES_ROOT, fps=0.0)
