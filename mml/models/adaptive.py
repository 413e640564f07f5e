"""AdaMML (Panda et al., ICCV 2021): the policy that picks, per segment, which modalities the recognition networks
see, and the decision-weighted late fusion of their logits.

A video is S segments. For every segment the policy makes M independent binary decisions d[n,s,m] (1 = run modality
m's recognition network on segment s of video n), from a cheap view of the segment (``policy_input``) and, through an
LSTM over the segments, from the earlier segments. The video logits are the mean over all S segments of the
weighted sum over modalities of the decided logits (``adaptive_fusion``). Decisions are hard in the forward pass and
differentiable through straight-through Gumbel-Softmax (``gumbel_decisions``), so the classification loss and
``mml.losses.efficiency_loss`` train the policy; ``mml.report.cost.adaptive_gflops`` turns the selection ratios
into a cost.
"""

from collections.abc import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mml.models.fusion import pooled_features
from mml.models.tsm import TSMResNet, build_tsm


def gumbel_decisions(logits: Tensor, temperature: float, sample: bool) -> Tensor:
    """Binary use decisions from skip/use logits.

    - ``sample=True`` (training): a hard straight-through Gumbel-Softmax sample at ``temperature``; the forward
      value is exactly 0 or 1, the gradient is that of the soft sample ``softmax((logits + g) / temperature)``.
    - ``sample=False`` (evaluation): the deterministic argmax, 1 where ``logits[..., 1] > logits[..., 0]`` (a tie
      skips), with no noise and no gradient. The released AdaMML code samples at test time too, which makes its
      accuracy and cost stochastic; we deliberately do not.

    Args:
        logits: ``(..., 2)`` logits, index 0 = skip, 1 = use.
        temperature: Gumbel-Softmax temperature τ > 0 (AdaMML: 5.0, ×0.965 after each alternating epoch).
        sample: Whether to sample (training) or take the argmax (evaluation).

    Returns:
        ``(...)`` decisions in {0, 1}, in ``logits``' dtype.
    """
    if logits.shape[-1:] != (2,):
        raise ValueError(f"gumbel_decisions expects (..., 2) skip/use logits, got shape {tuple(logits.shape)}")
    if not temperature > 0:
        raise ValueError(f"gumbel_decisions: temperature must be > 0, got {temperature}")
    if sample:
        return F.gumbel_softmax(logits, tau=temperature, hard=True, dim=-1)[..., 1]
    return (logits[..., 1] > logits[..., 0]).to(logits.dtype)


