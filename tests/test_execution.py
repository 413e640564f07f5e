"""The trainer's speed settings: bf16 autocast, channels_last, torch.compile (on the CPU here; CUDA's defaults)."""

import json
from pathlib import Path

import pytest
import torch

from mml.data.cache import prepare
from mml.data.datasets import open_dataset
from mml.distributed import Layout
from mml.execution import Execution, autocast, prepared
from mml.methods.mutual import group_step
from mml.networks import network
from mml.plan import plan_tables
from mml.runner import init_loader
from mml.spec import Recipe, load_profile, load_table
from mml.store import ModelConfig, RunConfig, Store
from mml.train import Outputs, train_run

REPRODUCTIONS = Path(__file__).parent.parent / "reproductions"


def test_fast_settings_on_cuda_baseline_elsewhere_and_overrides() -> None:
    fast = Execution.for_device("cuda:1")
    assert (fast.precision, fast.channels_last, fast.compile, fast.cudnn_benchmark) == ("bf16", True, True, True)
    assert Execution.for_device("cpu") == Execution(device="cpu")
    assert Execution.for_device("cuda", fast=False) == Execution(device="cuda")
    assert Execution.for_device("cuda", compile=False, precision=None).compile is False
    assert Execution.for_device("cpu", precision="bf16").precision == "bf16"
    with pytest.raises(ValueError, match="precision 'fp16' is not one of fp32, bf16"):
        Execution(precision="fp16")


def _config() -> RunConfig:
    recipe = Recipe(segments=2, short_side=32, input_size=28, batch_size=4, epochs=1, lr=0.1, lr_steps=(), dropout=0)
    models = (ModelConfig(modality="RGB", init="random"), ModelConfig(modality="Flow", init="random"))
    return RunConfig(method="ml", models=models, arch="tsm_tiny", recipe=recipe, dataset="x", num_classes=5, seed=0)


def _losses_and_grads(run: Execution) -> tuple[list[float], list[torch.Tensor]]:
    """One MML step's losses and each model's whole gradient (flattened) under `run`'s settings, from fixed weights
    and inputs."""
    config = _config()
    torch.manual_seed(0)
    models = [prepared(network(config, m.modality), run) for m in config.models]
    nets = [Outputs(model) for model in models]
    if run.compile:
        nets = [torch.compile(net) for net in nets]
    generator = torch.Generator().manual_seed(1)
    inputs = {
        "RGB": torch.randn(4, 6, 28, 28, generator=generator),
        "Flow": torch.randn(4, 20, 28, 28, generator=generator),
    }
    inputs = {name: tensor.to(run.device) for name, tensor in inputs.items()}
    labels = torch.tensor([0, 1, 2, 3], device=run.device)
    with autocast(run):
        losses = group_step(config, nets, inputs, labels, Layout(2))
    torch.stack(losses).sum().backward()
    return [loss.item() for loss in losses], [
        torch.cat([p.grad.flatten() for p in model.parameters()]) for model in models
    ]


def test_bf16_and_channels_last_train_like_fp32() -> None:
    baseline_losses, baseline_grads = _losses_and_grads(Execution())
    losses, grads = _losses_and_grads(Execution(precision="bf16", channels_last=True))
    assert losses == pytest.approx(baseline_losses, rel=0.05)
    for grad, expected in zip(grads, baseline_grads, strict=True):
        assert grad.dtype == torch.float32 and torch.isfinite(grad).all()
        assert torch.nn.functional.cosine_similarity(grad, expected, dim=0) > 0.97  # bf16 keeps 8 mantissa bits
        assert grad.norm().item() == pytest.approx(expected.norm().item(), rel=0.05)
    exact_losses, exact_grads = _losses_and_grads(Execution(channels_last=True))  # layout alone changes ~nothing
    assert exact_losses == pytest.approx(baseline_losses, rel=1e-5)
    for grad, expected in zip(exact_grads, baseline_grads, strict=True):
        torch.testing.assert_close(grad, expected, rtol=1e-4, atol=1e-5)  # SSE4.1 oneDNN: one grad moves 1.7e-6


def test_channels_last_models_keep_their_memory_format() -> None:
    model = prepared(network(_config(), "RGB"), Execution(channels_last=True))
    assert model.conv1.weight.is_contiguous(memory_format=torch.channels_last)
    features = Outputs(model)(torch.randn(2, 6, 28, 28))[0]
    assert features.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="compiling for the CPU takes minutes (passed in 306 s here)")
def test_compiled_step_equals_eager() -> None:
    eager_losses, eager_grads = _losses_and_grads(Execution(device="cuda"))
    losses, grads = _losses_and_grads(Execution(device="cuda", compile=True))
    assert losses == pytest.approx(eager_losses, rel=1e-4)
    for grad, expected in zip(grads, eager_grads, strict=True):
        torch.testing.assert_close(grad, expected, rtol=1e-3, atol=1e-5)


def test_a_bf16_channels_last_run_trains_and_records_its_settings(tmp_path: Path) -> None:
    from test_reproduce import MICRO

    (tmp_path / "profiles.toml").write_text(MICRO)
    profile = load_profile(tmp_path / "profiles.toml", "micro")
    dataset = open_dataset(profile.dataset, None, tmp_path / "data", progress=False)
    plan = plan_tables([load_table(REPRODUCTIONS / "table07.toml")], profile, dataset)
    store = Store(tmp_path / "store")
    cache = dataset.frame_source(store.cache_dir(), profile.recipe.short_side)
    prepare(cache, (*dataset.train, *dataset.validation), with_flow=False, workers=1, progress=False)
    stand_in = plan.runs[plan.run_id("table07", "rgb", 0)].upstream[0]
    config = plan.runs[stand_in]
    run = Execution(progress=False, precision="bf16", channels_last=True)
    folder = train_run(config, dataset.for_target(config.target), cache, store, run, init_loader(store, None))
    record = json.loads((folder / "run.json").read_text())
    assert record["execution"] == {"precision": "bf16", "channels_last": True, "compile": False}
    history = json.loads((folder / "metrics.json").read_text())["history"]
    assert len(history) == config.recipe.epochs and all(torch.isfinite(torch.tensor(h["loss"])).all() for h in history)
