"""pytest-benchmark suite of the CPU-side pieces of training: clip sampling, reading frames and flow from the JPEG
cache, building the Flow / Diff inputs, the losses, and both TV-L1 backends on one frame pair.

Run with `nox -s benchmark` (or `pytest benchmark --benchmark-enable`): the project's pytest options disable
benchmarking, and `nox -s tests` does not collect this folder. Without `--benchmark-enable` each benchmark is one
untimed call, which checks that every piece runs.
"""

import cv2
import numpy as np
import pytest
import torch

from mml.data.cache import JpegCache, prepare
from mml.data.datasets import open_dataset
from mml.data.flow import tvl1_flow
from mml.data.modalities import MODALITIES, build_input, gather_clip
from mml.data.sampling import train_starts
from mml.data.synthetic import SyntheticConfig, ensure_sthv2
from mml.data.transforms import multiscale_crop
from mml.data.tvl1_torch import tvl1_flow_torch
from mml.losses import cross_entropy, kl_message, kl_to_others
from mml.spec import DatasetConfig

SHORT_SIDE = 128  # frames of 128 x 170, half the paper's 256 short side: the cache builds in seconds
SEGMENTS, SIZE = 8, 112
BATCH, CLASSES = 32, 174


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[JpegCache, list]:
    """Four synthetic videos at 128 x 170 and their JPEG frame + flow cache."""
    folder = tmp_path_factory.mktemp("benchmark")
    config = SyntheticConfig(
        num_classes=2, train_per_class=1, val_per_class=1, frames=16, min_frames=16, height=SHORT_SIDE, width=170
    )
    dataset = open_dataset(DatasetConfig(kind="sthv2"), ensure_sthv2(folder / "data", config, False), folder)
    source = dataset.frame_source(folder / "cache", SHORT_SIDE)
    prepare(source, dataset.train, True, workers=1, progress=False)
    return source, list(dataset.train)


def _starts(source: JpegCache, record, modalities: list[str], seed: int) -> list[np.ndarray]:
    frames = len(source.frames(record))
    lengths = [frames - 1 if name == "Flow" else frames for name in modalities]
    news = [MODALITIES[name].new_length for name in modalities]
    return train_starts(lengths, news, SEGMENTS, "both", 4, np.random.default_rng(seed))


def test_sampling_train_starts(benchmark) -> None:
    rng = np.random.default_rng(0)
    starts = benchmark(train_starts, [48, 47, 48], [1, 5, 6], SEGMENTS, "both", 4, rng)
    assert [s.shape for s in starts] == [(SEGMENTS,)] * 3


@pytest.mark.parametrize("kind", ["RGB", "Flow"])
def test_read_a_clip_from_the_jpeg_cache(benchmark, cache, kind: str) -> None:
    source, records = cache
    spec = MODALITIES[kind]
    starts = _starts(source, records[0], [kind], seed=0)[0]

    def read() -> torch.Tensor:
        return gather_clip(spec, source.flow(records[0]) if kind == "Flow" else source.frames(records[0]), starts)

    clip = benchmark(read)
    assert clip.shape[:2] == (SEGMENTS, spec.new_length) and clip.dtype == torch.uint8


@pytest.mark.parametrize("kind", ["RGB", "Flow", "Diff"])
def test_build_a_model_input(benchmark, cache, kind: str) -> None:
    source, records = cache
    spec = MODALITIES[kind]
    starts = _starts(source, records[0], [kind], seed=1)[0]
    clip = gather_clip(spec, source.flow(records[0]) if kind == "Flow" else source.frames(records[0]), starts)
    crop = multiscale_crop(*clip.shape[2:4], SIZE, np.random.default_rng(1))
    built = benchmark(build_input, spec, clip, crop, SIZE)
    assert built.shape == (SEGMENTS * spec.channels, SIZE, SIZE)


def test_losses_of_an_ml_pair(benchmark) -> None:
    generator = torch.Generator().manual_seed(0)
    logits = [torch.randn(BATCH, CLASSES, generator=generator, requires_grad=True) for _ in range(2)]
    labels = torch.randint(CLASSES, (BATCH,), generator=generator)

    def losses() -> torch.Tensor:
        messages = [kl_message(z) for z in logits]
        total = sum(cross_entropy(z, labels) + kl_to_others(z, [messages[1 - i]]) for i, z in enumerate(logits))
        total.backward()
        return total

    assert torch.isfinite(benchmark(losses))


@pytest.mark.parametrize("backend", ["opencv", "torch"])
def test_tvl1_one_pair(benchmark, cache, backend: str) -> None:
    source, records = cache
    frames = source.frames(records[0])[np.array([0, 1])]
    cv2.setNumThreads(torch.get_num_threads())
    compute = tvl1_flow if backend == "opencv" else tvl1_flow_torch
    flow = benchmark.pedantic(compute, args=(frames,), rounds=3 if backend == "opencv" else 1, iterations=1)
    assert flow.shape == (1, *frames.shape[1:3], 2)
