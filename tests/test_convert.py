"""Loading checkpoints of other layouts (ours, torchvision's, the original TSM / MML code's) into our TSM models."""

import os
import pickle
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from layouts import original_layout, save_original
from safetensors.torch import save_file
from torch import Tensor

from mml.errors import CheckpointError
from mml.models.convert import fit_checkpoint
from mml.models.tsm import TSMResNet, build_tsm
from mml.models.weight_files import normalize_keys, read_state_dict

SEGMENTS = 2


@pytest.fixture(autouse=True, scope="module")
def one_thread() -> Iterator[None]:
    """Tiny forwards take ms on one thread but can take ~1 s on two threads of a busy 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def tiny(in_channels: int = 3, num_classes: int = 5, seed: int = 0) -> TSMResNet:
    """A tiny TSM model with random weights and random BN statistics (so that a lost buffer changes outputs)."""
    torch.manual_seed(seed)
    model = build_tsm("tsm_tiny", in_channels=in_channels, num_classes=num_classes, segments=SEGMENTS)
    for name, buffer in model.named_buffers():
        if name.endswith("running_mean"):
            buffer.normal_()
        elif name.endswith("running_var"):
            buffer.uniform_(0.5, 2.0)
        else:
            buffer.fill_(seed + 7)
    with torch.no_grad():
        model.fc.weight.normal_()  # TSM's N(0, 0.001) init would make any two models' outputs nearly equal
    return model.eval()


def outputs(model: TSMResNet) -> Tensor:
    torch.manual_seed(123)
    with torch.no_grad():
        return model(torch.randn(2, SEGMENTS * model.in_channels, 32, 32))


def load(path: Path, model: TSMResNet) -> TSMResNet:
    model.load_state_dict(fit_checkpoint(path, model), strict=True)
    return model


def test_original_layout_has_the_shift_wrapper_names() -> None:
    """Guards the fixture: it must produce the original code's key names, not ours."""
    keys = original_layout(tiny())
    assert "module.base_model.layer1.0.conv1.net.weight" in keys
    assert "module.base_model.layer1.0.conv2.weight" in keys
    assert {"module.new_fc.weight", "module.new_fc.bias", "module.base_model.bn1.num_batches_tracked"} <= set(keys)


def test_normalize_keys_maps_each_layout_to_ours() -> None:
    t = torch.zeros(1)
    keys = [
        "module.base_model.layer1.0.conv1.net.weight",
        "module.module.base_model.conv1.weight",
        "base_model.layer2.0.downsample.0.weight",
        "module.new_fc.bias",
        "layer3.0.bn1.running_var",
        "module.base_model.layer4.0.net.conv2.weight",
    ]
    assert list(normalize_keys(dict.fromkeys(keys, t))) == [
        "layer1.0.conv1.weight",
        "conv1.weight",
        "layer2.0.downsample.0.weight",
        "fc.bias",
        "layer3.0.bn1.running_var",
        "layer4.0.conv2.weight",
    ]


def test_normalize_keys_refuses_two_keys_for_one_name() -> None:
    t = torch.zeros(1)
    with pytest.raises(CheckpointError, match="module.new_fc.weight and module.base_model.fc.weight both map to fc"):
        normalize_keys({"module.new_fc.weight": t, "module.base_model.fc.weight": t}, origin="x.pth")


def test_our_safetensors_file_reproduces_the_model(tmp_path: Path) -> None:
    source, target = tiny(seed=1), tiny(seed=2)
    assert not torch.allclose(outputs(source), outputs(target))
    save_file(source.state_dict(), tmp_path / "model0.safetensors")
    assert torch.equal(outputs(load(tmp_path / "model0.safetensors", target)), outputs(source))


def test_torchvision_style_plain_state_dict_without_counters(tmp_path: Path) -> None:
    """A bare ``torch.save(state_dict)`` of an old PyTorch: the BN counters come from the model, nothing else."""
    source, target = tiny(seed=1), tiny(seed=2)
    state = {k: v for k, v in source.state_dict().items() if not k.endswith("num_batches_tracked")}
    torch.save(state, tmp_path / "plain.pth")
    fitted = fit_checkpoint(tmp_path / "plain.pth", target)
    assert list(fitted) == list(target.state_dict())
    assert fitted["bn1.num_batches_tracked"] == target.bn1.num_batches_tracked
    assert torch.equal(outputs(load(tmp_path / "plain.pth", target)), outputs(source))


def test_some_counters_missing_are_listed(tmp_path: Path) -> None:
    state = tiny().state_dict()
    del state["layer1.0.bn2.num_batches_tracked"]
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(CheckpointError, match=r"missing keys layer1\.0\.bn2\.num_batches_tracked$"):
        fit_checkpoint(tmp_path / "partial.pth", tiny())


def test_original_tsm_rgb_checkpoint_reproduces_the_model(tmp_path: Path) -> None:
    source, target = tiny(seed=1), tiny(seed=2)
    path = save_original(source, tmp_path / "TSM_somethingv2_RGB_resnet50_shift8_blockres.pth.tar")
    assert torch.equal(outputs(load(path, target)), outputs(source))


