"""TSM ResNet (Lin et al., ICCV 2019): a 2D ResNet with a temporal shift in every residual branch.

Written out rather than wrapping torchvision's ``ResNet`` so that the shift, the per-frame head and the segment
consensus are explicit, while the state-dict keys stay identical to torchvision's (``conv1``, ``bn1``,
``layer{1..4}.{j}.conv{1,2,3}`` / ``.bn{1,2,3}`` / ``.downsample.{0,1}``, ``fc``) so its ImageNet weights load as
they are (see ``mml.models.init``).
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def temporal_shift(x: Tensor, segments: int, fold_div: int = 8) -> Tensor:
    """Shift 1/fold_div of the channels one frame back in time and another 1/fold_div one frame forward.

    Channels ``[0, fold)`` of frame t take frame t+1's values, channels ``[fold, 2*fold)`` take frame t-1's, the
    rest are unchanged; the missing frames at either end are zeros (TSM's out-of-place shift, ``fold = C //
    fold_div``). Each element is written once into a new tensor of ``x``'s memory format (contiguous or
    channels_last), so the shift costs one copy of the input and no layout conversion; autograd-correct.

    Args:
        x: Frame features ``(B*T, C, H, W)``, segment-major within each clip.
        segments: Frames per clip T.
        fold_div: Inverse of the fraction of channels shifted each way.

    Returns:
        A new tensor of the same shape and memory format as ``x``.
    """
    nt, c, h, w = x.shape
    if nt % segments:
        raise ValueError(f"temporal_shift: {nt} frames is not a multiple of segments={segments}")
    fold = c // fold_div
    shape = (nt // segments, segments, c, h, w)
    v = x.reshape(shape)  # a view for contiguous and channels_last inputs (it splits the batch dimension)
    out = torch.empty_like(x)
    o = out.view(shape)
    o[:, :-1, :fold] = v[:, 1:, :fold]
    o[:, -1, :fold] = 0
    o[:, 1:, fold : 2 * fold] = v[:, :-1, fold : 2 * fold]
    o[:, 0, fold : 2 * fold] = 0
    o[:, :, 2 * fold :] = v[:, :, 2 * fold :]
    return out


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck (stride on the 3x3 conv) with TSM's "blockres" shift on the input of ``conv1``.

    Only the residual branch sees shifted features; the identity / downsample path does not.
    """

    expansion = 4

    def __init__(self, in_planes: int, planes: int, *, stride: int, segments: int, shift_div: int, shift: bool) -> None:
        """Build the block.

        Args:
            in_planes: Input channels.
            planes: Bottleneck width; the block outputs ``4 * planes`` channels.
            stride: Spatial stride of ``conv2`` and of the downsample path.
            segments: Frames per clip, for the shift.
            shift_div: Inverse of the fraction of channels shifted each way.
            shift: Whether this block shifts (TSM shifts every other block of ResNet-101).
        """
        super().__init__()
        out_planes = planes * self.expansion
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_planes)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_planes != out_planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, out_planes, 1, stride=stride, bias=False), nn.BatchNorm2d(out_planes)
            )
        self.segments = segments
        self.shift_div = shift_div
        self.shift = shift

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B*T, in_planes, H, W)`` to ``(B*T, 4*planes, H/stride, W/stride)``."""
        identity = x if self.downsample is None else self.downsample(x)
        y = temporal_shift(x, self.segments, self.shift_div) if self.shift else x
        y = F.relu(self.bn1(self.conv1(y)), inplace=True)
        y = F.relu(self.bn2(self.conv2(y)), inplace=True)
        y = self.bn3(self.conv3(y))
        return F.relu(y + identity, inplace=True)

    def extra_repr(self) -> str:
        """Show the shift settings in ``print(model)``."""
        return f"segments={self.segments}, shift_div={self.shift_div}, shift={self.shift}"


class TSMResNet(nn.Module):
    """TSM ResNet with TSN's head: per-frame global pool, dropout and fc, then the mean of the logits over T.

    - Input is ``(B, T*C, H, W)``, segment-major (frame t occupies channels ``[t*C, (t+1)*C)``).
    - Every bottleneck shifts, except that (as TSM does) a network whose third stage has >= 23 blocks
      (ResNet-101) shifts only every other block of each stage.
    """

    def __init__(
        self,
        *,
        blocks: tuple[int, ...],
        widths: tuple[int, ...],
        in_channels: int,
        num_classes: int,
        segments: int,
        shift_div: int = 8,
        dropout: float = 0.5,
    ) -> None:
        """Build and initialise the network.

        Args:
            blocks: Bottlenecks per stage (4 stages).
            widths: Bottleneck width per stage; the stem has ``widths[0]`` channels.
            in_channels: Channels per input frame (3 RGB, 10 Flow, 15 Diff).
            num_classes: Output classes.
            segments: Frames per clip T.
            shift_div: Inverse of the fraction of channels shifted each way.
            dropout: Dropout probability before fc.
        """
        super().__init__()
        if len(blocks) != 4 or len(widths) != 4:
            raise ValueError(f"TSMResNet needs 4 stages, got blocks={blocks} widths={widths}")
        self.in_channels = in_channels
        self.segments = segments
        self.conv1 = nn.Conv2d(in_channels, widths[0], 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        every = 2 if blocks[2] >= 23 else 1
        stages = []
        in_planes = widths[0]
        for n, planes, stride in zip(blocks, widths, (1, 2, 2, 2), strict=True):
            stages.append(
                nn.Sequential(
                    *(
                        Bottleneck(
                            in_planes if j == 0 else planes * Bottleneck.expansion,
                            planes,
                            stride=stride if j == 0 else 1,
                            segments=segments,
                            shift_div=shift_div,
                            shift=j % every == 0,
                        )
                        for j in range(n)
                    )
                )
            )
            in_planes = planes * Bottleneck.expansion
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_planes, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """torchvision's ResNet init for the backbone; TSM's N(0, 0.001) init for the new fc."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        nn.init.normal_(self.fc.weight, 0.0, 0.001)
        nn.init.zeros_(self.fc.bias)

    def features(self, x: Tensor) -> Tensor:
        """Last stage's feature map ``(B*T, 4*widths[-1], h, w)`` of clips ``(B, T*C, H, W)``."""
        b, tc, h, w = x.shape
        if tc != self.segments * self.in_channels:
            raise ValueError(
                f"TSMResNet expects {self.segments} segments x {self.in_channels} channels = "
                f"{self.segments * self.in_channels} input channels, got {tc}"
            )
        y = x.reshape(b * self.segments, self.in_channels, h, w)
        y = self.maxpool(F.relu(self.bn1(self.conv1(y)), inplace=True))
        return self.layer4(self.layer3(self.layer2(self.layer1(y))))

    def head(self, features: Tensor) -> Tensor:
        """Clip logits ``(B, num_classes)`` from ``features()``: pool, dropout, fc per frame, mean over T."""
        y = self.fc(self.dropout(features.mean(dim=(2, 3))))
        return y.reshape(-1, self.segments, y.shape[-1]).mean(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        """Clip logits ``(B, num_classes)`` of clips ``(B, T*C, H, W)``."""
        return self.head(self.features(x))


@dataclass(frozen=True)
class ArchSpec:
    """A TSM ResNet architecture.

    Attributes:
        blocks: Bottlenecks per stage.
        widths: Bottleneck width per stage.
        imagenet: Name of torchvision's ImageNet weights for the matching ResNet (``torchvision.models.get_weight``),
            or None when there is none.
    """

    blocks: tuple[int, ...]
    widths: tuple[int, ...]
    imagenet: str | None


ARCHS = {
    "tsm_r50": ArchSpec((3, 4, 6, 3), (64, 128, 256, 512), "ResNet50_Weights.IMAGENET1K_V1"),
    "tsm_r101": ArchSpec((3, 4, 23, 3), (64, 128, 256, 512), "ResNet101_Weights.IMAGENET1K_V1"),
    "tsm_tiny": ArchSpec((1, 1, 1, 1), (16, 32, 64, 128), None),
}


def arch_spec(arch: str) -> ArchSpec:
    """The spec of a named architecture; ValueError naming the known ones for an unknown name."""
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(sorted(ARCHS))}")
    return ARCHS[arch]


def build_tsm(arch: str, *, in_channels: int, num_classes: int, segments: int, dropout: float = 0.5) -> TSMResNet:
    """A freshly initialised TSM ResNet of a named architecture (see ``ARCHS``)."""
    spec = arch_spec(arch)
    return TSMResNet(
        blocks=spec.blocks,
        widths=spec.widths,
        in_channels=in_channels,
        num_classes=num_classes,
        segments=segments,
        dropout=dropout,
    )
