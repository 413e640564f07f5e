"""Pairs/s of the two TV-L1 backends on the same real-looking frame pairs, and how far apart their flows are.

The pairs (`--content`) are either consecutive frames of synthetic clips rendered at the size asked for, encoded
as VP9 and decoded again (`video`: compression noise, a moving object on a textured background), converted to grey
as `mml prepare` does, or smooth random textures moved by a smooth non-rigid flow (`texture`: everything moves).
Prints one line per figure: OpenCV's DualTVL1 on the CPU with `--threads` threads, our PyTorch TV-L1 on `--device`
in batches of `--batch` pairs, eager and / or compiled (`--modes`; timed after one warm-up batch on CUDA or when
compiling), the speed-up, the mean end-point error between the two flows and the issue's target (>= 100x OpenCV's
rate at a mean EPE <= 0.3 px).

Where OpenCV's contrib modules (`cv2.optflow`) are missing, as on the GPU machine, the OpenCV side comes from a
reference file made beforehand with `--save-reference` on a machine that has them: the pairs, OpenCV's flows and
its measured rate. The torch backend then runs on those very pairs, repeated up to `--pairs` for the timing.
`--profile` records one warp of one batch at full resolution per mode with torch.profiler (device kernel time
against the wall, kernel launches, scalar reads that make the host wait): where the time goes. `--json` writes
every figure.

    python benchmark/flow_throughput.py --device cpu --pairs 4 --batch 4 --threads 2
    python benchmark/flow_throughput.py --save-reference .whl/tvl1-reference.npz --pairs 8 --threads 2
    python benchmark/flow_throughput.py --device cuda --reference .whl/tvl1-reference.npz --pairs 256 --batch 64 \\
        --modes eager,compiled --profile --json flow.json
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.profiler import ProfilerActivity, profile

from mml.data.synthetic import SyntheticConfig, render_clip
from mml.data.tvl1_torch import TVL1Parameters, tvl1
from mml.data.video import decode_video, encode_video

MODES = {"eager": False, "compiled": True}
TARGET_SPEEDUP, TARGET_EPE = 100.0, 0.3


def decoded_pairs(count: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` pairs of consecutive uint8 grey frames of decoded synthetic clips, as two (count, H, W) stacks
    (several clips when one is too short; no pair spans two clips)."""
    firsts, seconds, clip = [], [], 0
    while sum(len(f) for f in firsts) < count:
        config = SyntheticConfig(height=height, width=width, frames=min(count + 1, 64), min_frames=2)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "clip.webm"
            encode_video(path, render_clip(config, "train", clip), fps=12)
            grey = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in decode_video(path)])
        firsts.append(grey[:-1])
        seconds.append(grey[1:])
        clip += 1
    return np.concatenate(firsts)[:count], np.concatenate(seconds)[:count]


