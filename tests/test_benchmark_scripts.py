"""The benchmark scripts at tiny sizes on the CPU: they run and report every figure they promise; the GPU check's
steps, timeouts, budget, targets and report (its whole run too, as `benchmark/gpu_check.sh` starts it on the GPU)."""

import importlib.util
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).parent.parent
BENCHMARK = ROOT / "benchmark"


def _script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARK / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_gpu_throughput_reports_each_setting_group_and_input(capsys: pytest.CaptureFixture, tmp_path: Path) -> None:
    arguments = ["--device", "cpu", "--tiny", "--settings", "fp32-eager,bf16-cl-eager", "--groups", "pair"]
    figures = tmp_path / "throughput.json"
    _script("gpu_throughput").main(
        [*arguments, "--warmup", "0", "--steps", "1", "--workers", "0", "--json", str(figures)]
    )
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
    written = json.loads(figures.read_text())
    assert [(r["setting"], r["input"]) for r in written["rows"]] == [(s, i) for s, i, *_ in rows]
    assert written["resnet50"]["images"] == 4 and written["resnet50"]["images_per_second"] > 0
    assert [r["met"] for r in written["ratios"]] == [None, None, None]  # no compiled row on the CPU


def _row(group: str, setting: str, source: str, rate: float) -> dict:
    return {"group": group, "setting": setting, "input": source, "clips_per_second": rate}


def test_target_ratios_are_met_missed_or_not_measured() -> None:
    throughput = _script("gpu_throughput")
    rows = [
        _row("one", "fp32-eager", "synthetic", 100.0),
        _row("one", "bf16-cl-compile", "synthetic", 400.0),  # 4x: met at the bound
        _row("pair", "bf16-cl-compile", "synthetic", 180.0),  # 0.45x: missed
    ]
    ratios = throughput.target_ratios(rows)
    assert [(r["ratio"], r["at_least"], r["met"]) for r in ratios] == [(4.0, 4.0, True), (0.45, 0.5, False)] + [
        (None, 0.85, None)
    ]
    rows.append(_row("one", "bf16-cl-compile", "cache", 360.0))
    assert throughput.target_ratios(rows)[2]["ratio"] == pytest.approx(0.9)
    assert throughput.target_ratios(rows)[2]["met"] is True


def test_rows_the_targets_compare_are_measured_first() -> None:
    throughput = _script("gpu_throughput")
    order = throughput.row_order(["one", "pair"], ["fp32-eager", "bf16-cl-compile"], ["synthetic", "cache"])
    assert order[:4] == [
        ("one", "fp32-eager", "synthetic"),
        ("one", "bf16-cl-compile", "synthetic"),
        ("pair", "bf16-cl-compile", "synthetic"),
        ("one", "bf16-cl-compile", "cache"),
    ]
    assert sorted(order) == sorted(set(order)) and len(order) == 8


def test_flow_throughput_reports_both_backends_and_their_distance(capsys: pytest.CaptureFixture) -> None:
    _script("flow_throughput").main(
        ["--device", "cpu", "--pairs", "1", "--batch", "1", "--height", "32", "--width", "40"]
    )
    out = capsys.readouterr().out
    assert re.search(r"^opencv DualTVL1, cpu \(2 threads\), 32x40 video: [\d.]+ pairs/s \(here\)$", out, re.M)
    assert re.search(r"^torch TV-L1, cpu \(2 threads\), batch 1, 32x40 video: [\d.]+ pairs/s$", out, re.M)
    error = float(re.search(r"EPE torch vs opencv over 1 pairs: mean ([\d.]+) px", out)[1])
    assert error <= 0.3
    assert re.search(r"^target torch >= 100x opencv at EPE <= 0.3 px: (met|missed)$", out, re.M)


