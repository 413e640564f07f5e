"""Cross-entropy, the mutual-learning KL term and AdaMML's efficiency loss, checked against plain-Python
arithmetic."""

import math

import pytest
import torch

from mml.losses import KL_FORMS, cross_entropy, d3d_loss, efficiency_loss, mars_loss, mutual_kl

LN3, LN9 = math.log(3), math.log(9)


def softmax(row: list[float]) -> list[float]:
    exps = [math.exp(v) for v in row]
    return [e / sum(exps) for e in exps]


def kl(q: list[float], p: list[float]) -> float:
    return sum(qc * math.log(qc / pc) for qc, pc in zip(q, p, strict=True) if qc > 0)


def reference(logits: list[list[list[float]]], index: int, form: str) -> float:
    """Batch-mean KL(q || p_index), q from the other models, in plain Python."""
    others = [z for j, z in enumerate(logits) if j != index]
    total = 0.0
    for b, row in enumerate(logits[index]):
        if form == "probs":
            probs = [softmax(z[b]) for z in others]
            q = [sum(col) / len(others) for col in zip(*probs, strict=True)]
        else:
            q = softmax([sum(col) / len(others) for col in zip(*(z[b] for z in others), strict=True)])
        total += kl(q, softmax(row))
    return total / len(logits[index])


def tensors(logits: list[list[list[float]]]) -> list[torch.Tensor]:
    return [torch.tensor(z, dtype=torch.float64, requires_grad=True) for z in logits]


def test_cross_entropy_is_batch_mean() -> None:
    logits = torch.tensor([[0.0, LN3], [0.0, 0.0]])
    # -log(3/4) and -log(1/2), averaged over the 2 clips
    expected = (-math.log(0.75) - math.log(0.5)) / 2
    assert cross_entropy(logits, torch.tensor([1, 0])).item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize("form", KL_FORMS)
def test_two_models_worked_example(form: str) -> None:
    # p_0 = (1/2, 1/2), p_1 = (3/4, 1/4): KL(p_1 || p_0) = 3/4 ln 3/2 + 1/4 ln 1/2 = 0.1308120...
    z = [[[0.0, 0.0]], [[LN3, 0.0]]]
    assert mutual_kl(tensors(z), 0, form).item() == pytest.approx(0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    assert mutual_kl(tensors(z), 0, form).item() == pytest.approx(0.1308120, abs=1e-7)
    # KL(p_0 || p_1) = 1/2 ln 2/3 + 1/2 ln 2 = 0.1438410...
    assert mutual_kl(tensors(z), 1, form).item() == pytest.approx(0.1438410, abs=1e-7)


def test_three_models_forms_differ_on_worked_example() -> None:
    # others of model 0: p_1 = (9/10, 1/10), p_2 = (1/2, 1/2); own p_0 = (1/2, 1/2)
    z = [[[0.0, 0.0]], [[LN9, 0.0]], [[0.0, 0.0]]]
    # "probs": q = mean of probabilities = (7/10, 3/10): 0.7 ln 1.4 + 0.3 ln 0.6 = 0.0822829...
    assert mutual_kl(tensors(z), 0, "probs").item() == pytest.approx(0.7 * math.log(1.4) + 0.3 * math.log(0.6))
    assert mutual_kl(tensors(z), 0, "probs").item() == pytest.approx(0.0822829, abs=1e-7)
    # "logits": q = softmax of mean logits (ln 3, 0) = (3/4, 1/4): the two-model value above
    assert mutual_kl(tensors(z), 0, "logits").item() == pytest.approx(0.1308120, abs=1e-7)


@pytest.mark.parametrize("form", KL_FORMS)
@pytest.mark.parametrize("models", [2, 3, 4])
def test_random_batches_match_plain_python(form: str, models: int) -> None:
    gen = torch.Generator().manual_seed(models)
    z = (torch.randn(models, 3, 5, generator=gen, dtype=torch.float64) * 3).tolist()
    for index in range(models):
        assert mutual_kl(tensors(z), index, form).item() == pytest.approx(reference(z, index, form), rel=1e-9)


def test_forms_coincide_for_two_and_differ_for_three() -> None:
    gen = torch.Generator().manual_seed(0)
    z = (torch.randn(3, 4, 6, generator=gen) * 2).unbind()
    torch.testing.assert_close(mutual_kl(z[:2], 1, "probs"), mutual_kl(z[:2], 1, "logits"))
    assert abs(mutual_kl(z, 0, "probs").item() - mutual_kl(z, 0, "logits").item()) > 1e-3


@pytest.mark.parametrize("form", KL_FORMS)
def test_gradient_reaches_only_own_logits_and_is_p_minus_q(form: str) -> None:
    z = [[[0.0, 1.0, -1.0], [2.0, 0.0, 0.0]], [[LN9, 0.0, 0.5], [0.0, 0.0, 3.0]], [[1.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]]
    logits = tensors(z)
    mutual_kl(logits, 1, form).backward()
    assert logits[0].grad is None and logits[2].grad is None
    assert logits[1].grad is not None
    batch = len(z[1])
    for b in range(batch):
        p = softmax(z[1][b])
        if form == "probs":
            q = [(a + c) / 2 for a, c in zip(softmax(z[0][b]), softmax(z[2][b]), strict=True)]
        else:
            q = softmax([(a + c) / 2 for a, c in zip(z[0][b], z[2][b], strict=True)])
        expected = [(pc - qc) / batch for pc, qc in zip(p, q, strict=True)]
        assert logits[1].grad[b].tolist() == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_target_is_detached_even_with_grad_enabled_upstream() -> None:
    shared = torch.randn(2, 4, requires_grad=True)
    own = torch.randn(2, 4, requires_grad=True)
    mutual_kl([own, shared * 2], 0).backward()
    assert shared.grad is None and own.grad is not None


def test_zero_when_models_agree() -> None:
    z = torch.randn(3, 7)
    assert mutual_kl([z, z.clone(), z.clone()], 2).item() == pytest.approx(0.0, abs=1e-6)


def test_invalid_arguments() -> None:
    z = torch.zeros(2, 3)
    with pytest.raises(ValueError, match="at least 2"):
        mutual_kl([z], 0)
    with pytest.raises(ValueError, match="index 2"):
        mutual_kl([z, z], 2)
    with pytest.raises(ValueError, match="index -1"):
        mutual_kl([z, z], -1)
    with pytest.raises(ValueError, match="unknown form 'mean'"):
        mutual_kl([z, z], 0, "mean")
    with pytest.raises(ValueError, match="one shape"):
        mutual_kl([z, torch.zeros(2, 4)], 0)


def test_half_precision_logits_are_computed_in_float32() -> None:
    gen = torch.Generator().manual_seed(1)
    a, b = (torch.randn(2, 4, 6, generator=gen) * 1e-3).unbind()
    own = a.bfloat16().requires_grad_()
    loss = mutual_kl([own, b.bfloat16()], 0)
    assert loss.dtype == torch.float32 and loss.item() >= 0
    expected = mutual_kl([a.bfloat16().float(), b.bfloat16().float()], 0)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    loss.backward()
    assert own.grad is not None and own.grad.dtype == torch.bfloat16


def test_mars_is_the_elementwise_mean_squared_error_and_stops_at_the_teacher() -> None:
    student = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], requires_grad=True)
    teacher = torch.tensor([[[[0.0, 2.0], [5.0, 4.0]]]], requires_grad=True)
    loss = mars_loss(student, teacher)
    assert loss.item() == pytest.approx((1 + 0 + 4 + 0) / 4)
    loss.backward()
    assert teacher.grad is None
    assert torch.allclose(student.grad, torch.tensor([[[[0.5, 0.0], [-1.0, 0.0]]]]))


