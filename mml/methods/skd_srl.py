"""SKD-SRL (Vu, Phung & Wang, "A Novel Self-Knowledge Distillation Approach with Siamese Representation Learning
for Action Recognition"): its losses (eq. 2-5), its projector / predictor, and the two-view methods of its
Table II.

Two augmented views x1, x2 of each clip go through one shared encoder to representations r1, r2 (eq. 1), a shared
fc to logits p1, p2, and a ``SimSiamHead`` to projections z1, z2 and predictions v1, v2. The rows of Table II:

- Baseline: cross-entropy on one view.
- Baseline + Data augment: ``self_kd_loss(..., alpha=0)``, cross-entropy on both views.
- KD (a ResNet-50 teacher): ``mml.methods.distillation.distillation_loss``.
- Self-KD: ``self_kd_loss``, cross-entropy plus the soft-label distillation of eq. 2 (eq. 5 with β = 0).
- SKD-SRL: ``skd_srl_loss`` (eq. 5).

Every loss is a batch mean, as eq. 5's (1/n) Σ_i. The methods `ce_aug`, `self_kd` and `skd_srl` train one model
on two augmented views of each clip (`TwoViewMethod`) and are evaluated as a CE model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch.nn.functional as F
from torch import Tensor, nn

from mml.losses import tempered_kl, tempered_log_softmax
from mml.methods.base import Method, Training
from mml.methods.settings import MethodSettings
from mml.models.fusion import pooled_features

if TYPE_CHECKING:
    from mml.models.i3d import I3DResNet
    from mml.models.tsm import TSMResNet
    from mml.store import RunConfig

# §IV-A: "the temperature τ is set as 10, and the loss weights α and β are set as 0.1 and 1".
TAU, ALPHA, BETA = 10.0, 0.1, 1.0


@dataclass(frozen=True)
class SKDSettings(MethodSettings):
    """SKD-SRL's temperature τ of eq. 2 and weights α (distillation) and β (similarity) of eq. 5 (§IV-A)."""

    namespace = "skd"
    limits = {"tau": (lambda v: v > 0, "must be positive")}
    tau: float = TAU
    alpha: float = ALPHA
    beta: float = BETA


def soft_label_kl(p1: Tensor, p2: Tensor, tau: float = TAU, *, detach_target: bool = True) -> Tensor:
    """Eq. 2: D_KL(softmax(p/τ) || softmax(p1/τ)) + D_KL(softmax(p/τ) || softmax(p2/τ)), with p = p1 ⊕ p2.

    ⊕ is "the add operator" (the paper says so below eq. 1 and in Fig. 2), so p is the sum of the two views'
    logits. As printed there is no τ² factor, and it is not said whether p is a constant; the paper calls
    softmax(p/τ) the "soft label" that "transfers the knowledge for each branch", i.e. a teacher, so by default it
    is detached (as the stop-gradient targets of eq. 3, and the teachers of KD); ``detach_target=False`` lets the
    gradient flow through p as well, the literal reading of eq. 2.

    Args:
        p1: Logits ``(B, K)`` of the first view.
        p2: Logits ``(B, K)`` of the second view.
        tau: Temperature τ.
        detach_target: Whether the soft label softmax(p/τ) is a constant.
    """
    if p1.ndim != 2 or p1.shape != p2.shape:
        raise ValueError(f"soft_label_kl needs two (B, K) logits of one shape, got {tuple(p1.shape)} {tuple(p2.shape)}")
    p = p1 + p2
    target = tempered_log_softmax(p.detach() if detach_target else p, tau)
    return tempered_kl(target, p1, tau) + tempered_kl(target, p2, tau)


def negative_cosine(v: Tensor, z: Tensor) -> Tensor:
    """Eq. 4 with eq. 3's stop-gradient: D_sim(v, stopgrad(z)) = −(v/‖v‖₂)·(z/‖z‖₂), averaged over the batch.

    Args:
        v: Predictions ``(B, D)``; the gradient flows into them.
        z: Projections ``(B, D)``; a constant here.
    """
    if v.ndim != 2 or v.shape != z.shape:
        raise ValueError(f"negative_cosine needs two (B, D) tensors of a shape, got {tuple(v.shape)} {tuple(z.shape)}")
    return -(F.normalize(v, dim=1) * F.normalize(z.detach(), dim=1)).sum(dim=1).mean()


def simsiam_loss(z1: Tensor, z2: Tensor, v1: Tensor, v2: Tensor) -> Tensor:
    """Eq. 3: ½ D_sim(v1, stopgrad(z2)) + ½ D_sim(v2, stopgrad(z1)), SimSiam's symmetrised loss."""
    return 0.5 * negative_cosine(v1, z2) + 0.5 * negative_cosine(v2, z1)