def test_nested_containers_are_unwrapped(tmp_path: Path) -> None:
    source = tiny(seed=1)
    torch.save({"model": {"module": source.state_dict()}, "optimizer": {"lr": 0.1}}, tmp_path / "nested.pt")
    assert read_state_dict(tmp_path / "nested.pt").keys() == source.state_dict().keys()


def test_flow_checkpoint_into_a_flow_model(tmp_path: Path) -> None:
    source, target = tiny(10, seed=1), tiny(10, seed=2)
    path = save_original(source, tmp_path / "TSM_somethingv2_Flow.pth.tar")
    assert torch.equal(outputs(load(path, target)), outputs(source))


@pytest.mark.parametrize("channels", [3, 15])
def test_flow_checkpoint_into_another_modality_averages_the_first_conv(tmp_path: Path, channels: int) -> None:
    source = tiny(10, seed=1)
    path = save_original(source, tmp_path / "TSM_somethingv2_Flow.pth.tar")
    fitted = fit_checkpoint(path, tiny(channels, seed=2))
    flow_conv = source.conv1.weight.detach()
    assert fitted["conv1.weight"].shape == (16, channels, 7, 7)
    assert torch.allclose(fitted["conv1.weight"], flow_conv.mean(1, keepdim=True).expand(-1, channels, -1, -1))
    for key, value in source.state_dict().items():
        if key != "conv1.weight":
            assert torch.equal(fitted[key], value), key


class Evil:
    """Runs a shell command when unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


@pytest.mark.parametrize("writer", ["pickle", "torch.save"])
def test_a_malicious_pickle_is_refused_and_not_run(tmp_path: Path, writer: str) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "evil.pth"
    payload = {"epoch": 1, "state_dict": {"conv1.weight": Evil(marker)}}
    if writer == "pickle":
        path.write_bytes(pickle.dumps(payload, protocol=2))
    else:
        torch.save(payload, path)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(path))}: refused: .*system"):
        fit_checkpoint(path, tiny())
    assert not marker.exists()


def test_wrong_class_count_lists_fc_with_both_shapes(tmp_path: Path) -> None:
    path = save_original(tiny(num_classes=174), tmp_path / "sthv2.pth.tar")
    with pytest.raises(CheckpointError) as raised:
        fit_checkpoint(path, tiny(num_classes=8))
    message = str(raised.value)
    assert message.startswith(f"{path}: does not fit the TSMResNet model: shape mismatch ")
    assert "fc.weight (174, 512) vs model (8, 512)" in message and "fc.bias (174,) vs model (8,)" in message
    assert "\n" not in message


def test_unknown_and_missing_keys_are_listed_by_name(tmp_path: Path) -> None:
    state = original_layout(tiny())
    state["module.base_model.extra.weight"] = torch.zeros(3)
    del state["module.base_model.layer4.0.bn3.running_mean"]
    torch.save({"state_dict": state}, tmp_path / "odd.pth")
    with pytest.raises(
        CheckpointError, match=r"odd\.pth: .*: unknown keys extra\.weight; missing keys layer4\.0\.bn3\.running_mean$"
    ):
        fit_checkpoint(tmp_path / "odd.pth", tiny())


def test_long_lists_are_truncated(tmp_path: Path) -> None:
    state = tiny().state_dict() | {f"extra{i:02d}": torch.zeros(1) for i in range(11)}
    save_file(state, tmp_path / "many.safetensors")
    with pytest.raises(CheckpointError, match=r"unknown keys extra00, extra01, .*, extra07 and 3 more$"):
        fit_checkpoint(tmp_path / "many.safetensors", tiny())


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(tmp_path / 'nope.pth'))}: no such file$"):
        fit_checkpoint(tmp_path / "nope.pth", tiny())


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("garbage.pth", b"not a checkpoint at all", "refused: the weights-only unpickler rejects it"),
        ("empty.pth", b"", "cannot read weights"),
        ("garbage.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}", "cannot read weights"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: bytes, reason: str) -> None:
    (tmp_path / name).write_bytes(content)
    with pytest.raises(CheckpointError, match=rf"^{re.escape(str(tmp_path / name))}: {reason}"):
        read_state_dict(tmp_path / name)


def test_no_tensors_and_non_tensor_entries_are_refused(tmp_path: Path) -> None:
    torch.save({"epoch": 3, "arch": "resnet50", "best_prec1": 50.0}, tmp_path / "meta.pth")
    with pytest.raises(CheckpointError, match=r"meta\.pth: holds no tensors"):
        read_state_dict(tmp_path / "meta.pth")
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1), "step": 3}}, tmp_path / "mixed.pth")
    with pytest.raises(CheckpointError, match=r"mixed\.pth: entry 'step' of the state dict is a int, not a tensor"):
        read_state_dict(tmp_path / "mixed.pth")
