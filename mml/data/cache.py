"""Where training reads frames and flow from: caches filled once from the videos, or frame folders a user has.

- `NpyCache`: packed uint8 arrays, one `.npy` per video and kind, read once (tiny synthetic videos).
- `JpegCache`: one folder of JPEG frames per video, short side fixed, and TV-L1 flow as 8-bit x/y greyscale JPEGs
  (±20 px), with denseflow's names (``img_00001.jpg``, ``flow_x_00001.jpg``), like the original TSM tooling.
- `FolderFrames`: frames (and flow) extracted beforehand, e.g. the official Charades download or a TSM-style
  rawframe folder, read as they are.

`prepare` fills a cache with N worker processes. Every entry is written under a temporary name and renamed into
place, so a killed preparation never leaves a half-written video that counts as done, and a rerun continues with
what is missing. A video that fails (missing, undecodable, truncated, no frames) is skipped with its reason; the
others still prepare. Several processes, on one host or several, may fill one (shared) cache at once: each video is
renamed into place by whichever finishes it first, and a process removes only the leftovers of dead processes of
its own host.
"""

from __future__ import annotations

import glob
import json
import multiprocessing
import shutil
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from tqdm import tqdm

from mml.atomic import atomic_file, orphaned, staging_folder, write_text
from mml.data.charades import MultiLabelRecord
from mml.data.flow_backend import OPENCV, FlowBackend
from mml.data.frames import FolderLayout, FrameSequence, JpegSequence, write_image
from mml.data.shard import Shard
from mml.data.sthv2 import VideoRecord
from mml.data.video import decode_video
from mml.errors import DataError, MMLError

Record = VideoRecord | MultiLabelRecord


class FrameSource(Protocol):
    """The frames and the quantised flow of each video of a dataset."""

    def frames(self, record: Record) -> FrameSequence: ...

    def flow(self, record: Record) -> FrameSequence: ...

    def ready(self, record: Record, with_flow: bool) -> int | None:
        """The video's frame count if its frames (and flow) are readable without any work now, else None."""
        ...

    def prepare_one(self, record: Record, with_flow: bool) -> tuple[int, bool]:
        """Make the video's frames (and flow) readable; (its frame count, whether anything was written now).

        Raises DataError naming the file and the reason when it cannot."""
        ...


class NpyCache:
    """Frames (N, H, W, 3) and flow (N - 1, H, W, 2) of each video as uint8 `.npy` files, at one short side.

    Each file is read once and kept in memory (read-only) for the life of this object: these are the tiny videos of
    the synthetic datasets (tens of MB in all), read again every epoch, where opening the file cost as much as
    building the clip."""

    def __init__(self, root: Path, short_side: int, flow_backend: FlowBackend = OPENCV) -> None:
        self.root = Path(root) / f"short{short_side}"
        self.short_side = short_side
        self.flow_backend = flow_backend
        self._arrays: dict[Path, np.ndarray] = {}

    def _path(self, record: Record, kind: str) -> Path:
        return self.root / kind / f"{record.video_id}.npy"

    def _array(self, path: Path) -> np.ndarray:
        if path not in self._arrays:
            array = np.load(path)
            array.flags.writeable = False
            self._arrays[path] = array
        return self._arrays[path]

    def frames(self, record: Record) -> np.ndarray:
        """The cached RGB frames."""
        return self._array(self._path(record, "frames"))

    def flow(self, record: Record) -> np.ndarray:
        """The cached quantised TV-L1 flow."""
        return self._array(self._path(record, "flow"))

    def ready(self, record: Record, with_flow: bool) -> int | None:
        frames_path, flow_path = self._path(record, "frames"), self._path(record, "flow")
        if frames_path.is_file() and (flow_path.is_file() or not with_flow):
            return len(np.load(frames_path, mmap_mode="r"))
        return None

    def prepare_one(self, record: Record, with_flow: bool) -> tuple[int, bool]:
        count = self.ready(record, with_flow)
        if count is not None:
            return count, False
        frames_path, flow_path = self._path(record, "frames"), self._path(record, "flow")
        frames = decode_video(record.path, self.short_side)
        if with_flow and not flow_path.is_file():
            _save_npy(flow_path, _flow_of(record, frames, self.flow_backend))
        if not frames_path.is_file():
            _save_npy(frames_path, frames)
        return len(frames), True