def moved_textures(count: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` pairs (two (count, H, W) uint8 stacks): smooth random textures and the same textures moved by a smooth
    non-rigid flow of about 1-3 px, a scene in motion rather than a static one with a moving object."""
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)
    firsts, seconds = [], []
    for seed in range(count):
        noise = np.random.default_rng(seed).uniform(0, 255, size=(height, width)).astype(np.float32)
        texture = cv2.normalize(cv2.GaussianBlur(noise, (0, 0), sigmaX=2.0), None, 0, 255, cv2.NORM_MINMAX)
        flow_x = 1.5 + np.sin(rows / (height / 6) + seed)
        flow_y = 0.8 * np.cos(columns / (width / 6) + seed)
        moved = cv2.remap(texture, columns - flow_x, rows - flow_y, cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        firsts.append(texture.round().astype(np.uint8))
        seconds.append(np.clip(moved.round(), 0, 255).astype(np.uint8))
    return np.stack(firsts), np.stack(seconds)


def frame_pairs(content: str, count: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` pairs of `content` ("video" or "texture"), as two (count, H, W) uint8 stacks."""
    return (decoded_pairs if content == "video" else moved_textures)(count, height, width)


def opencv_flows(first: np.ndarray, second: np.ndarray, threads: int) -> tuple[np.ndarray, float]:
    """OpenCV's flows (N, H, W, 2) from each image of `first` to its pair in `second`, and the seconds they took."""
    if not hasattr(cv2, "optflow"):
        raise SystemExit(
            f"flow_throughput: this OpenCV ({cv2.__version__}) has no contrib modules (cv2.optflow): install "
            "opencv-contrib-python-headless, or pass --reference FILE made with --save-reference where it is"
        )
    cv2.setNumThreads(threads)
    estimator = cv2.optflow.DualTVL1OpticalFlow_create()
    started = time.perf_counter()
    flows = np.stack([estimator.calc(a, b, None) for a, b in zip(first, second)])
    return flows, time.perf_counter() - started


def torch_flows(
    first: np.ndarray, second: np.ndarray, device: str, batch: int, compiled: bool
) -> tuple[np.ndarray, float]:
    """Our flows (N, H, W, 2) for the same pairs and the seconds they took (after a warm-up batch on CUDA or when
    compiling, so that compilation is not timed)."""
    images0, images1 = torch.from_numpy(first).to(device), torch.from_numpy(second).to(device)
    if device.startswith("cuda") or compiled:
        tvl1(images0[:batch], images1[:batch], compiled=compiled)
        _synchronize(device)
    started = time.perf_counter()
    flows = [
        tvl1(images0[i : i + batch], images1[i : i + batch], compiled=compiled) for i in range(0, len(images0), batch)
    ]
    flow = torch.cat(flows).permute(0, 2, 3, 1).cpu().numpy()  # the copy waits for the device
    return flow, time.perf_counter() - started


# What `--profile` records: one warp at the finest scale (up to outer x inner = 300 iterations), a slice of the
# whole computation small enough for the profiler to record and summarise in seconds.
PROFILED = TVL1Parameters(scales=1, warps=1)


def profiled_batch(first: np.ndarray, second: np.ndarray, device: str, batch: int, compiled: bool) -> dict:
    """Where the time of one warp of a batch at full resolution goes (`PROFILED`, warm): wall seconds, device kernel
    seconds and launches, and the scalar reads (`aten::_local_scalar_dense`, e.g. `int(active.sum())` in the stopping
    test) and stream synchronisations that make the host wait for the device; with the ten operators of most device
    (on the CPU: host) time."""
    images0 = torch.from_numpy(first[:batch]).to(device)
    images1 = torch.from_numpy(second[:batch]).to(device)
    tvl1(images0, images1, PROFILED, compiled=compiled)  # compiled and warm before the record
    _synchronize(device)
    on_device = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if on_device else [])
    with profile(activities=activities) as recorded:
        started = time.perf_counter()
        tvl1(images0, images1, PROFILED, compiled=compiled)
        _synchronize(device)
        wall = time.perf_counter() - started
    averages = recorded.key_averages()
    kernels = [event for event in recorded.events() if event.device_type == torch.autograd.DeviceType.CUDA]
    calls = {event.key: event.count for event in averages}
    ranked = sorted(
        averages, key=lambda e: e.self_device_time_total if on_device else e.self_cpu_time_total, reverse=True
    )
    return {
        "pairs": len(images0),
        "slice": "one warp at the finest scale",
        "wall_s": wall,
        "device_kernel_s": sum(event.device_time_total for event in kernels) / 1e6,
        "kernel_launches": len(kernels),
        "scalar_reads": calls.get("aten::_local_scalar_dense", 0),
        "stream_syncs": calls.get("cudaStreamSynchronize", 0) + calls.get("cudaDeviceSynchronize", 0),
        "top": [
            {
                "name": event.key,
                "calls": event.count,
                "self_device_ms": event.self_device_time_total / 1e3,
                "self_cpu_ms": event.self_cpu_time_total / 1e3,
            }
            for event in ranked[:10]
        ],
    }


def target(speedup: float, epe: float) -> dict:
    """The issue's target for the torch backend: >= 100x OpenCV's CPU rate at a mean EPE <= 0.3 px."""
    return {
        "speedup_at_least": TARGET_SPEEDUP,
        "epe_at_most": TARGET_EPE,
        "met": speedup >= TARGET_SPEEDUP and epe <= TARGET_EPE,
    }