class PolicyNetwork(nn.Module):
    """AdaMML's policy: per-modality light backbones, a joint MLP, an LSTM over segments and one 2-way head per
    recognition modality.

    - Each policy modality (e.g. RGB and RGBDiff, the original's cheap proxy for flow) has its own small TSM ResNet
      (``arch``); its ``features()`` pooled over space and frames is the modality's feature of a segment. This
      stands in for the original's ImageNet MobileNetV2 (1280-d, with temporal max-pooling).
    - The features are concatenated, then Linear(joint_width) + ReLU, Linear(joint_width) + ReLU.
    - One ``LSTMCell`` runs over the segments; its input is the joint feature and the previous segment's raw 2-way
      logits of all M heads (zeros at segment 0, not detached), and its state carries across segments.
    - M separate Linear(hidden, 2) heads give each segment's skip/use logits; ``gumbel_decisions`` turns them into
      decisions.
    """

    def __init__(
        self,
        inputs: Mapping[str, int],
        decided: int,
        num_frames: int,
        arch: str,
        joint_width: int = 2048,
        hidden: int = 256,
    ) -> None:
        """Build and initialise the policy.

        Args:
            inputs: Channels per frame of each policy modality, e.g. ``{"RGB": 3, "Diff": 15}``.
            decided: Number of decision heads M, one per recognition modality, in the recognition order.
            num_frames: Frames per segment the policy sees (``policy_input``'s ``frames``).
            arch: Backbone architecture, a name in ``mml.models.tsm.ARCHS`` (e.g. ``"tsm_tiny"``).
            joint_width: Width of the joint MLP's two layers (original: 2048).
            hidden: LSTM hidden size (original: 256).
        """
        super().__init__()
        if not inputs:
            raise ValueError("PolicyNetwork needs at least one policy input modality")
        if decided < 1:
            raise ValueError(f"PolicyNetwork needs at least one decision head, got decided={decided}")
        self.channels = dict(inputs)
        self.decided = decided
        self.num_frames = num_frames
        self.backbones = nn.ModuleDict()
        width = 0
        for name, channels in inputs.items():
            backbone = build_tsm(arch, in_channels=channels, num_classes=1, segments=num_frames)
            width += backbone.fc.in_features
            # Only features() is used; dropping the unused classifier keeps every parameter in the graph (DDP).
            del backbone.fc
            self.backbones[name] = backbone
        self.joint = nn.Sequential(
            nn.Linear(width, joint_width),
            nn.ReLU(inplace=True),
            nn.Linear(joint_width, joint_width),
            nn.ReLU(inplace=True),
        )
        self.lstm = nn.LSTMCell(joint_width + 2 * decided, hidden)
        self.heads = nn.ModuleList(nn.Linear(hidden, 2) for _ in range(decided))

    def forward(self, inputs: Mapping[str, Tensor], temperature: float, sample: bool) -> tuple[Tensor, Tensor]:
        """Decisions and logits for every segment of a batch of videos.

        Args:
            inputs: One tensor ``(N, S, num_frames * C, H, W)`` per policy modality (N videos, S segments, C its
                channels per frame), all with the same N and S.
            temperature: Gumbel-Softmax temperature (``gumbel_decisions``).
            sample: Sample the decisions (training) or take the argmax (evaluation).

        Returns:
            ``(decisions, logits)``: decisions ``(N, S, M)`` in {0, 1} (float) and skip/use logits ``(N, S, M, 2)``.
        """
        self._check(inputs)
        n, s = next(iter(inputs.values())).shape[:2]
        features = []
        for name, backbone in self.backbones.items():
            assert isinstance(backbone, TSMResNet)  # built in __init__
            segments = inputs[name].flatten(0, 1)  # (N*S, T*C, H, W)
            features.append(pooled_features(backbone, backbone.features(segments)).reshape(n, s, -1))
        joint = self.joint(torch.cat(features, dim=-1))  # (N, S, joint_width)
        state = (joint.new_zeros(n, self.lstm.hidden_size), joint.new_zeros(n, self.lstm.hidden_size))
        previous = joint.new_zeros(n, 2 * self.decided)
        logits = []
        for t in range(s):
            state = self.lstm(torch.cat([joint[:, t], previous], dim=1), state)
            segment = torch.stack([head(state[0]) for head in self.heads], dim=1)  # (N, M, 2)
            logits.append(segment)
            previous = segment.flatten(1)
        stacked = torch.stack(logits, dim=1)
        return gumbel_decisions(stacked, temperature, sample), stacked

    def _check(self, inputs: Mapping[str, Tensor]) -> None:
        """ValueError naming the modality for a missing or extra input, a wrong shape or channel count."""
        for name in self.channels:
            if name not in inputs:
                raise ValueError(f"PolicyNetwork: missing input {name!r}; expects {sorted(self.channels)}")
        for name in inputs:
            if name not in self.channels:
                raise ValueError(f"PolicyNetwork: unexpected input {name!r}; expects {sorted(self.channels)}")
        for name, x in inputs.items():
            expected = self.num_frames * self.channels[name]
            if x.ndim != 5 or x.shape[2] != expected:
                raise ValueError(
                    f"PolicyNetwork: input {name!r} must be (N, S, {self.num_frames} frames x "
                    f"{self.channels[name]} channels = {expected}, H, W), got {tuple(x.shape)}"
                )
        if len({tuple(x.shape[:2]) for x in inputs.values()}) != 1:
            shapes = {name: tuple(x.shape[:2]) for name, x in inputs.items()}
            raise ValueError(f"PolicyNetwork: inputs differ in (N, S): {shapes}")


