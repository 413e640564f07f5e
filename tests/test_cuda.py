"""CUDA paths against their CPU / fp32 counterparts: bf16 autocast losses, the temporal shift in channels_last and
the torch TV-L1 (skipped without a GPU; `benchmark/gpu_check.py` runs them on one)."""

import numpy as np
import pytest
import torch
from test_execution import _losses_and_grads
from test_models import reference_shift
from test_tvl1_torch import _texture, _warped

from mml.data.tvl1_torch import tvl1
from mml.execution import Execution
from mml.models.tsm import temporal_shift

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")


def test_bf16_channels_last_losses_on_cuda_follow_fp32() -> None:
    baseline_losses, baseline_grads = _losses_and_grads(Execution(device="cuda"))
    losses, grads = _losses_and_grads(Execution(device="cuda", precision="bf16", channels_last=True))
    assert losses == pytest.approx(baseline_losses, rel=0.05)
    for grad, expected in zip(grads, baseline_grads, strict=True):
        assert grad.dtype == torch.float32 and torch.isfinite(grad).all()
        assert torch.nn.functional.cosine_similarity(grad, expected, dim=0) > 0.97  # bf16 keeps 8 mantissa bits
        assert grad.norm().item() == pytest.approx(expected.norm().item(), rel=0.05)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_temporal_shift_on_cuda_keeps_channels_last_and_its_gradient(dtype: torch.dtype) -> None:
    x = torch.randn(8, 16, 3, 5, device="cuda", dtype=dtype).to(memory_format=torch.channels_last).requires_grad_()
    out = temporal_shift(x, 4)
    assert out.is_contiguous(memory_format=torch.channels_last)
    reference = x.detach().cpu().float().contiguous().requires_grad_()
    expected = reference_shift(reference, 4, 8)
    torch.testing.assert_close(out.cpu().float(), expected, rtol=0, atol=0)  # a shift moves values, nothing else
    weight = torch.randn(8, 16, 3, 5).to(dtype)  # exact in both: the gradient is the weight, moved
    (out * weight.cuda()).sum().backward()
    (expected * weight.float()).sum().backward()
    torch.testing.assert_close(x.grad.cpu().float(), reference.grad, rtol=0, atol=0)


def test_tvl1_on_cuda_gives_the_cpu_flow() -> None:
    """The same pairs on both devices: the same flow up to float rounding and the stopping test it may tip (one
    iteration more or less moves a converged flow by at most epsilon = 0.01 px RMS); a 30th of the 0.3 px bound
    the port keeps to OpenCV."""
    first = np.stack([_texture(48, 64, seed) for seed in (3, 4)])
    second = np.stack([_warped(image, 1.5, -0.75) for image in first])
    on_cpu = tvl1(torch.from_numpy(first), torch.from_numpy(second))
    on_cuda = tvl1(torch.from_numpy(first).cuda(), torch.from_numpy(second).cuda())
    assert on_cuda.device.type == "cuda"
    error = (on_cuda.cpu() - on_cpu).norm(dim=1)
    assert error.mean().item() < 0.01
