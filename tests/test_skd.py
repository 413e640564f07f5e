"""SKD-SRL's losses (eq. 2-5) and the KD baseline against values computed by hand on tiny tensors."""

import math

import pytest
import torch
import torch.nn.functional as F

from mml.methods.distillation import distillation_loss
from mml.methods.skd_srl import (
    SimSiamHead,
    negative_cosine,
    self_kd_loss,
    simsiam_loss,
    skd_srl_loss,
    soft_label_kl,
)

P1 = torch.tensor([[1.0, 0.0]])
P2 = torch.tensor([[0.0, 1.0]])
LABELS = torch.tensor([0])


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


# p = p1 + p2 = [1, 1]: the soft label is uniform; softmax(p1) = [σ(1), σ(-1)], softmax(p2) its mirror image, so
# both KL terms are 0.5 log(0.5 / σ(1)) + 0.5 log(0.5 / σ(-1)).
KL_ONE = 0.5 * math.log(0.5 / sigmoid(1)) + 0.5 * math.log(0.5 / sigmoid(-1))
CE1, CE2 = -math.log(sigmoid(1)), -math.log(sigmoid(-1))


def test_soft_label_kl_by_hand() -> None:
    assert soft_label_kl(P1, P2, tau=1.0).item() == pytest.approx(2 * KL_ONE)
    # τ = 2 halves every logit: softmax(p1 / 2) = [σ(0.5), σ(-0.5)], the soft label stays uniform.
    half = 0.5 * math.log(0.5 / sigmoid(0.5)) + 0.5 * math.log(0.5 / sigmoid(-0.5))
    assert soft_label_kl(P1, P2, tau=2.0).item() == pytest.approx(2 * half)
    assert soft_label_kl(P1, P2, tau=1.0).item() == pytest.approx(soft_label_kl(P2, P1, tau=1.0).item())


def test_soft_label_is_detached_by_default() -> None:
    p1, p2 = P1.clone().requires_grad_(), P2.clone().requires_grad_()
    soft_label_kl(p1, p2, tau=1.0).backward()
    # d/dp1 of KL(u || softmax(p1)) = softmax(p1) - u (the target is a constant).
    assert p1.grad.tolist()[0] == pytest.approx([sigmoid(1) - 0.5, sigmoid(-1) - 0.5])
    # Literal eq. 2: the gradient also flows through p = p1 + p2 (visible once the views are not mirror images).
    other = torch.tensor([[0.0, 3.0]])
    detached, literal = P1.clone().requires_grad_(), P1.clone().requires_grad_()
    soft_label_kl(detached, other, tau=1.0).backward()
    soft_label_kl(literal, other, tau=1.0, detach_target=False).backward()
    assert not torch.allclose(literal.grad, detached.grad)


def test_negative_cosine_with_stop_gradient() -> None:
    v = torch.tensor([[1.0, 0.0]], requires_grad=True)
    z = torch.tensor([[1.0, 1.0]], requires_grad=True)
    loss = negative_cosine(v, z)
    assert loss.item() == pytest.approx(-1 / math.sqrt(2))
    loss.backward()
    assert z.grad is None and v.grad is not None
    z1, z2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    v1, v2 = torch.tensor([[0.0, 1.0]]), torch.tensor([[3.0, 4.0]])
    # ½(−cos(v1, z2)) + ½(−cos(v2, z1)) = ½(−1) + ½(−3/5).
    assert simsiam_loss(z1, z2, v1, v2).item() == pytest.approx(-0.5 - 0.3)


def test_self_kd_and_skd_srl_losses_by_hand() -> None:
    assert self_kd_loss(P1, P2, LABELS, alpha=0.0, tau=1.0).item() == pytest.approx(CE1 + CE2)  # + data augment
    assert self_kd_loss(P1, P2, LABELS, alpha=0.1, tau=1.0).item() == pytest.approx(CE1 + CE2 + 0.1 * 2 * KL_ONE)
    z1, z2 = torch.tensor([[1.0, 0.0]]), torch.tensor([[0.0, 2.0]])
    v1, v2 = torch.tensor([[0.0, 1.0]]), torch.tensor([[3.0, 4.0]])
    total = skd_srl_loss(P1, P2, z1, z2, v1, v2, LABELS, alpha=0.1, beta=2.0, tau=1.0)
    assert total.item() == pytest.approx(CE1 + CE2 + 0.1 * 2 * KL_ONE + 2.0 * (-0.8), rel=1e-5)


def test_distillation_loss_by_hand() -> None:
    # τ = 2: teacher softmax([0, 0.5]) = [σ(-0.5), σ(0.5)], student softmax([0.5, 0]) = [σ(0.5), σ(-0.5)].
    t, s = sigmoid(-0.5), sigmoid(0.5)
    kl = t * math.log(t / s) + s * math.log(s / t)
    assert distillation_loss(P1, P2, LABELS, tau=2.0, alpha=0.5).item() == pytest.approx(CE1 + 0.5 * 4 * kl)
    with pytest.raises(ValueError):
        distillation_loss(P1, torch.zeros(1, 3), LABELS, tau=2.0, alpha=0.5)


def test_simsiam_head_shapes() -> None:
    head = SimSiamHead(8)
    z, v = head(torch.randn(4, 8))
    assert z.shape == v.shape == (4, 8)
    assert head.predictor[0].out_features == 2
    z, v = SimSiamHead(8, dim=6, hidden_dim=3)(torch.randn(4, 8))
    assert z.shape == v.shape == (4, 6)
    assert F.cosine_similarity(z, z).allclose(torch.ones(4))