def policy_input(clip: Tensor, size: int, frames: int, *, channels: int) -> Tensor:
    """The policy's cheap view of recognition clips: every (T/frames)-th frame, starting at the first, bilinearly
    resized to ``size`` x ``size`` (original: 8 x 224² -> 4 x 160²).

    Args:
        clip: Clips ``(..., T*C, H, W)``, frame t in channels ``[t*C, (t+1)*C)`` (e.g. ``(N, T*C, H, W)`` or
            ``(N, S, T*C, H, W)``).
        size: Output side.
        frames: Frames kept; must divide T.
        channels: Channels per frame C.

    Returns:
        ``(..., frames*C, size, size)``.
    """
    if clip.ndim < 3 or channels < 1 or clip.shape[-3] % channels:
        raise ValueError(f"policy_input: clip {tuple(clip.shape)} is not (..., T*C, H, W) with C={channels}")
    total = clip.shape[-3] // channels
    if frames < 1 or total % frames:
        raise ValueError(f"policy_input: frames={frames} must divide the clip's {total} frames")
    if size < 1:
        raise ValueError(f"policy_input: size must be >= 1, got {size}")
    lead, (h, w) = clip.shape[:-3], clip.shape[-2:]
    kept = clip.reshape(-1, total, channels, h, w)[:, :: total // frames]  # (B, frames, C, H, W)
    resized = F.interpolate(kept.flatten(0, 1), size=(size, size), mode="bilinear", align_corners=False)
    return resized.reshape(*lead, frames * channels, size, size)


class FusionWeights(nn.Module):
    """AdaMML's learnable late-fusion weights w (M,): M-1 free parameters initialised to 1/M and the last weight 1
    minus their sum, so they sum to 1 but (as in the original) are not constrained to be positive. M = 1 gives the
    constant [1.0]."""

    def __init__(self, modalities: int) -> None:
        """M = ``modalities`` weights."""
        super().__init__()
        if modalities < 1:
            raise ValueError(f"FusionWeights needs at least one modality, got {modalities}")
        self.free = nn.Parameter(torch.full((modalities - 1,), 1.0 / modalities))

    def forward(self) -> Tensor:
        """The weights ``(M,)``."""
        return torch.cat([self.free, (1 - self.free.sum()).reshape(1)])


def adaptive_fusion(segment_logits: Tensor, decisions: Tensor, weights: Tensor) -> Tensor:
    """Video logits ``(N, K)`` = (1/S) Σ_s Σ_m w_m · d[n,s,m] · z[n,s,m].

    Always divides by S: a skipped modality adds nothing to its segment, a segment with every modality skipped adds
    an all-zero vector that still counts in the mean, and nothing is renormalised (as the original).

    Args:
        segment_logits: Per-segment per-modality logits z ``(N, S, M, K)``.
        decisions: Decisions d ``(N, S, M)``.
        weights: Fusion weights w ``(M,)`` (``FusionWeights``).
    """
    if segment_logits.ndim != 4:
        raise ValueError(f"adaptive_fusion: segment_logits must be (N, S, M, K), got {tuple(segment_logits.shape)}")
    if decisions.shape != segment_logits.shape[:3]:
        raise ValueError(
            f"adaptive_fusion: decisions {tuple(decisions.shape)} must be (N, S, M) = "
            f"{tuple(segment_logits.shape[:3])} to match segment_logits"
        )
    if weights.shape != segment_logits.shape[2:3]:
        raise ValueError(f"adaptive_fusion: weights {tuple(weights.shape)} must be (M,) = ({segment_logits.shape[2]},)")
    return (segment_logits * (decisions * weights)[..., None]).sum(dim=2).mean(dim=1)