class FolderFrames:
    """Frames and flow already extracted to JPEG folders (`layout`), resized on reading to `short_side` if given."""

    def __init__(self, layout: FolderLayout, short_side: int | None) -> None:
        self.layout, self.short_side = layout, short_side
        self._counts: dict[tuple[str, bool], int] = {}

    def _count(self, record: Record, flow: bool) -> int:
        key = (record.video_id, flow)
        if key not in self._counts:
            self._counts[key] = self.layout.count(record.video_id, flow)
        return self._counts[key]

    def frames(self, record: Record) -> JpegSequence:
        return self.layout.frame_sequence(record.video_id, self._count(record, False), self.short_side)

    def flow(self, record: Record) -> JpegSequence:
        return self.layout.flow_sequence(record.video_id, self._count(record, True), self.short_side)

    def ready(self, record: Record, with_flow: bool) -> int | None:
        try:
            return self.prepare_one(record, with_flow)[0]
        except DataError:
            return None

    def prepare_one(self, record: Record, with_flow: bool) -> tuple[int, bool]:
        """Check the video has frames (and flow fields) and that its first frame reads; writes nothing."""
        for flow in (False, True) if with_flow else (False,):
            kind = "flow" if flow else "frame"
            first = (
                self.layout.flow_files(record.video_id, 0)[0] if flow else self.layout.frame_file(record.video_id, 0)
            )
            if self._count(record, flow) == 0:
                raise DataError(f"{first.parent}: no {kind} images (expected names like {first.name})")
            (self.flow if flow else self.frames)(record)[np.array([0])]
        return self._count(record, False), False


JPEG_CACHE_LAYOUT = {"frames": "frames/{video}/img_{index:05d}.jpg", "flow": "flow/{video}/flow_{axis}_{index:05d}.jpg"}


class JpegCache(FolderFrames):
    """A `FolderFrames` we fill ourselves from the videos: frames at `short_side`, TV-L1 flow computed from them by
    `flow_backend` (all of a video's fields in memory, then written into place at once)."""

    def __init__(self, root: Path, short_side: int, flow_backend: FlowBackend = OPENCV) -> None:
        layout = FolderLayout(Path(root) / f"jpeg{short_side}", JPEG_CACHE_LAYOUT["frames"], JPEG_CACHE_LAYOUT["flow"])
        super().__init__(layout, None)
        self.decode_side = short_side
        self.flow_backend = flow_backend

    def _folder(self, record: Record, kind: str) -> Path:
        return self.layout.root / kind / record.video_id

    def ready(self, record: Record, with_flow: bool) -> int | None:
        frames_done, flow_done = self._folder(record, "frames").is_dir(), self._folder(record, "flow").is_dir()
        return self._count(record, False) if frames_done and (flow_done or not with_flow) else None

    def prepare_one(self, record: Record, with_flow: bool) -> tuple[int, bool]:
        count = self.ready(record, with_flow)
        if count is not None:
            return count, False
        frames_done, flow_done = self._folder(record, "frames").is_dir(), self._folder(record, "flow").is_dir()
        frames = decode_video(record.path, self.decode_side)
        if not frames_done:
            self._write_folder(
                record, "frames", [(self.layout.frame_file(record.video_id, i), f) for i, f in enumerate(frames)]
            )
        if with_flow and not flow_done:
            flow = _flow_of(record, frames, self.flow_backend)
            images = [
                (path, field[..., axis])
                for i, field in enumerate(flow)
                for axis, path in enumerate(self.layout.flow_files(record.video_id, i))
            ]
            self._write_folder(record, "flow", images)
        return len(frames), True

    def _write_folder(self, record: Record, kind: str, images: list[tuple[Path, np.ndarray]]) -> None:
        """Write a video's images into a staging folder, then rename it into place (the rename marks it done; if
        another process finished the same video first, its folder is kept)."""
        final = self._folder(record, kind)
        _remove_stale_staging(final)
        with staging_folder(final, replace=False) as staging:
            for path, image in images:
                write_image(staging / path.name, image)


def _remove_stale_staging(final: Path) -> None:
    """Delete the staging folders of `final` that killed processes of this host left (`mml.atomic.orphaned`: their
    names carry pid and host). A pid means something only on the host that wrote it, so a folder of another host (a
    cache shared by several nodes) is left alone, and so are those of running processes."""
    for stale in final.parent.glob(f".{glob.escape(final.stem)}.*.partial*"):
        if orphaned(stale):
            shutil.rmtree(stale, ignore_errors=True)


