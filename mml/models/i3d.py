"""I3D ResNet (Carreira & Zisserman, CVPR 2017) as PySlowFast's ``I3D_8x8_R50`` builds it, for the Charades setup.

PySlowFast's ``ResNet`` with ``ARCH i3d``: a 5x7x7 stem conv with stride (1, 2, 2), a 1x3x3 max-pool with stride
(1, 2, 2), bottlenecks whose first conv is inflated in time (kernel t x 1 x 1, t from ``_TEMPORAL_KERNEL_BASIS``:
res2 3, res3 3/1 alternating, res4 3/1, res5 1/3), a 1x3x3 second conv carrying the spatial stride (``STRIDE_1X1
False``), a 2x1x1 temporal max-pool after res2 (``_POOL1``), then global average pooling, dropout and fc. State-dict
keys follow torchvision's ResNet (``conv1``, ``bn1``, ``layer{1..4}.{j}.conv{1,2,3}`` / ``.bn{1,2,3}`` /
``.downsample.{0,1}``, ``fc``) so 2D ResNet weights inflate key by key (``inflate_2d_state_dict``).
"""

from collections.abc import Mapping

import torch.nn.functional as F
from torch import Tensor, nn

from mml.models.init import adapt_first_conv
from mml.models.tsm import ArchSpec

STEM_TEMPORAL_KERNEL = 5
# PySlowFast's _TEMPORAL_KERNEL_BASIS["i3d"] for res2..res5: block j of a stage takes basis[j % len(basis)].
TEMPORAL_KERNEL_BASIS: tuple[tuple[int, ...], ...] = ((3,), (3, 1), (3, 1), (1, 3))
TEMPORAL_POOL = 2


class Bottleneck3d(nn.Module):
    """Inflated ResNet bottleneck: t x 1 x 1 conv, 1 x 3 x 3 conv (spatial stride), 1 x 1 x 1 conv, residual."""

    expansion = 4

    def __init__(self, in_planes: int, planes: int, *, stride: int, temporal_kernel: int) -> None:
        """Build the block.

        Args:
            in_planes: Input channels.
            planes: Bottleneck width; the block outputs ``4 * planes`` channels.
            stride: Spatial stride of ``conv2`` and of the downsample path (never strided in time).
            temporal_kernel: Temporal size of ``conv1`` (odd; padded to keep the length).
        """
        super().__init__()
        out_planes = planes * self.expansion
        t = temporal_kernel
        self.conv1 = nn.Conv3d(in_planes, planes, (t, 1, 1), padding=(t // 2, 0, 0), bias=False)
        self.bn1 = nn.BatchNorm3d(planes)
        self.conv2 = nn.Conv3d(planes, planes, (1, 3, 3), stride=(1, stride, stride), padding=(0, 1, 1), bias=False)
        self.bn2 = nn.BatchNorm3d(planes)
        self.conv3 = nn.Conv3d(planes, out_planes, 1, bias=False)
        self.bn3 = nn.BatchNorm3d(out_planes)
        self.downsample: nn.Sequential | None = None
        if stride != 1 or in_planes != out_planes:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_planes, out_planes, 1, stride=(1, stride, stride), bias=False),
                nn.BatchNorm3d(out_planes),
            )

    def forward(self, x: Tensor) -> Tensor:
        """Map ``(B, in_planes, T, H, W)`` to ``(B, 4*planes, T, H/stride, W/stride)``."""
        identity = x if self.downsample is None else self.downsample(x)
        y = F.relu(self.bn1(self.conv1(x)), inplace=True)
        y = F.relu(self.bn2(self.conv2(y)), inplace=True)
        y = self.bn3(self.conv3(y))
        return F.relu(y + identity, inplace=True)


