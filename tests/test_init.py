"""Weight transfer across modalities, ImageNet weight files and TSM's parameter groups."""

from pathlib import Path

import pytest
import torch
import torchvision
from safetensors.torch import save_file

from mml.errors import CheckpointError
from mml.models.init import adapt_first_conv, imagenet_state_dict, param_groups, transfer_weights
from mml.models.tsm import TSMResNet, build_tsm


def tiny(in_channels: int, num_classes: int = 5, seed: int = 0) -> TSMResNet:
    torch.manual_seed(seed)
    return build_tsm("tsm_tiny", in_channels=in_channels, num_classes=num_classes, segments=2)


def test_adapt_first_conv_rgb_to_flow_is_the_unscaled_channel_mean() -> None:
    weight = torch.zeros(2, 3, 1, 1)
    weight[0, :, 0, 0] = torch.tensor([1.0, 2.0, 6.0])
    weight[1, :, 0, 0] = torch.tensor([-3.0, 0.0, 0.0])
    new = adapt_first_conv(weight, 10)
    assert new.shape == (2, 10, 1, 1)
    assert new[0, :, 0, 0].tolist() == [3.0] * 10
    assert new[1, :, 0, 0].tolist() == [-1.0] * 10


def test_adapt_first_conv_flow_to_rgb_averages_all_ten() -> None:
    weight = torch.arange(10, dtype=torch.float32).reshape(1, 10, 1, 1).expand(1, 10, 2, 2)
    new = adapt_first_conv(weight, 3)
    assert new.shape == (1, 3, 2, 2)
    assert torch.equal(new, torch.full((1, 3, 2, 2), 4.5))


def test_adapt_first_conv_same_channels_returns_a_copy() -> None:
    weight = torch.randn(4, 3, 7, 7)
    new = adapt_first_conv(weight, 3)
    assert torch.equal(new, weight) and new.data_ptr() != weight.data_ptr()


def test_transfer_rgb_to_flow_keeps_every_other_weight() -> None:
    rgb, flow = tiny(3, seed=1), tiny(10, seed=2)
    source = rgb.state_dict()
    transfer_weights(flow, source, keep_fc=True, origin="run:rgb")
    loaded = flow.state_dict()
    expected = source["conv1.weight"].mean(1, keepdim=True).expand(-1, 10, -1, -1)
    torch.testing.assert_close(loaded["conv1.weight"], expected)
    for key, value in source.items():
        if key != "conv1.weight":
            assert torch.equal(loaded[key], value), key


def test_keep_fc_false_leaves_the_fresh_fc() -> None:
    rgb, flow = tiny(3, seed=1), tiny(10, seed=2)
    fresh = {k: v.clone() for k, v in flow.fc.state_dict().items()}
    transfer_weights(flow, rgb.state_dict(), keep_fc=False, origin="run:rgb")
    assert torch.equal(flow.fc.weight, fresh["weight"]) and torch.equal(flow.fc.bias, fresh["bias"])
    assert torch.equal(flow.layer1[0].conv1.weight, rgb.layer1[0].conv1.weight)


def test_different_class_count_drops_fc() -> None:
    source, model = tiny(3, num_classes=1000, seed=1), tiny(3, num_classes=5, seed=2)
    fresh = model.fc.weight.detach().clone()
    transfer_weights(model, source.state_dict(), keep_fc=True, origin="imagenet.pth")
    assert torch.equal(model.fc.weight, fresh)
    assert torch.equal(model.conv1.weight, source.conv1.weight)


def test_keep_fc_true_loads_matching_fc() -> None:
    source, model = tiny(3, seed=1), tiny(3, seed=2)
    transfer_weights(model, source.state_dict(), keep_fc=True, origin="run:a")
    assert torch.equal(model.fc.weight, source.fc.weight)


def test_shape_mismatch_names_tensor_and_shapes() -> None:
    source = tiny(3).state_dict()
    expected = tuple(source["layer2.0.conv2.weight"].shape)
    source["layer2.0.conv2.weight"] = torch.zeros(16, 16, 1, 1)
    with pytest.raises(CheckpointError) as info:
        transfer_weights(tiny(3), source, keep_fc=True, origin="ckpt/a.pth")
    message = str(info.value)
    assert "ckpt/a.pth" in message and "layer2.0.conv2.weight" in message
    assert "(16, 16, 1, 1)" in message and str(expected) in message and "\n" not in message


def test_first_conv_with_other_output_channels_is_a_mismatch() -> None:
    source = tiny(3).state_dict()
    source["conv1.weight"] = torch.zeros(8, 3, 7, 7)
    with pytest.raises(CheckpointError, match=r"conv1.weight.*\(8, 3, 7, 7\).*\(16, 10, 7, 7\)"):
        transfer_weights(tiny(10), source, keep_fc=False, origin="x")


def test_unexpected_and_missing_keys_are_named() -> None:
    source = tiny(3).state_dict()
    source["head.proj.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match=r"run:b: 1 unexpected key\(s\): head.proj.weight"):
        transfer_weights(tiny(3), source, keep_fc=True, origin="run:b")
    source = {k: v for k, v in tiny(3).state_dict().items() if not k.startswith("layer4.")}
    with pytest.raises(CheckpointError, match=r"run:b: \d+ missing key\(s\): layer4.0.conv1.weight.*more\)"):
        transfer_weights(tiny(3), source, keep_fc=True, origin="run:b")


def test_source_without_batch_counters_loads() -> None:
    source = {k: v for k, v in tiny(3, seed=1).state_dict().items() if not k.endswith("num_batches_tracked")}
    model = tiny(3, seed=2)
    transfer_weights(model, source, keep_fc=False, origin="old.pth")
    assert torch.equal(model.layer3[0].bn2.running_var, source["layer3.0.bn2.running_var"])


@pytest.fixture(scope="module")
def resnet50_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], list[Path]]:
    """torchvision's resnet50 layout (random weights, no download) saved as .pth and .safetensors."""
    torch.manual_seed(0)
    state = torchvision.models.resnet50(weights=None).state_dict()
    folder = tmp_path_factory.mktemp("imagenet")
    torch.save(state, folder / "resnet50.pth")
    save_file(state, folder / "resnet50.safetensors")
    return state, [folder / "resnet50.pth", folder / "resnet50.safetensors"]


