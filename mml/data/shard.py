"""Splitting a dataset's preparation over independent processes (`mml prepare --shard I/N`, e.g. a SLURM job array).

Video `v` belongs to shard `sha256(v) mod N`: the split depends on nothing but the video's id and N, so every array
task computes the same split whatever the order of the annotations, the machine, the Python hash seed or the other
videos of the dataset, and a video is in exactly one shard. Each shard writes its own report beside the dataset's
(`prepare-short32.shard-1-of-3.json`); the plain preparation afterwards reads the shards' reports to report the
videos that failed in a shard without trying them again.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

from mml.errors import DataError, MMLError

SHARD_FORMAT = re.compile(r"([0-9]+)/([0-9]+)")


@dataclass(frozen=True)
class Shard:
    """Shard `index` of `count` (0 <= index < count)."""

    index: int
    count: int

    def __post_init__(self) -> None:
        problem = _problem(self.index, self.count)
        if problem:
            raise MMLError(f"shard {self.index}/{self.count}: {problem}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """The command line's `--shard I/N`, e.g. `3/16`; raises MMLError naming the option and what is wrong."""
        match = SHARD_FORMAT.fullmatch(text)
        problem = _problem(int(match[1]), int(match[2])) if match else "expected I/N with 0 <= I < N, e.g. 0/16"
        if problem or not match:
            raise MMLError(f"--shard {text!r}: {problem}")
        return cls(int(match[1]), int(match[2]))

    def owns(self, video_id: str) -> bool:
        """Whether `video_id` is prepared by this shard."""
        return int.from_bytes(hashlib.sha256(video_id.encode()).digest()[:8], "big") % self.count == self.index

    def report_path(self, report: Path) -> Path:
        """This shard's report file beside the dataset's `report`."""
        return report.with_name(f"{report.stem}.shard-{self.index}-of-{self.count}{report.suffix}")


def _problem(index: int, count: int) -> str | None:
    """What is wrong with shard `index` of `count`, or None."""
    if count < 1:
        return "the number of shards N must be at least 1"
    if not 0 <= index < count:
        return f"the shard index I must be in 0..{count - 1}"
    return None


def shard_failures(report: Path, with_flow: bool) -> dict[str, str]:
    """The videos that failed in the shards whose reports lie beside `report`, with their reasons (only reports of a
    preparation with the same `with_flow`: a video may fail for its flow alone)."""
    failures: dict[str, str] = {}
    for path in sorted(report.parent.glob(f"{report.stem}.shard-*-of-*{report.suffix}")):
        try:
            content = json.loads(path.read_text())
            shard_with_flow, skipped = content["with_flow"], content["skipped"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise DataError(f"{path}: not a shard's preparation report ({type(error).__name__}: {error})") from None
        if not isinstance(skipped, dict) or not all(isinstance(v, str) for v in skipped.values()):
            raise DataError(f"{path}: not a shard's preparation report (skipped is not a map of reasons)")
        if shard_with_flow == with_flow:
            failures.update(skipped)
    return failures