class SimSiamHead(nn.Module):
    """SKD-SRL's projector g_ξ and predictor q_μ (§III-B): z = g(r), v = q(z).

    The projector is "just a single linear layer" of width 2048 (not SimSiam's 3-layer MLP); the predictor is
    SimSiam's bottleneck: Linear, BN, ReLU, then Linear without BN or activation, hidden width 512 for 2048-d z.
    The paper uses 2048 / 512 with both ResNet-18 (512-d r) and ResNet-50 (2048-d r); our defaults keep the
    projection as wide as r and the hidden layer a quarter of that (exactly the paper's for ResNet-50, and small for
    tiny models): pass ``dim=2048, hidden_dim=512`` for the paper's widths on another backbone.
    """

    def __init__(self, in_features: int, dim: int | None = None, hidden_dim: int | None = None) -> None:
        """Build the head.

        Args:
            in_features: Width of the representation r (the encoder's pooled features).
            dim: Width of z and v; defaults to ``in_features``.
            hidden_dim: Predictor hidden width; defaults to ``dim // 4``.
        """
        super().__init__()
        dim = in_features if dim is None else dim
        hidden_dim = max(dim // 4, 1) if hidden_dim is None else hidden_dim
        self.projector = nn.Linear(in_features, dim)
        self.predictor = nn.Sequential(
            nn.Linear(dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, dim),
        )

    def forward(self, r: Tensor) -> tuple[Tensor, Tensor]:
        """Projection z and prediction v, each ``(B, dim)``, of representations ``(B, in_features)``."""
        z = self.projector(r)
        return z, self.predictor(z)


def self_kd_loss(
    p1: Tensor, p2: Tensor, labels: Tensor, alpha: float = ALPHA, tau: float = TAU, *, detach_target: bool = True
) -> Tensor:
    """CE(y, p1) + CE(y, p2) + α L_KL(p1, p2; τ): eq. 5 without the similarity term (Table II's Self-KD row).

    With ``alpha=0`` it is Table II's "Baseline + Data augment": cross-entropy on both augmented views. The two
    cross-entropies are summed, not averaged, as eq. 5 prints them.
    """
    ce = F.cross_entropy(p1, labels) + F.cross_entropy(p2, labels)
    return ce + alpha * soft_label_kl(p1, p2, tau, detach_target=detach_target)


def skd_srl_loss(
    p1: Tensor,
    p2: Tensor,
    z1: Tensor,
    z2: Tensor,
    v1: Tensor,
    v2: Tensor,
    labels: Tensor,
    alpha: float = ALPHA,
    beta: float = BETA,
    tau: float = TAU,
    *,
    detach_target: bool = True,
) -> Tensor:
    """Eq. 5: CE(y, p1) + CE(y, p2) + α L_KL(p1, p2; τ) (eq. 2) + β L_sim(z1, z2, v1, v2) (eq. 3), batch means.

    Args:
        p1, p2: Logits ``(B, K)`` of the two views.
        z1, z2: Projections ``(B, D)`` of the two views (stop-gradient targets).
        v1, v2: Predictions ``(B, D)`` of the two views.
        labels: Class indices ``(B,)``, the same for both views.
        alpha: Weight of the distillation term (paper: 0.1).
        beta: Weight of the similarity term (paper: 1).
        tau: Temperature (paper: 10).
        detach_target: Whether eq. 2's soft label is a constant (see ``soft_label_kl``).
    """
    return self_kd_loss(p1, p2, labels, alpha, tau, detach_target=detach_target) + beta * simsiam_loss(z1, z2, v1, v2)


@dataclass(frozen=True)
class TwoViewMethod(Method):
    """One model trained on two augmented views x1, x2 of each clip: Table II's "Baseline + Data augment" (no
    distillation weight, no similarity term), Self-KD (`alpha`) and SKD-SRL (`alpha` and the `similarity` term)."""

    single_label: bool = True
    torchrun: bool = False
    views: int = 2
    alpha: bool = True  # the soft-label distillation of eq. 2, weighted by the recipe's skd.alpha
    similarity: bool = False  # SimSiam's term through a projector / predictor, weighted by skd.beta (eq. 5)

    def auxiliary(self, config: RunConfig, models: Sequence[TSMResNet | I3DResNet]) -> dict[str, nn.Module]:
        """SKD-SRL's projector and predictor (`siamese`) over the model's pooled features."""
        return {"siamese": SimSiamHead(models[0].fc.in_features)} if self.similarity else {}

    def step(self, training: Training, inputs: Sequence[dict[str, Tensor]], labels: Tensor) -> list[Tensor]:
        """The one loss of a batch of view pairs: CE(y, p1) + CE(y, p2), plus α L_KL(p1, p2; τ) (eq. 2), plus
        β L_sim (eq. 3-5) with z, v from the pooled features r of each view."""
        config, net = training.config, training.nets[0]
        modality = config.models[0].modality
        (f1, p1), (f2, p2) = (net(view[modality]) for view in inputs)
        training.record_cross_entropy(
            [(F.cross_entropy(p1.detach(), labels) + F.cross_entropy(p2.detach(), labels)) / 2]
        )
        settings = config.recipe.settings(SKDSettings)
        if not self.alpha:
            return [self_kd_loss(p1, p2, labels, alpha=0.0)]
        if not self.similarity:
            return [self_kd_loss(p1, p2, labels, settings.alpha, settings.tau)]
        siamese, backbone = training.auxiliary["siamese"], training.models[0]
        (z1, v1), (z2, v2) = (siamese(pooled_features(backbone, f)) for f in (f1, f2))
        return [skd_srl_loss(p1, p2, z1, z2, v1, v2, labels, settings.alpha, settings.beta, settings.tau)]


CE_AUG = TwoViewMethod("ce_aug", alpha=False)
SELF_KD = TwoViewMethod("self_kd", settings=SKDSettings, reads=("tau", "alpha"))
SKD_SRL = TwoViewMethod("skd_srl", similarity=True, settings=SKDSettings, reads=SKDSettings.names())