def save_reference(path: Path, first: np.ndarray, second: np.ndarray, flow: np.ndarray, meta: dict) -> None:
    """The pairs, OpenCV's flows and how they were measured (`meta`), in one compressed .npz file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, first=first, second=second, flow=flow, meta=np.array(json.dumps(meta)))


def load_reference(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(first, second, OpenCV's flows, meta) of a file written by `save_reference`."""
    try:
        with np.load(path) as stored:
            return stored["first"], stored["second"], stored["flow"], json.loads(str(stored["meta"]))
    except (OSError, KeyError, ValueError) as error:
        raise SystemExit(f"flow_throughput: {path}: not a reference file of --save-reference ({error})") from None


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _opencv_side(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """The pairs, OpenCV's flows of them and how they were measured: from `--reference` or computed here."""
    if args.reference:
        return load_reference(args.reference)
    first, second = frame_pairs(args.content, args.pairs, args.height, args.width)
    flow, seconds = opencv_flows(first, second, args.threads)
    meta = {
        "content": args.content,
        "pairs": len(first),
        "seconds": seconds,
        "threads": args.threads,
        "opencv": cv2.__version__,
        "machine": f"{platform.node()}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes"),
    }
    return first, second, flow, meta


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pairs", type=int, default=8, help="frame pairs to time (default 8)")
    parser.add_argument("--batch", type=int, default=8, help="pairs per call of the torch backend (default 8)")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=340)
    parser.add_argument("--modes", default="eager", help="comma-separated, of eager, compiled (torch.compile)")
    parser.add_argument("--content", choices=["video", "texture"], default="video", help="which pairs (see above)")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV and torch CPU threads (default 2)")
    parser.add_argument("--reference", type=Path, help="take the pairs and the OpenCV side from this file")
    parser.add_argument("--save-reference", type=Path, help="compute the OpenCV side, write it here, and stop")
    parser.add_argument("--profile", action="store_true", help="record one warp of a batch per mode (see PROFILED)")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    if unknown := [mode for mode in modes if mode not in MODES]:
        raise SystemExit(f"flow_throughput: unknown mode {', '.join(unknown)}; known: {', '.join(MODES)}")
    torch.set_num_threads(args.threads)
    first, second, reference, meta = _opencv_side(args)
    count, height, width = first.shape
    size = f"{height}x{width} {meta['content']}"
    origin = f"carried from {args.reference.name}, {meta['date']}, {meta['machine']}" if args.reference else "here"
    opencv_rate = meta["pairs"] / meta["seconds"]
    print(f"opencv DualTVL1, cpu ({meta['threads']} threads), {size}: {opencv_rate:.2f} pairs/s ({origin})")
    if args.save_reference:
        save_reference(args.save_reference, first, second, reference, meta)
        print(f"reference of {count} pairs written to {args.save_reference}")
        return
    timed = np.arange(max(args.pairs, count)) % count  # the reference pairs, repeated up to --pairs
    device = (
        torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"cpu ({args.threads} threads)"
    )
    results = {
        "device": device,
        "torch": torch.__version__,
        "size": size,
        "opencv": {**meta, "pairs_per_second": opencv_rate, "origin": origin},
        "timed_pairs": len(timed),
        "batch": args.batch,
        "modes": {},
    }
    for mode in modes:
        ours, seconds = torch_flows(first[timed], second[timed], args.device, args.batch, MODES[mode])
        error = np.linalg.norm(ours[:count] - reference, axis=-1)
        rate = len(timed) / seconds
        speedup, epe = rate / opencv_rate, float(error.mean())
        label = _label(mode)
        print(f"torch TV-L1, {device}, batch {args.batch}{label}, {size}: {rate:.2f} pairs/s")
        print(f"speed-up torch{label} / opencv: {speedup:.2f}x")
        print(
            f"EPE torch{label} vs opencv over {count} pairs: mean {epe:.4f} px, per pair max "
            f"{error.mean(axis=(1, 2)).max():.4f} px, mean |opencv flow| "
            f"{np.linalg.norm(reference, axis=-1).mean():.3f} px"
        )
        results["modes"][mode] = {
            "pairs_per_second": rate,
            "speedup": speedup,
            "epe_mean": epe,
            "epe_worst_pair": float(error.mean(axis=(1, 2)).max()),
            "target": target(speedup, epe),
        }
        verdict = "met" if results["modes"][mode]["target"]["met"] else "missed"
        print(f"target torch{label} >= {TARGET_SPEEDUP:g}x opencv at EPE <= {TARGET_EPE} px: {verdict}")
        _write(args.json, results)  # after each mode, so that a stopped run keeps what it measured
    for mode in modes if args.profile else ():  # after every timing: a profiler failure costs only the profiles
        record = profiled_batch(first[timed], second[timed], args.device, args.batch, MODES[mode])
        results["modes"][mode]["profile"] = record
        print(
            f"profile torch{_label(mode)}, {record['slice']}, {record['pairs']} pairs: {record['wall_s']:.3f} s "
            f"wall, {record['device_kernel_s']:.3f} s in {record['kernel_launches']} kernels, "
            f"{record['scalar_reads']} scalar reads, {record['stream_syncs']} stream syncs"
        )
        _write(args.json, results)


def _label(mode: str) -> str:
    return ", compiled" if mode == "compiled" else ""


def _write(path: Path | None, results: dict) -> None:
    """`results` as JSON at `path`, replaced whole (a run stopped while writing leaves the previous version)."""
    if path is not None:
        temporary = path.with_name(f".{path.name}.tmp")
        temporary.write_text(json.dumps(results, indent=1) + "\n")
        os.replace(temporary, path)


if __name__ == "__main__":
    main()