def test_flow_reference_carries_the_opencv_side(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """What the GPU machine gets without OpenCV's contrib: the pairs, OpenCV's flows and its rate from a file; the
    torch side runs on those pairs, repeated up to --pairs, its EPE over the distinct ones."""
    flow = _script("flow_throughput")
    reference, figures = tmp_path / "reference.npz", tmp_path / "flow.json"
    common = ["--threads", "1", "--content", "texture"]
    flow.main(["--save-reference", str(reference), "--pairs", "2", "--height", "32", "--width", "40", *common])
    assert "reference of 2 pairs written" in capsys.readouterr().out
    first, _, opencv, meta = flow.load_reference(reference)
    assert first.shape == (2, 32, 40) and opencv.shape == (2, 32, 40, 2) and meta["content"] == "texture"
    flow.main(["--device", "cpu", "--reference", str(reference), "--pairs", "3", "--batch", "2", *common])
    flow.main(["--device", "cpu", "--reference", str(reference), "--pairs", "2", "--profile", "--json", str(figures)])
    out = capsys.readouterr().out
    assert out.count("(carried from reference.npz") == 2 and "EPE torch vs opencv over 2 pairs" in out
    written = json.loads(figures.read_text())
    assert written["timed_pairs"] == 2 and written["opencv"]["pairs"] == 2
    eager = written["modes"]["eager"]
    assert eager["epe_mean"] <= 0.3 and eager["target"] == {"speedup_at_least": 100.0, "epe_at_most": 0.3, "met": False}
    assert eager["profile"]["scalar_reads"] > 0 and eager["profile"]["top"]
    with pytest.raises(SystemExit, match="not a reference file"):
        flow.main(["--reference", str(figures)])


def test_video_pairs_are_consecutive_frames_of_one_clip() -> None:
    first, second = _script("flow_throughput").decoded_pairs(8, 32, 40)  # the first clip has 8 frames: 7 pairs
    assert first.shape == second.shape == (8, 32, 40)
    assert all((first[k + 1] == second[k]).all() for k in range(6))  # chained within the clip
    assert not (first[7] == second[6]).all()  # the 8th pair starts the next clip: no pair across the cut


def test_flow_targets_need_both_speed_and_accuracy() -> None:
    target = _script("flow_throughput").target
    assert target(120.0, 0.2)["met"] and not target(99.0, 0.2)["met"] and not target(150.0, 0.31)["met"]


def test_every_cuda_test_the_check_names_exists() -> None:
    for node in _script("gpu_check").CUDA_TESTS:
        path, _, name = node.partition("::")
        assert (ROOT / path).is_file(), node
        if name:
            function, _, parameter = name.partition("[")
            source = (ROOT / path).read_text()
            assert f"def {function}(" in source, node
            assert not parameter or f'"{parameter.rstrip("]")}"' in source, node


def test_a_step_past_its_timeout_is_killed_with_its_children(tmp_path: Path) -> None:
    check = _script("gpu_check")
    marker, grandchild, script = tmp_path / "grandchild-alive", tmp_path / "grandchild.py", tmp_path / "sleeper.py"
    grandchild.write_text(f"import time\ntime.sleep(3)\nopen({str(marker)!r}, 'w')\n")
    script.write_text(
        f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, {str(grandchild)!r}])\n"
        "print('started', flush=True)\ntime.sleep(60)\n"
    )
    step = check.Step("sleeper", "test", [sys.executable, str(script)], 60)
    log = tmp_path / "log"
    log.write_text("")
    started = time.monotonic()
    outcome = check.run_step(step, 2, log, dict(os.environ))
    assert outcome.status == "timed out after 2 s" and time.monotonic() - started < 10
    assert check.step_output(log, "sleeper") == ["started"]
    time.sleep(3)
    assert not marker.exists()  # the grandchild went with its group
    quick = check.Step("quick", "test", [sys.executable, "-c", "import sys; print('x'); sys.exit(3)"], 60)
    assert check.run_step(quick, 30, log, dict(os.environ)).status == "failed (exit 3)"


def test_figures_cut_off_by_a_kill_are_reported_not_fatal(tmp_path: Path) -> None:
    check = _script("gpu_check")
    truncated = tmp_path / "flow.json"
    truncated.write_text('{"device": "NVIDIA H200", "modes": {')
    outcome = check.Outcome("timed out after 100 s", 100.0)
    check.read_figures(check.Step("flow", "3", ["x"], 100, figures=truncated), outcome, ["a line"])
    assert outcome.figures is None and outcome.tail[0] == "a line" and "flow.json unreadable" in outcome.tail[1]


def _report(throughput: dict | None, flow: dict | None) -> dict:
    steps = [
        {"name": "tests", "part": "1", "status": "passed", "seconds": 1.0, "tail": [], "table": None,
         "figures": {"passed": 5, "failed": 1, "skipped": 0, "failures": ["tests/x.py::test_y: boom"]}},
        {"name": "throughput", "part": "2", "status": "timed out after 9 s", "seconds": 9.0, "tail": ["last line"],
         "table": None, "figures": throughput},
        {"name": "flow", "part": "3", "status": "passed", "seconds": 2.0, "tail": [], "table": None, "figures": flow},
        {"name": "table7-default", "part": "4", "status": "passed", "seconds": 3.0, "tail": [], "table": "| a |",
         "figures": {"done": "Done in 0.1 min: ...", "recompile_limit_warnings": 2}},
    ]  # fmt: skip
    environment = {"device": "NVIDIA H200", "commit": "abc"}
    return {
        "date": "d",
        "mode": "full (CUDA)",
        "budget_s": 420,
        "spent_s": 15,
        "environment": environment,
        "steps": steps,
    }


