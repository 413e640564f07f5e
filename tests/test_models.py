"""TSM ResNet: the temporal shift, shapes, torchvision key layout, segment consensus and initialisation."""

import pytest
import torch
import torchvision

from mml.models.tsm import ARCHS, Bottleneck, TSMResNet, build_tsm, temporal_shift


def reference_shift(x: torch.Tensor, segments: int, fold_div: int) -> torch.Tensor:
    """TSM's shift written as an explicit loop over clips, frames and channels."""
    nt, c, h, w = x.shape
    fold = c // fold_div
    out = torch.empty_like(x)
    for b in range(nt // segments):
        for t in range(segments):
            i = b * segments + t
            for ch in range(c):
                if ch < fold:
                    out[i, ch] = x[i + 1, ch] if t + 1 < segments else 0
                elif ch < 2 * fold:
                    out[i, ch] = x[i - 1, ch] if t > 0 else 0
                else:
                    out[i, ch] = x[i, ch]
    return out


@pytest.mark.parametrize(("segments", "channels", "fold_div"), [(4, 16, 8), (3, 9, 4), (1, 8, 8), (2, 5, 8)])
def test_temporal_shift_matches_reference_loop(segments: int, channels: int, fold_div: int) -> None:
    x = torch.randn(2 * segments, channels, 3, 2)
    torch.testing.assert_close(temporal_shift(x, segments, fold_div), reference_shift(x, segments, fold_div))


def test_temporal_shift_keeps_channels_last_and_its_gradient() -> None:
    x = torch.randn(8, 16, 3, 5).to(memory_format=torch.channels_last).requires_grad_()
    out = temporal_shift(x, 4)
    assert out.is_contiguous(memory_format=torch.channels_last)
    reference = x.detach().contiguous().requires_grad_()
    expected = reference_shift(reference, 4, 8)
    torch.testing.assert_close(out, expected)
    weight = torch.randn(8, 16, 3, 5)
    (out * weight).sum().backward()
    (expected * weight).sum().backward()
    torch.testing.assert_close(x.grad, reference.grad)


def test_temporal_shift_blocks_by_hand() -> None:
    # one clip, 3 frames, 8 channels, fold_div 4 -> fold 2: channels 0-1 from next, 2-3 from previous, 4-7 unchanged
    x = torch.arange(3 * 8, dtype=torch.float32).reshape(3, 8, 1, 1) + 1
    out = temporal_shift(x, 3, 4)[:, :, 0, 0]
    frames = x[:, :, 0, 0]
    assert out[0, :2].tolist() == frames[1, :2].tolist()
    assert out[1, :2].tolist() == frames[2, :2].tolist()
    assert out[2, :2].tolist() == [0.0, 0.0]
    assert out[0, 2:4].tolist() == [0.0, 0.0]
    assert out[1, 2:4].tolist() == frames[0, 2:4].tolist()
    assert out[2, 2:4].tolist() == frames[1, 2:4].tolist()
    assert out[:, 4:].tolist() == frames[:, 4:].tolist()


def test_temporal_shift_gradient_is_the_reverse_shift() -> None:
    x = torch.randn(6, 16, 2, 2, requires_grad=True)
    weight = torch.randn(6, 16, 2, 2)
    (temporal_shift(x, 3) * weight).sum().backward()
    expected = x.detach().clone().requires_grad_()
    (reference_shift(expected, 3, 8) * weight).sum().backward()
    torch.testing.assert_close(x.grad, expected.grad)
    assert x.grad is not None and x.grad[:, 4:].abs().sum() > 0


def test_temporal_shift_rejects_partial_clip() -> None:
    with pytest.raises(ValueError, match="segments=3"):
        temporal_shift(torch.randn(4, 8, 1, 1), 3)


@pytest.mark.parametrize("in_channels", [3, 10, 15])
def test_tiny_forward_and_features_shapes(in_channels: int) -> None:
    model = build_tsm("tsm_tiny", in_channels=in_channels, num_classes=7, segments=3).eval()
    x = torch.randn(2, 3 * in_channels, 64, 64)
    assert model(x).shape == (2, 7)
    assert model.features(x).shape == (2 * 3, 128 * 4, 2, 2)


def test_forward_rejects_wrong_channel_count() -> None:
    model = build_tsm("tsm_tiny", in_channels=10, num_classes=7, segments=3)
    with pytest.raises(ValueError, match="30 input channels, got 9"):
        model(torch.randn(1, 9, 32, 32))


def test_r50_state_dict_keys_and_shapes_equal_torchvision() -> None:
    ours = build_tsm("tsm_r50", in_channels=3, num_classes=1000, segments=8).state_dict()
    theirs = torchvision.models.resnet50(weights=None).state_dict()
    assert list(ours) == list(theirs)
    assert {k: v.shape for k, v in ours.items()} == {k: v.shape for k, v in theirs.items()}


def test_shift_placement_follows_tsm() -> None:
    r50 = build_tsm("tsm_r50", in_channels=3, num_classes=5, segments=8)
    assert all(b.shift for b in r50.modules() if isinstance(b, Bottleneck))
    # TSM shifts every other block of every stage once the third stage has >= 23 blocks (ResNet-101)
    deep = TSMResNet(blocks=(2, 1, 23, 3), widths=(2, 2, 2, 2), in_channels=3, num_classes=5, segments=2)
    assert [b.shift for b in deep.layer1] == [True, False]
    assert [b.shift for b in deep.layer3][:4] == [True, False, True, False]
    assert sum(b.shift for b in deep.layer3) == 12


def test_shift_is_in_the_residual_branch_only() -> None:
    torch.manual_seed(0)
    block = Bottleneck(16, 4, stride=1, segments=2, shift_div=8, shift=True).eval()
    x = torch.randn(4, 16, 3, 3)
    with torch.no_grad():
        y = torch.relu(block.bn1(block.conv1(reference_shift(x, 2, 8))))
        y = torch.relu(block.bn2(block.conv2(y)))
        torch.testing.assert_close(block(x), torch.relu(block.bn3(block.conv3(y)) + x))


def test_consensus_is_mean_of_per_frame_logits() -> None:
    torch.manual_seed(0)
    model = build_tsm("tsm_tiny", in_channels=3, num_classes=5, segments=4).eval()
    torch.nn.init.normal_(model.fc.weight)
    x = torch.randn(2, 4 * 3, 32, 32)
    with torch.no_grad():
        pooled = model.features(x).mean(dim=(2, 3))
        per_frame = pooled @ model.fc.weight.T + model.fc.bias
        expected = per_frame.reshape(2, 4, 5).mean(dim=1)
        torch.testing.assert_close(model(x), expected)
        assert not torch.allclose(per_frame.reshape(2, 4, 5)[:, 0], expected)


def test_init_is_deterministic_and_follows_recipe() -> None:
    torch.manual_seed(3)
    a = build_tsm("tsm_tiny", in_channels=10, num_classes=5, segments=2)
    torch.manual_seed(3)
    b = build_tsm("tsm_tiny", in_channels=10, num_classes=5, segments=2)
    for (name, va), vb in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(va, vb), name
    assert torch.equal(a.bn1.weight, torch.ones(16)) and torch.equal(a.layer2[0].bn3.bias, torch.zeros(128))
    assert torch.equal(a.fc.bias, torch.zeros(5))
    assert a.fc.weight.std().item() == pytest.approx(0.001, rel=0.3)
    conv = a.layer4[0].conv3  # 1x1, 128 -> 512: kaiming fan_out (512) differs from fan_in (128) by 4x
    assert conv.weight.std().item() == pytest.approx((2 / 512) ** 0.5, rel=0.1)


def test_dropout_only_in_training() -> None:
    model = build_tsm("tsm_tiny", in_channels=3, num_classes=5, segments=2, dropout=0.9)
    torch.nn.init.normal_(model.fc.weight)
    x = torch.randn(1, 6, 32, 32)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))


def test_unknown_arch_names_known_ones() -> None:
    with pytest.raises(ValueError, match="tsm_r18.*tsm_r101, tsm_r50, tsm_tiny"):
        build_tsm("tsm_r18", in_channels=3, num_classes=5, segments=2)
    assert ARCHS["tsm_r101"].imagenet == "ResNet101_Weights.IMAGENET1K_V1"
    assert ARCHS["tsm_tiny"].imagenet is None
