"""The late-fusion network of Gradient-Blending: shapes, and uni-modal checkpoints loading into its branches."""

import pytest
import torch

from mml.models.fusion import FUSED, LateFusion, pooled_features
from mml.models.tsm import build_tsm


def backbone(channels: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_tsm("tsm_tiny", in_channels=channels, num_classes=5, segments=2)


def test_shapes_and_heads() -> None:
    fusion = LateFusion({"RGB": backbone(3, 0), "Flow": backbone(10, 1)}, num_classes=5, fused_hidden=(16,))
    inputs = {"RGB": torch.randn(3, 2 * 3, 32, 32), "Flow": torch.randn(3, 2 * 10, 32, 32)}
    fused, heads = fusion(inputs)
    assert fused.shape == (3, 5) and set(heads) == {"RGB", "Flow"} and heads["Flow"].shape == (3, 5)
    assert fusion.fused_head[0].in_features == 2 * 512
    with pytest.raises(ValueError, match="expects inputs"):
        fusion({"RGB": inputs["RGB"]})
    with pytest.raises(ValueError, match="not named"):
        LateFusion({FUSED: backbone(3, 0)}, num_classes=5)


def test_pooled_features_feed_the_backbones_own_fc() -> None:
    net = backbone(3, 0).eval()
    x = torch.randn(2, 6, 32, 32)
    features = net.features(x)
    # TSN's head averages per-frame logits; for a linear fc that is the fc of the averaged features.
    assert torch.allclose(net.fc(pooled_features(net, features)), net.head(features), atol=1e-6)


def test_unimodal_checkpoint_loads_into_a_branch() -> None:
    trained = backbone(3, 5).eval()
    fusion = LateFusion({"RGB": backbone(3, 0), "Flow": backbone(10, 1)}, num_classes=5).eval()
    fusion.backbones["RGB"].load_state_dict(trained.state_dict())
    x = {"RGB": torch.randn(2, 6, 32, 32), "Flow": torch.randn(2, 20, 32, 32)}
    _, heads = fusion(x)
    assert torch.equal(heads["RGB"], trained(x["RGB"]))