def test_report_marks_each_target_met_or_missed() -> None:
    check, throughput = _script("gpu_check"), _script("gpu_throughput")
    rows = [
        _row("one", "fp32-eager", "synthetic", 100.0),
        _row("one", "bf16-cl-compile", "synthetic", 420.0),
        _row("pair", "bf16-cl-compile", "synthetic", 200.0),
    ]
    for row in rows:
        row.update(peak_gib=1.5, gflop_per_clip=264.0, tflops=50.0)
    measured = {
        "device": "NVIDIA H200",
        "scale": {"arch": "tsm_r50", "segments": 8, "size": 224, "batch": 32},
        "warmup": 3,
        "steps": 10,
        "workers": 14,
        "rows": rows,
        "resnet50": None,  # the step timed out before the ceiling
        "ratios": throughput.target_ratios(rows),
    }
    mode = {"pairs_per_second": 60.0, "speedup": 120.0, "epe_mean": 0.01, "epe_worst_pair": 0.02}
    flow = {
        "device": "NVIDIA H200",
        "size": "256x340 video",
        "timed_pairs": 128,
        "batch": 64,
        "opencv": {"threads": 2, "opencv": "5.1.0", "pairs_per_second": 0.5, "pairs": 8, "origin": "carried"},
        "modes": {"compiled": {**mode, "target": _script("flow_throughput").target(120.0, 0.01)}},
    }
    text = check.markdown(_report(measured, flow))
    assert "| default / fp32 eager (one model, synthetic) | 4.20 | 4 | **met** |" in text
    assert "| pair / one model (default, synthetic) | 0.48 | 0.5 | **missed** |" in text
    assert "| end to end / synthetic (one model, default) | n/a | 0.85 | not measured |" in text
    assert "Ceiling: not measured." in text
    assert "| compiled | 60.00 | 120.00x | 0.0100 | 0.0200 | **met** |" in text
    assert "5 passed, 1 failed, 0 skipped." in text and "- tests/x.py::test_y: boom" in text
    assert "| table7-default | passed | 3.0 | Done in 0.1 min: ... | 2 |" in text and "| a |" in text
    assert "### Last output of throughput (timed out after 9 s)" in text and "last line" in text
    nothing = check.markdown(_report(None, None))
    assert nothing.count("Not measured.") == 2


def test_no_step_runs_once_the_budget_is_spent(tmp_path: Path) -> None:
    check = _script("gpu_check")
    assert check.main(["--out", str(tmp_path), "--tiny", "--budget", "0"]) == 1
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["status"] for s in report["steps"]] == ["not run: budget spent"] * 6
    assert report["environment"]["torch"] and report["environment"]["device"] == "cpu"
    assert "# GPU check" in (tmp_path / "gpu_check.md").read_text()
    assert check.main(["--out", str(tmp_path), "--tiny", "--budget", "0", "--only", "table7-default,flow"]) == 1
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert [s["name"] for s in report["steps"]] == ["table7-prepare", "flow", "table7-default"]  # its cache first


STEPS = ("tests", "table7-prepare", "table7-baseline", "flow", "throughput", "table7-default")  # the check's order


@pytest.mark.slow
def test_the_gpu_check_runs_every_step_in_tiny_mode(table7_specs: Path, tmp_path: Path) -> None:
    """The whole check as the GPU machine starts it (the shell script, its wheel folder and the carried TV-L1
    reference), at toy sizes on the CPU."""
    flow = _script("flow_throughput")
    wheels = tmp_path / "wheels"
    flow.main(
        ["--save-reference", str(wheels / "tvl1-reference.npz"), "--pairs", "1", "--height", "32", "--width", "40"]
    )
    out = tmp_path / "out"
    environment = {**os.environ, "PYTHON": sys.executable, "WHEELS": str(wheels), "SITE": str(tmp_path / "site")}
    options = [
        "--tiny",
        "--table7-specs",
        str(table7_specs),
        "--table7-profile",
        "micro",
        "--table7-set",
        "recipe.epochs=1",
        # Limits for a CPU that may be busy, not the GPU machine's (the defaults cut a step at 60-240 s).
        "--timeouts",
        ",".join(f"{step}=300" for step in STEPS),
        "--budget",
        "1500",
    ]
    finished = subprocess.run(
        ["bash", str(BENCHMARK / "gpu_check.sh"), str(out), *options], cwd=ROOT, env=environment, capture_output=True,
        text=True, timeout=1800,
    )  # fmt: skip
    assert finished.returncode == 0, finished.stdout[-3000:] + finished.stderr[-3000:]
    report = json.loads((out / "gpu_check.json").read_text())
    steps = {step["name"]: step for step in report["steps"]}
    assert list(steps) == list(STEPS)
    assert all(step["status"] == "passed" for step in steps.values())
    assert steps["tests"]["figures"]["failed"] == 0 and steps["tests"]["figures"]["skipped"] >= 5  # CUDA only
    assert "carried from tvl1-reference.npz" in steps["flow"]["figures"]["opencv"]["origin"]
    assert len(steps["throughput"]["figures"]["rows"]) == 4 and steps["throughput"]["figures"]["resnet50"]
    for name in ("table7-baseline", "table7-default"):
        assert steps[name]["figures"]["done"].startswith("Done in") and re.search(r"\| 7 +\| MML", steps[name]["table"])
    text = (out / "gpu_check.md").read_text()
    for heading in ("## 1. CUDA-only tests", "## 2. Training throughput", "## 3. TV-L1", "## 4. `mml reproduce"):
        assert heading in text
    assert "=== table7-default: passed" in (out / "gpu_check.log").read_text()
