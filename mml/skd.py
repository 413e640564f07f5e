"""SKD-SRL (Vu, Phung & Wang, "A Novel Self-Knowledge Distillation Approach with Siamese Representation Learning
for Action Recognition"): its losses (eq. 2-5), its projector / predictor, and the KD baseline of its Table II.

Two augmented views x1, x2 of each clip go through one shared encoder to representations r1, r2 (eq. 1), a shared
fc to logits p1, p2, and a ``SimSiamHead`` to projections z1, z2 and predictions v1, v2. The rows of Table II:

- Baseline: cross-entropy on one view.
- Baseline + Data augment: ``self_kd_loss(..., alpha=0)``, cross-entropy on both views.
- KD (a ResNet-50 teacher): ``distillation_loss``.
- Self-KD: ``self_kd_loss``, cross-entropy plus the soft-label distillation of eq. 2 (eq. 5 with β = 0).
- SKD-SRL: ``skd_srl_loss`` (eq. 5).

Every loss is a batch mean, as eq. 5's (1/n) Σ_i.
"""

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# §IV-A: "the temperature τ is set as 10, and the loss weights α and β are set as 0.1 and 1".
TAU, ALPHA, BETA = 10.0, 0.1, 1.0


def _log_softmax(logits: Tensor, tau: float) -> Tensor:
    """log softmax(logits / τ) over classes, in at least float32 (half-precision KL can come out negative)."""
    return F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)) / tau, dim=-1)


def _kl(log_target: Tensor, logits: Tensor, tau: float) -> Tensor:
    """Batch-mean D_KL(target || softmax(logits / τ)), summed over classes."""
    return F.kl_div(_log_softmax(logits, tau), log_target, reduction="batchmean", log_target=True)


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
    target = _log_softmax(p.detach() if detach_target else p, tau)
    return _kl(target, p1, tau) + _kl(target, p2, tau)


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


def soft_distillation(student_logits: Tensor, teacher_logits: Tensor, tau: float) -> Tensor:
    """Hinton et al.'s soft term τ² D_KL(softmax(t/τ) || softmax(s/τ)), batch mean, the teacher's logits detached."""
    if student_logits.ndim != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"soft_distillation needs (B, K) student and teacher logits of one shape, "
            f"got {tuple(student_logits.shape)}, {tuple(teacher_logits.shape)}"
        )
    return tau**2 * _kl(_log_softmax(teacher_logits.detach(), tau), student_logits, tau)


def distillation_loss(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, tau: float, alpha: float
) -> Tensor:
    """Hinton et al.'s KD (the SKD-SRL paper's ref. [11], its Table II "KD" row, Fig. 1a):
    CE(y, s) + α τ² D_KL(softmax(t/τ) || softmax(s/τ)), batch means, the teacher's logits detached.

    The SKD-SRL paper gives no formula for this baseline. Hinton et al. take "a weighted average" of the two terms
    and scale the soft one by τ² so that its gradients keep their size as τ changes; we weight it additively by α,
    in the form of eq. 5, so ``(1 − α) CE + α τ² KL`` is this loss with α/(1 − α), scaled by 1 − α.
    """
    return F.cross_entropy(student_logits, labels) + alpha * soft_distillation(student_logits, teacher_logits, tau)
