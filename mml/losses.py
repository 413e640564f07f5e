"""Losses: cross-entropy, the mutual-learning KL term (paper §2.2, eq. 1-4), the MARS / D3D distillation terms and
the tempered KL that KD and SKD-SRL build on."""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

KL_FORMS = ("probs", "logits")


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Cross-entropy of logits ``(B, C)`` against class indices ``(B,)``, averaged over the batch."""
    return F.cross_entropy(logits, target)


def kl_message(logits: Tensor, form: str = "probs") -> Tensor:
    """What a model gives the others for their KL targets: its detached log-probabilities (``"probs"``) or logits
    (``"logits"``), ``(B, C)`` in float32 or wider. It is all that ranks training one model each exchange."""
    if form not in KL_FORMS:
        raise ValueError(f"mutual_kl: unknown form {form!r}; known: {', '.join(KL_FORMS)}")
    scores = logits.detach().to(torch.promote_types(logits.dtype, torch.float32))
    return F.log_softmax(scores, dim=-1) if form == "probs" else scores


def kl_to_others(own: Tensor, messages: Sequence[Tensor], form: str = "probs") -> Tensor:
    """Mutual-learning term of one model: KL(q || p), "batchmean", from its logits ``own`` ``(B, C)`` and the other
    models' ``kl_message`` of the same form. Gradients reach only ``own``, through its log-softmax. See
    ``mutual_kl`` for the forms of ``q``."""
    if form not in KL_FORMS:
        raise ValueError(f"mutual_kl: unknown form {form!r}; known: {', '.join(KL_FORMS)}")
    if not messages:
        raise ValueError("mutual_kl needs at least 2 models, got 1")
    if own.ndim != 2 or any(m.shape != own.shape for m in messages):
        shapes = [tuple(own.shape), *(tuple(m.shape) for m in messages)]
        raise ValueError(f"mutual_kl: logits must all be (B, C) of one shape, got {shapes}")
    dtype = torch.promote_types(own.dtype, torch.float32)  # half-precision log-probabilities can make KL < 0
    others = torch.stack([m.to(own.device, dtype) for m in messages])
    if form == "probs":
        log_q = torch.logsumexp(others, dim=0) - math.log(len(others))
    else:
        log_q = F.log_softmax(others.mean(dim=0), dim=-1)
    return F.kl_div(F.log_softmax(own.to(dtype), dim=-1), log_q, reduction="batchmean", log_target=True)


def mutual_kl(logits: Sequence[Tensor], index: int, form: str = "probs") -> Tensor:
    """Mutual-learning term of model ``index`` among M >= 2 models: KL(q || p_index), "batchmean".

    ``sum_c q (log q - log p_index)`` summed over classes and divided by the batch size, so it has the scale of
    the batch-mean cross-entropy (paper Appendix 2). The target ``q`` is built from the other models' detached
    logits; gradients reach only ``logits[index]``, through its log-softmax. Forms of ``q``:

    - ``"probs"`` (default, the paper's eq. 4): the mean over j != index of ``softmax(logits[j])``.
    - ``"logits"`` (the published code, which all-reduces logits): ``softmax`` of the mean over j != index of
      ``logits[j]``, a sharper, geometric-mean-like target.

    The two coincide for M = 2 and generally differ for M >= 3. Equal to ``kl_to_others`` of ``logits[index]``
    and the others' ``kl_message``, which is how ranks that train one model each compute it.

    Args:
        logits: Clip logits ``(B, C)`` of each of the M models, in the same class order.
        index: Which model's term to compute.
        form: One of ``KL_FORMS``.

    Returns:
        A scalar tensor.
    """
    if len(logits) < 2:
        raise ValueError(f"mutual_kl needs at least 2 models, got {len(logits)}")
    if not 0 <= index < len(logits):
        raise ValueError(f"mutual_kl: index {index} out of range for {len(logits)} models")
    messages = [kl_message(z, form) for j, z in enumerate(logits) if j != index]
    return kl_to_others(logits[index], messages, form)


def binary_cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    """Multi-label BCE of logits ``(B, C)`` against 0/1 targets ``(B, C)``, averaged over batch and classes
    (PySlowFast's Charades loss)."""
    return F.binary_cross_entropy_with_logits(logits.float(), target.float())


def mars_loss(student_features: Tensor, teacher_features: Tensor) -> Tensor:
    """MARS (Crasto et al.): mean squared error between the student's and the frozen teacher's feature maps
    before global pooling, averaged over every element. The teacher's features are detached."""
    return F.mse_loss(student_features.float(), teacher_features.detach().float())


def d3d_loss(student_logits: Tensor, teacher_logits: Tensor) -> Tensor:
    """D3D (Stroud et al.): squared L2 distance between the student's and the frozen teacher's logits, summed over
    classes and averaged over the batch (the scale of the batch-mean cross-entropy, like the KL term)."""
    return (student_logits.float() - teacher_logits.detach().float()).pow(2).sum(dim=1).mean()


def tempered_log_softmax(logits: Tensor, tau: float) -> Tensor:
    """log softmax(logits / τ) over classes, in at least float32 (half-precision KL can come out negative)."""
    return F.log_softmax(logits.to(torch.promote_types(logits.dtype, torch.float32)) / tau, dim=-1)


def tempered_kl(log_target: Tensor, logits: Tensor, tau: float) -> Tensor:
    """Batch-mean D_KL(target || softmax(logits / τ)), summed over classes, from the target's log-probabilities."""
    return F.kl_div(tempered_log_softmax(logits, tau), log_target, reduction="batchmean", log_target=True)


def efficiency_loss(decisions: Tensor, correct: Tensor, costs: Tensor | Sequence[float], gamma: float) -> Tensor:
    """AdaMML's policy cost (the released code's "blockdrop" penalty):
    Σ_m λ_m · mean_n(correct_n · r[n,m]²) + γ · mean_n(1 − correct_n), with r[n,m] the fraction of video n's
    segments that use modality m.

    Only correctly classified videos are pushed to use fewer modalities. The γ term depends on ``correct`` only, so
    it carries no gradient (as in the original); it shifts the loss's value, not the policy. The λ are either
    hand-set (original: 1, 1 for RGB + Flow; 1, 0.05 for RGB + Audio) or proportional to each modality's GFLOPs;
    the caller decides.

    Args:
        decisions: Decisions ``(N, S, M)`` in {0, 1}, differentiable (``mml.models.adaptive.gumbel_decisions``).
        correct: ``(N,)`` bool, whether the argmax of the detached video logits equals the label.
        costs: λ_m ``(M,)``.
        gamma: γ, the penalty of a wrong video (original: 10).

    Returns:
        A scalar tensor.
    """
    if decisions.ndim != 3:
        raise ValueError(f"efficiency_loss: decisions must be (N, S, M), got {tuple(decisions.shape)}")
    if correct.dtype != torch.bool or correct.shape != decisions.shape[:1]:
        raise ValueError(
            f"efficiency_loss: correct must be ({decisions.shape[0]},) bool, got {tuple(correct.shape)} {correct.dtype}"
        )
    lambdas = torch.as_tensor(costs, dtype=decisions.dtype, device=decisions.device)
    if lambdas.shape != decisions.shape[2:]:
        raise ValueError(f"efficiency_loss: costs must be (M,) = ({decisions.shape[2]},), got {tuple(lambdas.shape)}")
    right = correct.to(decisions.dtype)
    ratios = decisions.mean(dim=1)  # r (N, M)
    return (lambdas * (right[:, None] * ratios.pow(2)).mean(dim=0)).sum() + gamma * (1 - right).mean()