@pytest.mark.parametrize("which", [0, 1], ids=["pth", "safetensors"])
def test_imagenet_file_transfers_into_flow_r50(
    resnet50_files: tuple[dict[str, torch.Tensor], list[Path]], which: int
) -> None:
    state, paths = resnet50_files
    loaded = imagenet_state_dict("tsm_r50", paths[which])
    model = build_tsm("tsm_r50", in_channels=10, num_classes=174, segments=8)
    transfer_weights(model, loaded, keep_fc=False, origin=str(paths[which]))
    got = model.state_dict()
    assert torch.equal(got["conv1.weight"], state["conv1.weight"].mean(1, keepdim=True).expand(-1, 10, -1, -1))
    for key in set(state) - {"conv1.weight", "fc.weight", "fc.bias"}:
        assert torch.equal(got[key], state[key]), key
    assert got["fc.weight"].shape == (174, 2048) and got["fc.weight"].abs().max() < 0.01


def test_imagenet_file_under_state_dict_with_module_prefix(tmp_path: Path) -> None:
    state = tiny(3).state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "w.pth.tar")
    loaded = imagenet_state_dict("tsm_tiny", tmp_path / "w.pth.tar")
    assert list(loaded) == list(state)
    assert all(torch.equal(loaded[k], v) for k, v in state.items())


@pytest.mark.parametrize("name", ["bad.pth", "bad.safetensors", "absent.pth"])
def test_unreadable_file_raises_checkpoint_error_naming_it(tmp_path: Path, name: str) -> None:
    if name.startswith("bad"):
        (tmp_path / name).write_text("not weights")
    with pytest.raises(CheckpointError, match=name) as info:
        imagenet_state_dict("tsm_r50", tmp_path / name)
    assert "\n" not in str(info.value)


def test_file_that_is_not_a_state_dict(tmp_path: Path) -> None:
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    with pytest.raises(CheckpointError, match="list.pth: holds no tensors"):
        imagenet_state_dict("tsm_r50", tmp_path / "list.pth")


def test_arch_without_imagenet_weights() -> None:
    with pytest.raises(ValueError, match="tsm_tiny.*no torchvision ImageNet weights"):
        imagenet_state_dict("tsm_tiny")
    with pytest.raises(ValueError, match="unknown arch 'r50'"):
        imagenet_state_dict("r50")


@pytest.mark.parametrize("fc_lr5", [True, False])
def test_param_groups_cover_every_parameter_once(fc_lr5: bool) -> None:
    model = tiny(10)
    groups = param_groups(model, fc_lr5=fc_lr5)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in model.parameters()}
    assert all(g["params"] for g in groups)
    torch.optim.SGD(groups, lr=0.1)  # a valid optimiser spec
    by_name = {g["name"]: g for g in groups}
    mults = {name: (g["lr_mult"], g["decay_mult"]) for name, g in by_name.items()}
    assert by_name["first_conv_weight"]["params"] == [model.conv1.weight]
    assert "first_conv_bias" not in by_name  # the ResNet stem has no bias
    bn = {id(p) for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d) for p in m.parameters()}
    assert {id(p) for p in by_name["bn"]["params"]} == bn
    if fc_lr5:
        assert mults == {
            "first_conv_weight": (1, 1),
            "normal_weight": (1, 1),
            "bn": (1, 0),
            "lr5_weight": (5, 1),
            "lr10_bias": (10, 0),
        }
        assert by_name["lr5_weight"]["params"] == [model.fc.weight]
        assert by_name["lr10_bias"]["params"] == [model.fc.bias]
    else:
        assert mults == {"first_conv_weight": (1, 1), "normal_weight": (1, 1), "normal_bias": (2, 0), "bn": (1, 0)}
        assert by_name["normal_bias"]["params"] == [model.fc.bias]
        assert any(p is model.fc.weight for p in by_name["normal_weight"]["params"])


def test_param_groups_first_conv_bias_group() -> None:
    model = tiny(3)
    model.conv1 = torch.nn.Conv2d(3, 8, 7, stride=2, padding=3, bias=True)
    by_name = {g["name"]: g for g in param_groups(model, fc_lr5=True)}
    assert by_name["first_conv_bias"]["params"] == [model.conv1.bias]
    assert (by_name["first_conv_bias"]["lr_mult"], by_name["first_conv_bias"]["decay_mult"]) == (2, 0)


def test_param_groups_rejects_unknown_parameterised_module() -> None:
    model = tiny(3)
    model.layer1[0].bn1 = torch.nn.GroupNorm(2, 8)
    with pytest.raises(ValueError, match="GroupNorm"):
        param_groups(model, fc_lr5=False)


def test_adapt_first_conv_averages_inflated_3d_kernels() -> None:
    weight = torch.arange(2 * 3 * 2 * 1 * 1, dtype=torch.float32).view(2, 3, 2, 1, 1)
    adapted = adapt_first_conv(weight, 10)
    assert adapted.shape == (2, 10, 2, 1, 1)
    assert torch.equal(adapted[:, 4], weight.mean(dim=1))
