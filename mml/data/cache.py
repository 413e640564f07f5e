"""Decoded-frame and optical-flow caches: each video decoded once and its TV-L1 flow computed once.

Frames are stored as uint8 (N, H, W, 3) `.npy` files resized to the recipe's short side, flow as quantised uint8
(N - 1, H, W, 2) `.npy` files computed from those frames. Every file is written to a temporary name and renamed, so
a killed preparation never leaves a half-written entry, and a rerun continues with what is missing.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from tqdm import tqdm

from mml.data.flow import tvl1_flow
from mml.data.sthv2 import VideoRecord
from mml.data.video import decode_video
from mml.errors import DataError


def _save_npy(path: Path, array: np.ndarray) -> None:
    temporary = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with open(temporary, "wb") as handle:
        np.save(handle, array)
    os.replace(temporary, path)


class FrameCache:
    """Frames and flow of one dataset at one short side, under `root`."""

    def __init__(self, root: Path, short_side: int) -> None:
        self.root = Path(root) / f"short{short_side}"
        self.short_side = short_side

    def frames_path(self, record: VideoRecord) -> Path:
        return self.root / "frames" / f"{record.video_id}.npy"

    def flow_path(self, record: VideoRecord) -> Path:
        return self.root / "flow" / f"{record.video_id}.npy"

    def frames(self, record: VideoRecord) -> np.ndarray:
        """The cached RGB frames (N, H, W, 3) uint8, memory-mapped copy-on-write (the file is never modified)."""
        return np.load(self.frames_path(record), mmap_mode="c")

    def flow(self, record: VideoRecord) -> np.ndarray:
        """The cached quantised TV-L1 flow (N - 1, H, W, 2) uint8, memory-mapped."""
        return np.load(self.flow_path(record), mmap_mode="c")

    def _prepare_one(self, record: VideoRecord, with_flow: bool) -> str | None:
        """Decode one video (and compute its flow) if not cached yet; returns an error line instead of raising."""
        try:
            frames_path = self.frames_path(record)
            if frames_path.is_file():
                frames = self.frames(record)
            else:
                frames = decode_video(record.path, self.short_side)
                _save_npy(frames_path, frames)
            if with_flow and not self.flow_path(record).is_file():
                if len(frames) < 2:
                    raise DataError(f"{record.path}: {len(frames)} frame(s), optical flow needs at least 2")
                _save_npy(self.flow_path(record), tvl1_flow(np.asarray(frames)))
        except DataError as err:
            return str(err)
        return None

    def missing(self, records: Sequence[VideoRecord], with_flow: bool) -> list[VideoRecord]:
        """The records whose frames (or flow, when `with_flow`) are not cached yet."""
        return [
            r for r in records if not self.frames_path(r).is_file() or (with_flow and not self.flow_path(r).is_file())
        ]

    def prepare(self, records: Sequence[VideoRecord], with_flow: bool, workers: int, progress: bool = True) -> None:
        """Fill the cache for `records` with `workers` processes; raise one DataError listing failed videos.

        Videos that succeed stay cached even when others fail, so nothing computed is lost.
        """
        todo = self.missing(records, with_flow)
        if not todo:
            return
        (self.root / "frames").mkdir(parents=True, exist_ok=True)
        (self.root / "flow").mkdir(parents=True, exist_ok=True)
        label = "decoding + TV-L1 flow" if with_flow else "decoding"
        bar = tqdm(total=len(todo), desc=f"cache: {label}", unit="video", disable=not progress)
        errors: list[str] = []
        if workers > 1:
            # Spawned, not forked: forking a process whose torch / OpenMP threads already ran can deadlock.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(workers, mp_context=context, initializer=_single_threaded) as pool:
                for error in pool.map(self._prepare_one, todo, [with_flow] * len(todo), chunksize=4):
                    errors += [error] if error else []
                    bar.update()
        else:
            for record in todo:
                error = self._prepare_one(record, with_flow)
                errors += [error] if error else []
                bar.update()
        bar.close()
        if errors:
            more = f" (and {len(errors) - 1} more videos)" if len(errors) > 1 else ""
            raise DataError(f"{errors[0]}{more}")


def _single_threaded() -> None:
    """Worker initialiser: one OpenCV / torch thread per process, so N workers use N cores."""
    import cv2
    import torch

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
