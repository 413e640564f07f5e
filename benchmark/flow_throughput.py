"""Pairs/s of the two TV-L1 backends on the same real-looking frame pairs, and how far apart their flows are.

The pairs (`--content`) are either consecutive frames of synthetic clips rendered at the size asked for, encoded
as VP9 and decoded again (`video`: compression noise, a moving object on a textured background), converted to grey
as `mml prepare` does, or smooth random textures moved by a smooth non-rigid flow (`texture`: everything moves).
Prints one line per figure: OpenCV's DualTVL1 on the CPU with `--opencv-threads` threads, our PyTorch TV-L1 on
`--device` in batches of `--batch` pairs (timed after one warm-up batch on CUDA), the speed-up, and the mean
end-point error between the two flows.

    python benchmark/flow_throughput.py --device cuda --pairs 256 --batch 64 [--compile]
    python benchmark/flow_throughput.py --device cpu --pairs 4 --batch 4 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import torch

from mml.data.synthetic import SyntheticConfig, render_clip
from mml.data.tvl1_torch import tvl1
from mml.data.video import decode_video, encode_video


def decoded_frames(count: int, height: int, width: int) -> np.ndarray:
    """(count + 1, H, W) uint8 grey frames of decoded synthetic clips (several clips when one is too short)."""
    frames, clip = [], 0
    while sum(len(f) for f in frames) < count + 1:
        config = SyntheticConfig(height=height, width=width, frames=min(count + 1, 64), min_frames=2)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "clip.webm"
            encode_video(path, render_clip(config, "train", clip), fps=12)
            frames.append(np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in decode_video(path)]))
        clip += 1
    return np.concatenate(frames)[: count + 1]


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


def opencv_flows(first: np.ndarray, second: np.ndarray, threads: int) -> tuple[np.ndarray, float]:
    """OpenCV's flows (N, H, W, 2) from each image of `first` to its pair in `second`, and the seconds they took."""
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
        if device.startswith("cuda"):
            torch.cuda.synchronize()
    started = time.perf_counter()
    flows = [
        tvl1(images0[i : i + batch], images1[i : i + batch], compiled=compiled) for i in range(0, len(images0), batch)
    ]
    flow = torch.cat(flows).permute(0, 2, 3, 1).cpu().numpy()  # the copy waits for the device
    return flow, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--pairs", type=int, default=8, help="frame pairs to time (default 8)")
    parser.add_argument("--batch", type=int, default=8, help="pairs per call of the torch backend (default 8)")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=340)
    parser.add_argument("--compile", action="store_true", help="the torch backend through torch.compile")
    parser.add_argument("--content", choices=["video", "texture"], default="video", help="which pairs (see above)")
    parser.add_argument("--threads", type=int, default=2, help="OpenCV and torch CPU threads (default 2)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.content == "video":
        grey = decoded_frames(args.pairs, args.height, args.width)
        first, second = grey[:-1], grey[1:]
    else:
        first, second = moved_textures(args.pairs, args.height, args.width)
    reference, opencv_seconds = opencv_flows(first, second, args.threads)
    ours, torch_seconds = torch_flows(first, second, args.device, args.batch, args.compile)
    error = np.linalg.norm(ours - reference, axis=-1)
    device = (
        torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else f"cpu ({args.threads} threads)"
    )
    size = f"{args.height}x{args.width} {args.content}"
    print(f"opencv DualTVL1, cpu ({args.threads} threads), {size}: {args.pairs / opencv_seconds:.2f} pairs/s")
    mode = ", compiled" if args.compile else ""
    print(f"torch TV-L1, {device}, batch {args.batch}{mode}, {size}: {args.pairs / torch_seconds:.2f} pairs/s")
    print(f"speed-up torch / opencv: {opencv_seconds / torch_seconds:.2f}x")
    print(
        f"EPE torch vs opencv over {args.pairs} pairs: mean {error.mean():.4f} px, per pair max "
        f"{error.mean(axis=(1, 2)).max():.4f} px, mean |opencv flow| {np.linalg.norm(reference, axis=-1).mean():.3f} px"
    )


if __name__ == "__main__":
    main()