class I3DResNet(nn.Module):
    """I3D ResNet on clips ``(B, C, T, H, W)``; the temporal length is halved once, after the first stage."""

    def __init__(
        self,
        *,
        blocks: tuple[int, ...],
        widths: tuple[int, ...],
        in_channels: int,
        num_classes: int,
        dropout: float = 0.5,
        temporal_kernels: tuple[tuple[int, ...], ...],
    ) -> None:
        """Build and initialise the network.

        Args:
            blocks: Bottlenecks per stage (4 stages).
            widths: Bottleneck width per stage; the stem has ``widths[0]`` channels.
            in_channels: Input channels (3 RGB, 10 Flow).
            num_classes: Output classes.
            dropout: Dropout probability before fc.
            temporal_kernels: Temporal size of ``conv1`` of every block, per stage (odd sizes; see
                ``i3d_temporal_kernels``).
        """
        super().__init__()
        if len(blocks) != 4 or len(widths) != 4:
            raise ValueError(f"I3DResNet needs 4 stages, got blocks={blocks} widths={widths}")
        if tuple(len(kernels) for kernels in temporal_kernels) != tuple(blocks):
            raise ValueError(f"I3DResNet needs one temporal kernel per block of {blocks}, got {temporal_kernels}")
        if any(t < 1 or t % 2 == 0 for kernels in temporal_kernels for t in kernels):
            raise ValueError(f"I3DResNet temporal kernels must be odd and positive, got {temporal_kernels}")
        self.in_channels = in_channels
        self.temporal_kernels = temporal_kernels
        t = STEM_TEMPORAL_KERNEL
        self.conv1 = nn.Conv3d(in_channels, widths[0], (t, 7, 7), stride=(1, 2, 2), padding=(t // 2, 3, 3), bias=False)
        self.bn1 = nn.BatchNorm3d(widths[0])
        self.maxpool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.temporal_pool = nn.MaxPool3d((TEMPORAL_POOL, 1, 1), stride=(TEMPORAL_POOL, 1, 1))
        stages = []
        in_planes = widths[0]
        for planes, stride, kernels in zip(widths, (1, 2, 2, 2), temporal_kernels, strict=True):
            layers = []
            for j, kernel in enumerate(kernels):
                layers.append(Bottleneck3d(in_planes, planes, stride=stride if j == 0 else 1, temporal_kernel=kernel))
                in_planes = planes * Bottleneck3d.expansion
            stages.append(nn.Sequential(*layers))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(in_planes, num_classes)
        self._init_weights()

    def _init_weights(self) -> None:
        """PySlowFast's init: MSRA convs, BN weight 1 / bias 0, fc N(0, 0.01), each block's last BN weight 0.

        The zero final BN is its ``ZERO_INIT_FINAL_BN True`` (Charades and I3D configs): every block starts as the
        identity. Pretrained weights, inflated or not, overwrite all of this except fc.
        """
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        for m in self.modules():
            if isinstance(m, Bottleneck3d):
                nn.init.zeros_(m.bn3.weight)
        nn.init.normal_(self.fc.weight, 0.0, 0.01)
        nn.init.zeros_(self.fc.bias)

    def features(self, x: Tensor) -> Tensor:
        """Last stage's feature map ``(B, 4*widths[-1], T/2, H/32, W/32)`` of clips ``(B, C, T, H, W)``, T >= 2.

        Clips in the 2D models' segment-major layout ``(B, T*C, H, W)`` (what the data pipeline builds) are
        accepted too and viewed as ``(B, C, T, H, W)``.
        """
        if x.ndim == 4 and x.shape[1] % self.in_channels == 0:
            batch, _, height, width = x.shape
            x = x.view(batch, -1, self.in_channels, height, width).transpose(1, 2)
        if x.ndim != 5 or x.shape[1] != self.in_channels or x.shape[2] < TEMPORAL_POOL:
            raise ValueError(
                f"I3DResNet expects clips (B, {self.in_channels}, T >= {TEMPORAL_POOL}, H, W), got {tuple(x.shape)}"
            )
        y = self.maxpool(F.relu(self.bn1(self.conv1(x)), inplace=True))
        y = self.temporal_pool(self.layer1(y))
        return self.layer4(self.layer3(self.layer2(y)))

    def head(self, features: Tensor) -> Tensor:
        """Clip logits ``(B, num_classes)`` from ``features()``: global average pool, dropout, fc."""
        return self.fc(self.dropout(features.mean(dim=(2, 3, 4))))

    def forward(self, x: Tensor) -> Tensor:
        """Clip logits ``(B, num_classes)`` of clips ``(B, C, T, H, W)``."""
        return self.head(self.features(x))


def i3d_temporal_kernels(blocks: tuple[int, ...]) -> tuple[tuple[int, ...], ...]:
    """Per-block ``conv1`` temporal sizes of I3D: PySlowFast's basis cycled over each stage's blocks.

    For ResNet-50 (3, 4, 6, 3): res2 (3, 3, 3), res3 (3, 1, 3, 1), res4 (3, 1, 3, 1, 3, 1), res5 (1, 3, 1).
    """
    if len(blocks) != len(TEMPORAL_KERNEL_BASIS):
        raise ValueError(f"i3d_temporal_kernels needs {len(TEMPORAL_KERNEL_BASIS)} stages, got {blocks}")
    return tuple(
        tuple(basis[j % len(basis)] for j in range(n)) for n, basis in zip(blocks, TEMPORAL_KERNEL_BASIS, strict=True)
    )


# ``imagenet`` names the torchvision 2D weights that inflate into the arch.
I3D_ARCHS = {
    "i3d_r50": ArchSpec((3, 4, 6, 3), (64, 128, 256, 512), "ResNet50_Weights.IMAGENET1K_V1"),
    "i3d_tiny": ArchSpec((1, 1, 1, 1), (16, 32, 64, 128), None),
}
# The 2D backbone whose (ImageNet) weights each I3D backbone inflates.
I3D_2D_TWINS = {"i3d_r50": "tsm_r50", "i3d_tiny": "tsm_tiny"}


def build_i3d(arch: str, *, in_channels: int, num_classes: int, dropout: float = 0.5) -> I3DResNet:
    """A freshly initialised I3D ResNet of a named architecture (see ``I3D_ARCHS``)."""
    if arch not in I3D_ARCHS:
        raise ValueError(f"unknown arch {arch!r}; known: {', '.join(sorted(I3D_ARCHS))}")
    spec = I3D_ARCHS[arch]
    return I3DResNet(
        blocks=spec.blocks,
        widths=spec.widths,
        in_channels=in_channels,
        num_classes=num_classes,
        dropout=dropout,
        temporal_kernels=i3d_temporal_kernels(spec.blocks),
    )


def inflate_2d_state_dict(state_2d: Mapping[str, Tensor], model: nn.Module) -> dict[str, Tensor]:
    """Inflate a 2D ResNet state dict (torchvision's or our TSM ResNet's) to ``model``'s 3D convolutions.

    Each 2D kernel ``(o, i, k, k)`` whose key is a 5-d kernel ``(o, i, t, k, k)`` in ``model`` is repeated t times
    along time and divided by t (Carreira & Zisserman), so a clip constant in time gives the 2D response. A 2D
    ``conv1`` with another input channel count (RGB weights for a Flow model) first gets ``model``'s channel count
    via ``adapt_first_conv``. Every other entry (BN, fc, or a key ``model`` lacks) is passed through unchanged, for
    ``mml.models.init.transfer_weights`` to check and load (it drops an fc of another class count).
    """
    target = model.state_dict()
    inflated = {}
    for key, value in state_2d.items():
        own = target.get(key)
        if own is None or own.ndim != 5 or value.ndim != 4:
            inflated[key] = value
            continue
        if key == "conv1.weight" and value.shape[1] != own.shape[1]:
            value = adapt_first_conv(value, own.shape[1])
        t = own.shape[2]
        inflated[key] = value.unsqueeze(2).repeat(1, 1, t, 1, 1) / t
    return inflated
