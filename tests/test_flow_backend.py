"""Tests of the flow backend choice of `mml prepare`: same cache format either way, one-line errors."""

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from test_prepare import _specs

from mml.cli import main
from mml.data import flow_backend
from mml.data.cache import JpegCache, prepare
from mml.data.datasets import open_dataset, prepare_frames
from mml.data.flow import dequantize_flow
from mml.data.flow_backend import FlowBackend
from mml.data.sthv2 import VideoRecord
from mml.data.synthetic import SyntheticConfig, ensure_sthv2
from mml.errors import MMLError
from mml.spec import DatasetConfig

SHORT_SIDE = 32


@pytest.fixture(scope="module")
def sthv2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("sthv2") / "data"
    config = SyntheticConfig(num_classes=2, train_per_class=1, val_per_class=1, frames=3, min_frames=3)
    return ensure_sthv2(root, config, progress=False)


def _cached_flow(source: JpegCache, record: VideoRecord) -> np.ndarray:
    """The video's cached flow fields (N - 1, H, W, 2) in pixels."""
    fields = source.flow(record)
    return dequantize_flow(fields[np.arange(len(fields))])


def test_torch_backend_fills_the_cache_like_opencv(sthv2: Path, tmp_path: Path) -> None:
    dataset = open_dataset(DatasetConfig(kind="sthv2"), sthv2, tmp_path)
    record = dataset.train[0]
    flows, names = {}, {}
    for name in ("opencv", "torch"):
        source = dataset.frame_source(tmp_path / name, SHORT_SIDE, FlowBackend(name))
        prepare(source, [record], True, workers=1, progress=False)
        folder = source.layout.root / "flow" / record.video_id
        names[name] = sorted(path.name for path in folder.iterdir())
        flows[name] = _cached_flow(source, record)
    assert (
        names["torch"]
        == names["opencv"]
        == ["flow_x_00001.jpg", "flow_x_00002.jpg", "flow_y_00001.jpg", "flow_y_00002.jpg"]
    )
    assert flows["torch"].shape == flows["opencv"].shape
    assert np.linalg.norm(flows["torch"] - flows["opencv"], axis=-1).mean() <= 0.3


def test_a_torch_backend_failure_stops_preparing_and_names_the_video(
    sthv2: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def out_of_memory(*args: object) -> None:
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    monkeypatch.setattr(flow_backend, "tvl1_flow_torch", out_of_memory)
    dataset = open_dataset(DatasetConfig(kind="sthv2"), sthv2, tmp_path)
    with pytest.raises(MMLError, match=r"\.webm: TV-L1 flow \(torch on cpu\) failed: CUDA out of memory[^\n]*$"):
        prepare_frames(dataset, tmp_path / "cache", SHORT_SIDE, True, 2, 1, False, FlowBackend("torch"))


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "opencv", "device": "cuda"}, "runs on the cpu only"),
        ({"name": "farneback"}, "^--flow: 'farneback' is not one of opencv, torch$"),
        ({"name": "torch", "device": "tpu:x"}, "^--flow-device: 'tpu:x': "),
        ({"name": "torch", "batch_pairs": 0}, "^--flow-batch: must be positive, got 0$"),
        ({"name": "opencv", "compiled": True}, "only the torch backend compiles"),
    ],
)
def test_bad_backend_settings_are_refused(arguments: dict, message: str) -> None:
    with pytest.raises(MMLError, match=message):
        FlowBackend(**arguments)


def test_cli_prepare_with_the_torch_backend(sthv2: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    argv = ["prepare", "sthv2", "--data", str(sthv2), "--profile", "real", "--specs", str(_specs(tmp_path))]
    store = tmp_path / "store"
    assert main([*argv, "--store", str(store), "--workers", "1", "--no-progress", "--flow", "torch"]) == 0
    assert "4 videos ready (4 prepared now), 0 skipped" in caplog.text
    assert len(list((store / "cache").glob("*/jpeg32/flow/*/flow_[xy]_0000[12].jpg"))) == 4 * 2 * 2


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_prepare_refuses_cuda_flow_without_cuda_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    status = main(["prepare", "sthv2", "--data", str(tmp_path), "--flow", "torch", "--flow-device", "cuda"])
    error = capsys.readouterr().err
    assert status == 2 and error == "mml: error: --flow-device: 'cuda': CUDA is not available on this machine\n"
