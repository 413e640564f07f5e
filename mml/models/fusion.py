"""Late fusion with one head per modality and a fused head: Gradient-Blending's multi-head network (Wang et al.,
CVPR 2020, Fig. 2c and eq. 2).

Each modality has its own backbone (``TSMResNet`` or ``I3DResNet``). Its clip-level pooled features are
concatenated (the paper's ⊕) and classified by the fused head; each backbone's own head (its dropout and fc, so a
uni-modal checkpoint loads as it is) classifies its modality alone. G-Blend trains all heads with the blended loss
``mml.methods.gblend.blended_loss``; naive late fusion (Fig. 2b) is the same network trained with the fused head's loss
only.
"""

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from mml.models.i3d import I3DResNet
from mml.models.tsm import TSMResNet

FUSED = "fused"  # the fused head's name among the heads' logits, losses and G-Blend weights
# The backbones' own fc init std (TSM's N(0, 0.001), PySlowFast's N(0, 0.01)), used for the fused classifier.
FC_INIT_STD = {TSMResNet: 0.001, I3DResNet: 0.01}


def pooled_features(backbone: TSMResNet | I3DResNet, features: Tensor) -> Tensor:
    """Clip features ``(B, D)`` from ``backbone.features()``: the global average its head pools before fc.

    TSM averages over space and then over its T frames (its head averages per-frame logits instead, which is the
    same for a linear fc); I3D averages over time and space.
    """
    if isinstance(backbone, TSMResNet):
        per_frame = features.mean(dim=(2, 3))
        return per_frame.reshape(-1, backbone.segments, per_frame.shape[-1]).mean(dim=1)
    return features.mean(dim=(2, 3, 4))


class LateFusion(nn.Module):
    """Per-modality backbones, a fused classifier on their concatenated pooled features, and per-modality heads.

    The paper's experiments fuse with "a two-FC-layer network on concatenated features ..., followed by one
    prediction layer" (§3.1) without giving the widths; ``fused_hidden`` gives such layers (Linear + ReLU each,
    dropout before the prediction layer), and the default (no hidden layer) is a single linear fused head.
    """

    def __init__(
        self,
        backbones: Mapping[str, TSMResNet | I3DResNet],
        num_classes: int,
        *,
        dropout: float | None = None,
        fused_hidden: Sequence[int] = (),
    ) -> None:
        """Build the fused classifier over ``backbones`` (kept as they are, uni-modal heads included).

        Args:
            backbones: One backbone per modality name, all TSM or all I3D, each classifying ``num_classes``.
            num_classes: Output classes.
            dropout: Dropout before the fused prediction layer; None takes the backbones' (which must agree).
            fused_hidden: Widths of hidden Linear + ReLU layers before the fused prediction layer.
        """
        super().__init__()
        if not backbones or FUSED in backbones:
            raise ValueError(f"LateFusion needs modality backbones not named {FUSED!r}, got {sorted(backbones)}")
        kinds = {type(backbone) for backbone in backbones.values()}
        if len(kinds) != 1 or not kinds <= set(FC_INIT_STD):
            raise ValueError(f"LateFusion needs all backbones TSMResNet or I3DResNet, not {sorted(map(str, kinds))}")
        if any(backbone.fc.out_features != num_classes for backbone in backbones.values()):
            raise ValueError(f"LateFusion: every backbone must classify {num_classes} classes")
        if dropout is None:
            rates = {backbone.dropout.p for backbone in backbones.values()}
            if len(rates) != 1:
                raise ValueError(f"LateFusion: the backbones' dropout rates {sorted(rates)} differ; pass dropout=")
            (dropout,) = rates
        self.backbones = nn.ModuleDict(backbones)
        layers: list[nn.Module] = []
        width = sum(backbone.fc.in_features for backbone in backbones.values())
        for hidden in fused_hidden:
            layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
            width = hidden
        prediction = nn.Linear(width, num_classes)
        nn.init.normal_(prediction.weight, 0.0, FC_INIT_STD[kinds.pop()])
        nn.init.zeros_(prediction.bias)
        self.fused_head = nn.Sequential(*layers, nn.Dropout(dropout), prediction)

    def forward(self, inputs: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """Fused logits ``(B, num_classes)`` and each modality's own logits (``late_fusion``)."""
        return late_fusion(self.backbones, self.fused_head, inputs)


def late_fusion(
    backbones: Mapping[str, nn.Module] | nn.ModuleDict, fused_head: nn.Module, inputs: Mapping[str, Tensor]
) -> tuple[Tensor, dict[str, Tensor]]:
    """Fused logits ``(B, num_classes)`` and each modality's own logits, from each modality's clips: the forward
    pass of a late-fusion network, given its parts (a trainer holds the backbones and the fused head apart).

    Args:
        backbones: One backbone per modality name, as ``LateFusion``'s.
        fused_head: The fused classifier over the concatenated pooled features.
        inputs: One batch of clips per modality, each in its backbone's input layout, all of batch size B.
    """
    if set(inputs) != set(backbones):
        raise ValueError(f"LateFusion expects inputs for {sorted(backbones)}, got {sorted(inputs)}")
    pooled = []
    logits = {}
    for name, backbone in backbones.items():
        # Every branch is one (LateFusion checks its backbones; the trainers pass the run's built models).
        assert isinstance(backbone, TSMResNet | I3DResNet)
        features = backbone.features(inputs[name])
        pooled.append(pooled_features(backbone, features))
        logits[name] = backbone.head(features)
    if len({p.shape[0] for p in pooled}) != 1:
        raise ValueError(f"LateFusion: batch sizes differ across modalities: {[p.shape[0] for p in pooled]}")
    return fused_head(torch.cat(pooled, dim=1)), logits


class FusedLogits(nn.Module):
    """A late-fusion network called for its fused head's logits only: how a late-fusion model is evaluated."""

    def __init__(self, backbones: Mapping[str, nn.Module], fused_head: nn.Module) -> None:
        super().__init__()
        self.backbones = nn.ModuleDict(backbones)
        self.fused_head = fused_head

    def forward(self, inputs: Mapping[str, Tensor]) -> Tensor:
        return late_fusion(self.backbones, self.fused_head, inputs)[0]
