"""Tests of the I3D ResNet: shapes, inflation of 2D ResNet weights and PySlowFast's temporal kernel pattern."""

import pytest
import torch
import torch.nn.functional as F
import torchvision

from mml.models.i3d import I3D_ARCHS, I3DResNet, build_i3d, i3d_temporal_kernels, inflate_2d_state_dict
from mml.models.init import param_groups, transfer_weights
from mml.models.tsm import Bottleneck as TSMBottleneck
from mml.models.tsm import build_tsm


@pytest.fixture(scope="module")
def r50_pair() -> tuple[I3DResNet, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    return build_i3d("i3d_r50", in_channels=3, num_classes=157), torchvision.models.resnet50(weights=None).state_dict()


@pytest.mark.parametrize("in_channels", [3, 10])
def test_tiny_output_shapes(in_channels: int) -> None:
    model = build_i3d("i3d_tiny", in_channels=in_channels, num_classes=7).eval()
    clips = torch.randn(2, in_channels, 8, 64, 48)
    features = model.features(clips)
    # Temporal max-pool (2, 1, 1) after res2 only; spatial stride 32 overall.
    assert features.shape == (2, 4 * I3D_ARCHS["i3d_tiny"].widths[-1], 4, 2, 2)
    assert model.head(features).shape == (2, 7)
    assert torch.allclose(model(clips), model.head(features))


def test_rejects_clips_of_the_wrong_layout() -> None:
    model = build_i3d("i3d_tiny", in_channels=3, num_classes=2)
    for shape in [(1, 10, 8, 32, 32), (1, 3, 1, 32, 32), (3, 8, 32, 32)]:
        with pytest.raises(ValueError, match="I3DResNet expects"):
            model(torch.zeros(shape))


def test_r50_keys_and_shapes_correspond_to_torchvision_resnet50(r50_pair: tuple) -> None:
    model, state_2d = r50_pair
    state_3d = model.state_dict()
    assert set(state_3d) == set(state_2d)
    for key, value in state_2d.items():
        own = state_3d[key]
        if key.startswith("fc."):
            assert own.shape[1:] == value.shape[1:]
        elif value.ndim == 4:
            o, i, kh, kw = value.shape
            assert own.ndim == 5 and (own.shape[0], own.shape[1], own.shape[3], own.shape[4]) == (o, i, kh, kw), key
        else:
            assert own.shape == value.shape, key
    assert state_3d["conv1.weight"].shape == (64, 3, 5, 7, 7)
    assert state_3d["layer1.0.conv2.weight"].shape == (64, 64, 1, 3, 3)
    assert state_3d["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1, 1)


def test_r50_temporal_kernels_follow_pyslowfast_i3d() -> None:
    expected = ((3, 3, 3), (3, 1, 3, 1), (3, 1, 3, 1, 3, 1), (1, 3, 1))
    assert i3d_temporal_kernels((3, 4, 6, 3)) == expected
    model = build_i3d("i3d_r50", in_channels=3, num_classes=2)
    stages = (model.layer1, model.layer2, model.layer3, model.layer4)
    assert tuple(tuple(block.conv1.kernel_size[0] for block in stage) for stage in stages) == expected
    assert model.conv1.kernel_size == (5, 7, 7) and model.conv1.stride == (1, 2, 2)
    assert all(block.conv2.kernel_size == (1, 3, 3) for stage in stages for block in stage)


def test_inflation_reproduces_the_2d_response_on_a_constant_clip(r50_pair: tuple) -> None:
    model, state_2d = r50_pair
    inflated = inflate_2d_state_dict(state_2d, model)
    image = torch.randn(1, 3, 32, 32)
    clip = image.unsqueeze(2).expand(-1, -1, 6, -1, -1)
    response_3d = F.conv3d(clip, inflated["conv1.weight"], stride=(1, 2, 2), padding=(0, 3, 3))
    response_2d = F.conv2d(image, state_2d["conv1.weight"], stride=2, padding=3)
    assert response_3d.shape[2] == 2
    assert torch.allclose(response_3d, response_2d.unsqueeze(2).expand_as(response_3d), atol=1e-5)
    # Away from the zero-padded ends the model's own conv1 (time-padded) gives the 2D response too.
    transfer_weights(model, inflated, keep_fc=False, origin="torchvision")
    with torch.no_grad():
        own = model.conv1(clip)
    assert torch.allclose(own[:, :, 2:-2], response_2d.unsqueeze(2).expand_as(own[:, :, 2:-2]), atol=1e-5)
    assert not torch.allclose(own[:, :, :1], response_2d.unsqueeze(2), atol=1e-3)


def test_inflated_tiny_network_matches_the_2d_network_on_a_constant_clip() -> None:
    torch.manual_seed(1)
    tsm = build_tsm("tsm_tiny", in_channels=3, num_classes=4, segments=1).eval()
    for module in tsm.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(module.weight, 0.5, 1.5)
        if isinstance(module, TSMBottleneck):
            module.shift = False  # A plain 2D ResNet: on one segment the shift would zero some channels.
    i3d = build_i3d("i3d_tiny", in_channels=3, num_classes=4).eval()
    transfer_weights(i3d, inflate_2d_state_dict(tsm.state_dict(), i3d), keep_fc=True, origin="tsm_tiny")
    image = torch.randn(1, 3, 64, 64)
    # A long constant clip: the centre frame is far from the zero padding of every temporal conv.
    clip = image.unsqueeze(2).expand(-1, -1, 32, -1, -1)
    with torch.no_grad():
        centre = i3d.features(clip)[:, :, 8]
        expected = tsm.features(image)
    assert torch.allclose(centre, expected, atol=1e-4)


def test_flow_model_gets_its_first_conv_from_rgb_weights_by_channel_mean(r50_pair: tuple) -> None:
    _, state_2d = r50_pair
    flow = build_i3d("i3d_r50", in_channels=10, num_classes=157)
    transfer_weights(flow, inflate_2d_state_dict(state_2d, flow), keep_fc=False, origin="torchvision")
    weight = flow.conv1.weight.detach()
    assert weight.shape == (64, 10, 5, 7, 7)
    expected = state_2d["conv1.weight"].mean(dim=1) / 5
    assert torch.allclose(weight[:, 7, 2], expected, atol=1e-6)
    assert torch.allclose(weight[:, 0], weight[:, 9])


def test_param_groups_put_i3d_first_conv_and_fc_in_their_groups() -> None:
    model = build_i3d("i3d_tiny", in_channels=10, num_classes=3)
    groups = {group["name"]: group["params"] for group in param_groups(model, fc_lr5=True)}
    assert groups["first_conv_weight"] == [model.conv1.weight]
    assert groups["lr5_weight"] == [model.fc.weight] and groups["lr10_bias"] == [model.fc.bias]
    assert sum(len(params) for params in groups.values()) == len(list(model.parameters()))


def test_ctor_rejects_mismatched_or_even_temporal_kernels() -> None:
    spec = I3D_ARCHS["i3d_tiny"]
    common = {"blocks": spec.blocks, "widths": spec.widths, "in_channels": 3, "num_classes": 2}
    with pytest.raises(ValueError, match="one temporal kernel per block"):
        I3DResNet(**common, temporal_kernels=((3,), (3,), (3,)))
    with pytest.raises(ValueError, match="odd"):
        I3DResNet(**common, temporal_kernels=((3,), (2,), (3,), (1,)))
    with pytest.raises(ValueError, match="unknown arch"):
        build_i3d("i3d_r18", in_channels=3, num_classes=2)


def test_segment_major_clips_are_viewed_as_3d_clips() -> None:
    model = build_i3d("i3d_tiny", in_channels=10, num_classes=4).eval()
    clips = torch.randn(2, 10, 4, 32, 32)
    segment_major = clips.transpose(1, 2).reshape(2, 4 * 10, 32, 32)
    assert torch.allclose(model(segment_major), model(clips))
