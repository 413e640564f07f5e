"""PySlowFast's checkpoints (Caffe2 `.pkl` of its model zoo, PyTorch `.pyth`) loaded into our I3D: every tensor in its
place, the Caffe2 stem's BGR channels turned to RGB, and a pickle that would run code refused."""

import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor

from mml.errors import CheckpointError
from mml.models.i3d import build_i3d
from mml.models.init import imagenet_state_dict, transfer_weights
from mml.models.weight_files import normalize_keys, read_state_dict

BN = {"weight": "s", "bias": "b", "running_mean": "rm", "running_var": "riv"}
BRANCH2 = "abc"


def tiny_i3d(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_i3d("i3d_tiny", in_channels=3, num_classes=5)
    for name, buffer in model.named_buffers():
        if name.endswith(("running_mean", "running_var")):
            buffer.uniform_(0.5, 1.5)
    return model


def caffe2_name(key: str) -> str | None:
    """The Caffe2 blob name of one of our I3D keys, written out by hand from the model zoo's naming."""
    parts = key.split(".")
    if parts[-1] == "num_batches_tracked":
        return None  # Caffe2 files have no BN counters
    if key == "conv1.weight":
        return "conv1_w"
    if parts[0] == "bn1":
        return f"res_conv1_bn_{BN[parts[1]]}"
    if parts[0] == "fc":
        return f"pred_{parts[1][0]}"
    stage, block = int(parts[0].removeprefix("layer")) + 1, parts[1]
    if parts[2] == "downsample":
        return f"res{stage}_{block}_branch1_w" if parts[3] == "0" else f"res{stage}_{block}_branch1_bn_{BN[parts[4]]}"
    index = BRANCH2[int(parts[2][-1]) - 1]
    if parts[2].startswith("conv"):
        return f"res{stage}_{block}_branch2{index}_w"
    return f"res{stage}_{block}_branch2{index}_bn_{BN[parts[3]]}"


def slowfast_name(key: str) -> str:
    """The PySlowFast (PyTorch) name of one of our I3D keys."""
    parts = key.split(".")
    if parts[0] in ("conv1", "bn1"):
        return f"s1.pathway0_stem.{'conv' if parts[0] == 'conv1' else 'bn'}.{parts[1]}"
    if parts[0] == "fc":
        return f"head.projection.{parts[1]}"
    stage, block = int(parts[0].removeprefix("layer")) + 1, parts[1]
    if parts[2] == "downsample":
        return f"s{stage}.pathway0_res{block}.branch1{'' if parts[3] == '0' else '_bn'}.{parts[4]}"
    index = BRANCH2[int(parts[2][-1]) - 1]
    kind = "" if parts[2].startswith("conv") else "_bn"
    return f"s{stage}.pathway0_res{block}.branch2.{index}{kind}.{parts[3]}"


def write_caffe2(path: Path, state: dict[str, Tensor], **extra: object) -> None:
    blobs = {name: value.numpy() for key, value in state.items() if (name := caffe2_name(key))}
    blobs |= {"conv1_w_momentum": np.zeros(3, np.float32), "lr": np.float32(0.1), "model_iter": np.int64(7)}
    with open(path, "wb") as handle:
        pickle.dump({"blobs": blobs | extra}, handle, protocol=2)


def loaded_into_fresh_model(state: dict[str, Tensor]) -> dict[str, Tensor]:
    model = tiny_i3d(seed=1)
    transfer_weights(model, state, keep_fc=True, origin="test")
    return model.state_dict()


def test_a_caffe2_checkpoint_fills_every_tensor_of_our_i3d(tmp_path: Path) -> None:
    source = {key: value.clone() for key, value in tiny_i3d(seed=0).state_dict().items()}
    write_caffe2(tmp_path / "I3D_8x8_R50.pkl", source)
    state = imagenet_state_dict("tsm_tiny", tmp_path / "I3D_8x8_R50.pkl")  # how a --kinetics file is read
    loaded = loaded_into_fresh_model(state)
    for key, value in source.items():
        if key == "conv1.weight":
            torch.testing.assert_close(loaded[key], value.flip(1))  # Caffe2's BGR stem, for our RGB frames
            assert not torch.equal(loaded[key], value)
        elif not key.endswith("num_batches_tracked"):
            torch.testing.assert_close(loaded[key], value, rtol=0, atol=0)


def test_a_pyslowfast_pyth_checkpoint_is_renamed_to_ours(tmp_path: Path) -> None:
    source = tiny_i3d(seed=0).state_dict()
    checkpoint = {"epoch": 196, "model_state": {slowfast_name(k): v for k, v in source.items()}, "cfg": "MODEL: ..."}
    torch.save(checkpoint, tmp_path / "I3D_8x8_R50.pyth")
    state = normalize_keys(read_state_dict(tmp_path / "I3D_8x8_R50.pyth"))
    assert set(state) == set(source)
    loaded = loaded_into_fresh_model(state)
    assert all(torch.equal(loaded[key], value) for key, value in source.items())


def test_a_pickle_that_would_run_code_is_refused(tmp_path: Path) -> None:
    class Payload:
        def __reduce__(self):
            return os.system, ("echo pwned",)

    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps({"blobs": {"conv1_w": Payload()}}, protocol=2))
    with pytest.raises(
        CheckpointError, match=r"evil\.pkl: refused or unreadable as a Caffe2 checkpoint: .*posix\.system"
    ):
        read_state_dict(path)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"blobs": {"nonlocal_conv3_1_theta_w": np.zeros(2)}}, "blob 'nonlocal_conv3_1_theta_w' is not a weight"),
        ({"weights": {}}, "not a Caffe2 checkpoint"),
    ],
)
def test_a_caffe2_file_of_another_model_is_refused(tmp_path: Path, content: dict, message: str) -> None:
    path = tmp_path / "other.pkl"
    path.write_bytes(pickle.dumps(content, protocol=2))
    with pytest.raises(CheckpointError, match=message):
        read_state_dict(path)


def test_a_torch_file_named_pkl_is_read_as_a_torch_file(tmp_path: Path) -> None:
    source = tiny_i3d(seed=0).state_dict()
    torch.save({"state_dict": source}, tmp_path / "ours.pkl")
    assert set(normalize_keys(read_state_dict(tmp_path / "ours.pkl"))) == set(source)