def _flow_of(record: Record, frames: np.ndarray, backend: FlowBackend) -> np.ndarray:
    """The video's quantised flow. Frames unfit for flow raise DataError (the video is skipped); a failure of the
    torch backend itself (e.g. out of device memory) raises MMLError, which stops the preparation: a rerun resumes."""
    if len(frames) < 2:
        raise DataError(f"{record.path}: {len(frames)} frame(s), optical flow needs at least 2")
    try:
        return backend.flow(frames)
    except ValueError as error:
        raise DataError(f"{record.path}: {error}") from None
    except RuntimeError as error:
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise MMLError(f"{record.path}: TV-L1 flow ({backend.name} on {backend.device}) failed: {reason}") from None


def _save_npy(path: Path, array: np.ndarray) -> None:
    """Save `array` as `path` atomically."""
    with atomic_file(path) as temporary, open(temporary, "wb") as handle:
        np.save(handle, array)


@dataclass
class PrepareReport:
    """What a preparation did: each usable video's frame count, and each skipped video's reason."""

    frames: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    newly: int = 0

    def short(self, needed: int) -> list[str]:
        """The videos with fewer than `needed` frames (their last frame is repeated when sampled)."""
        return [video for video, count in self.frames.items() if count < needed]

    def write(self, path: Path, needed: int, shard: Shard | None = None, with_flow: bool = True) -> None:
        """Save the report as JSON (written atomically); a shard's report also says which shard it is and whether
        flow was prepared (`mml.data.shard.shard_failures` reads it)."""
        header = {} if shard is None else {"shard": f"{shard.index}/{shard.count}", "with_flow": with_flow}
        content = {
            **header,
            "prepared": len(self.frames),
            "skipped": dict(sorted(self.skipped.items())),
            "shorter_than_a_sample": {"frames_needed": needed, "videos": sorted(self.short(needed))},
            "frames": dict(sorted(self.frames.items())),
        }
        write_text(path, json.dumps(content, indent=1) + "\n")

    def lines(self, needed: int) -> list[str]:
        """One-line messages: the counts, the first skipped videos with their reasons, the short videos."""
        out = [f"{len(self.frames)} videos ready ({self.newly} prepared now), {len(self.skipped)} skipped"]
        out += [f"skipped {video}: {reason}" for video, reason in list(self.skipped.items())[:5]]
        if len(self.skipped) > 5:
            out.append(f"... and {len(self.skipped) - 5} more skipped videos")
        short = self.short(needed)
        if short:
            out.append(
                f"{len(short)} videos have fewer than the {needed} frames a sample needs (e.g. {short[0]}): their last "
                "frame is repeated, as the original code does"
            )
        return out


def prepare(
    source: FrameSource,
    records: Sequence[Record],
    with_flow: bool,
    workers: int,
    progress: bool = True,
    failed: Mapping[str, str] | None = None,
) -> PrepareReport:
    """Make every video of `records` readable from `source` (decoding it and computing its flow if `source` is a
    cache), with `workers` processes; a video that fails is skipped with its reason, nothing computed is lost.

    `failed` maps videos known to fail (in a shard's preparation) to their reason: unless such a video is ready by
    now, it is skipped with that reason without another try."""
    report, failed = PrepareReport(), failed or {}
    todo: list[Record] = []
    for record in records:
        if record.video_id in failed and source.ready(record, with_flow) is None:
            report.skipped[record.video_id] = failed[record.video_id]
        else:
            todo.append(record)
    label = "frames + TV-L1 flow" if with_flow else "frames"
    bar = tqdm(total=len(todo), desc=f"prepare: {label}", unit="video", disable=not progress)
    args = [(source, record, with_flow) for record in todo]
    if workers > 1:
        # Spawned, not forked: forking a process whose torch / OpenMP threads already ran can deadlock.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_threaded) as pool:
            results = pool.map(_prepare_one, args, chunksize=4)
            for record, result in zip(todo, results):
                _record(report, record, result)
                bar.update()
    else:
        for record, arg in zip(todo, args):
            _record(report, record, _prepare_one(arg))
            bar.update()
    bar.close()
    return report


def _prepare_one(arg: tuple[FrameSource, Record, bool]) -> tuple[int, bool] | str:
    """(frame count, whether anything was written) of one video, or the reason it is skipped."""
    source, record, with_flow = arg
    try:
        return source.prepare_one(record, with_flow)
    except DataError as error:
        return str(error)


def _record(report: PrepareReport, record: Record, result: tuple[int, bool] | str) -> None:
    if isinstance(result, str):
        report.skipped[record.video_id] = result
    else:
        report.frames[record.video_id] = result[0]
        report.newly += result[1]


def _single_threaded() -> None:
    """Worker initialiser: one OpenCV / torch thread per process, so N workers use N cores."""
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