def test_d3d_sums_over_classes_and_averages_over_the_batch() -> None:
    student = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], requires_grad=True)
    teacher = torch.tensor([[1.0, 0.0, 0.0], [1.0, 1.0, 1.0]])
    assert d3d_loss(student, teacher).item() == pytest.approx(((0 + 4 + 9) + (1 + 1 + 1)) / 2)


# AdaMML decisions d[n, s, m] of N=2 videos, S=4 segments, M=2 modalities.
DECISIONS = [
    [[1.0, 0.0], [1.0, 1.0], [0.0, 0.0], [1.0, 0.0]],  # r = (3/4, 1/4)
    [[1.0, 1.0], [0.0, 1.0], [0.0, 1.0], [0.0, 0.0]],  # r = (1/4, 3/4)
]


def test_efficiency_loss_worked_example() -> None:
    decisions = torch.tensor(DECISIONS, dtype=torch.float64, requires_grad=True)
    correct = torch.tensor([True, False])
    loss = efficiency_loss(decisions, correct, [1.0, 0.5], gamma=10.0)
    # m=0: 1.0 * mean(1 * (3/4)^2, 0 * (1/4)^2) = 9/32; m=1: 0.5 * mean(1 * (1/4)^2, 0 * (3/4)^2) = 1/64;
    # gamma: 10 * mean(1 - 1, 1 - 0) = 5.  Total 9/32 + 1/64 + 5 = 5.296875.
    assert loss.item() == pytest.approx(9 / 32 + 1 / 64 + 5)
    assert loss.item() == pytest.approx(5.296875)
    loss.backward()
    # d loss / d d[0, s, m] = lambda_m * (1/N) * 2 r[0, m] * (1/S): m=0 1 * 1/2 * 3/2 * 1/4 = 3/16,
    # m=1 0.5 * 1/2 * 1/2 * 1/4 = 1/32; the wrong video gets no gradient.
    assert decisions.grad is not None
    assert decisions.grad[0].tolist() == [[3 / 16, 1 / 32]] * 4
    assert decisions.grad[1].tolist() == [[0.0, 0.0]] * 4


def test_efficiency_loss_gamma_term_has_no_gradient() -> None:
    decisions = torch.tensor(DECISIONS, requires_grad=True)
    loss = efficiency_loss(decisions, torch.tensor([False, False]), torch.tensor([1.0, 1.0]), gamma=10.0)
    assert loss.item() == pytest.approx(10.0)
    loss.backward()
    assert decisions.grad is not None and not decisions.grad.any()


def test_efficiency_loss_invalid_arguments() -> None:
    decisions = torch.tensor(DECISIONS)
    with pytest.raises(ValueError, match="bool"):
        efficiency_loss(decisions, torch.tensor([1.0, 0.0]), [1.0, 1.0], 10.0)
    with pytest.raises(ValueError, match=r"costs must be \(M,\) = \(2,\)"):
        efficiency_loss(decisions, torch.tensor([True, False]), [1.0], 10.0)
    with pytest.raises(ValueError, match=r"\(N, S, M\)"):
        efficiency_loss(decisions[0], torch.tensor([True, False]), [1.0, 1.0], 10.0)
