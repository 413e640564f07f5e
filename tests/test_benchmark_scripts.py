"""Smoke runs of the benchmark scripts at tiny sizes on the CPU: they run and report every figure they promise."""

import importlib.util
import re
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCHMARK = Path(__file__).parent.parent / "benchmark"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARK / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gpu_throughput_reports_each_setting_group_and_input(capsys: pytest.CaptureFixture) -> None:
    arguments = ["--device", "cpu", "--tiny", "--settings", "fp32-eager,bf16-cl-eager", "--groups", "pair"]
    _script("gpu_throughput").main([*arguments, "--warmup", "0", "--steps", "1", "--workers", "0"])
    out = capsys.readouterr().out
    rows = re.findall(r"^\| pair \| (\S+) \| (\S+) \| ([\d.]+) \| n/a \| ([\d.e+-]+) \| ([\d.e+-]+) \|$", out, re.M)
    assert [(setting, source) for setting, source, *_ in rows] == [
        ("fp32-eager", "synthetic"),
        ("fp32-eager", "cache"),
        ("bf16-cl-eager", "synthetic"),
        ("bf16-cl-eager", "cache"),
    ]
    assert all(float(clips) > 0 and float(flops) > 0 for _, _, clips, flops, _ in rows)
    assert re.search(r"ResNet-50 image training, bf16-cl-eager, 4 images of 32 px: [\d.]+ images/s", out)


def test_flow_throughput_reports_both_backends_and_their_distance(capsys: pytest.CaptureFixture) -> None:
    _script("flow_throughput").main(
        ["--device", "cpu", "--pairs", "1", "--batch", "1", "--height", "32", "--width", "40"]
    )
    out = capsys.readouterr().out
    assert re.search(r"^opencv DualTVL1, cpu \(2 threads\), 32x40 video: [\d.]+ pairs/s$", out, re.M)
    assert re.search(r"^torch TV-L1, cpu \(2 threads\), batch 1, 32x40 video: [\d.]+ pairs/s$", out, re.M)
    error = float(re.search(r"EPE torch vs opencv over 1 pairs: mean ([\d.]+) px", out)[1])
    assert error <= 0.3
