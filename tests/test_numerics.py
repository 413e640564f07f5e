"""Tests of the CPU numerics (`mml.numerics`): the environment importing mml sets, the libraries taking it, the
refusal when torch fixed other numerics first, the opt-out, what `run.json` and the footnote record, and TV-L1 flow
that does not depend on the CPU's instruction sets.

Each process-level behaviour runs in a fresh interpreter: what torch's libraries compute with is fixed once per
process, at their first use."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mml.checkpoint import write_finished
from mml.data.flow_backend import FlowBackend
from mml.errors import InvalidValue, MMLError
from mml.execution import Execution
from mml.numerics import PORTABLE, PORTABLE_ENVIRONMENT, VARIABLE, CpuNumerics, mode, require
from mml.report.executions import cpu_numerics, run_execution
from mml.spec import Recipe
from mml.store import ModelConfig, RunConfig, Store

VARIABLES = (*PORTABLE_ENVIRONMENT, VARIABLE)
TRAIN_A_STEP = (
    "x = torch.randn(4, 3, 16, 16); net = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten(), "
    "torch.nn.Linear(784, 2)); net(x).sum().backward()"
)


def _python(code: str, **settings: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter whose environment holds none of the numerics variables but `settings`."""
    environment = {key: value for key, value in os.environ.items() if key not in VARIABLES}
    return subprocess.run(
        [sys.executable, "-c", code], env={**environment, **settings}, capture_output=True, text=True, check=True
    )


def _last_json(done: subprocess.CompletedProcess) -> dict:
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_mml_sets_the_portable_environment_and_keeps_what_is_set() -> None:
    code = f"import json, os, mml; print(json.dumps({{k: os.environ.get(k) for k in {list(PORTABLE_ENVIRONMENT)}}}))"
    assert _last_json(_python(code)) == PORTABLE_ENVIRONMENT
    assert _last_json(_python(code, MKL_CBWR="AVX2"))["MKL_CBWR"] == "AVX2"  # left for `require` to refuse
    assert _last_json(_python(code, **{VARIABLE: "native"})) == dict.fromkeys(PORTABLE_ENVIRONMENT)
    assert "torch" not in _python("import sys, mml; print(sorted(sys.modules))").stdout  # mml alone loads no torch


@pytest.mark.parametrize("torch_first", [False, True])
def test_torch_computes_with_the_portable_numerics(torch_first: bool) -> None:
    """MKL's branch is read from MKL itself and ATen's kernels from ATen; torch imported (but not yet used) before
    mml still gets them, since the libraries read their variables at first use."""
    imports = "import torch, mml" if torch_first else "import mml, torch"
    done = _python(f"{imports}, json; {TRAIN_A_STEP}; print(json.dumps(mml.numerics.in_effect().record()))")
    record = _last_json(done)
    assert record["setting"] == PORTABLE
    libraries = (record["aten_capability"], record["mkl_cbwr"], record["onednn_max_isa"])
    assert libraries == ("AVX2", "COMPATIBLE", "AVX2")
    assert record["mkldnn"] is True and "RuntimeWarning" not in done.stderr


def test_torch_used_before_mml_warns_and_cpu_work_is_refused() -> None:
    code = (
        f"import torch; {TRAIN_A_STEP}\n"
        "import mml.numerics\n"
        "mml.numerics.require(['cuda:0'])  # CUDA work is not concerned\n"
        "try:\n    mml.numerics.require(['cpu'])\nexcept mml.errors.MMLError as error:\n    print(error)\n"
    )
    done = _python(code)
    assert "torch ran before mml was imported" in done.stderr and "RuntimeWarning" in done.stderr
    refusal = done.stdout.strip()
    assert refusal.startswith("CPU numerics are not portable in this process (ATen ") and "\n" not in refusal
    assert f"{VARIABLE}=native" in refusal and "import mml before torch" in refusal


def test_the_native_opt_out_is_never_refused_and_is_recorded_as_native() -> None:
    code = f"import torch; {TRAIN_A_STEP}\nimport json, mml.numerics\n"
    code += "print(json.dumps(mml.numerics.require(['cpu']).record()))"
    done = _python(code, **{VARIABLE: "native"})
    record = _last_json(done)
    assert record["setting"] == "native" and record["cpu"] and "RuntimeWarning" not in done.stderr


def test_a_bad_setting_is_one_line_naming_the_variable() -> None:
    with pytest.raises(MMLError, match=rf"^{VARIABLE}=fast: not one of portable, native$"):
        mode({VARIABLE: "fast"})
    assert mode({}) == "portable" and mode({VARIABLE: "native"}) == "native"


def test_differences_name_each_library_that_is_not_portable() -> None:
    portable = CpuNumerics("portable", "AVX2", "COMPATIBLE", "AVX2", True, "AMD EPYC")
    assert portable.differences() == [] and portable.name == PORTABLE
    without_avx2 = CpuNumerics("portable", "DEFAULT", "COMPATIBLE", "AVX2", True, "an older CPU")  # ATen falls back
    assert without_avx2.differences() == ["ATen DEFAULT instead of AVX2"]
    native = CpuNumerics("native", "AVX512", "OFF", "ALL", False, "AMD EPYC")
    assert native.name == "native"
    assert native.differences() == [
        "ATen AVX512 instead of AVX2",
        "MKL_CBWR OFF instead of COMPATIBLE",
        "ONEDNN_MAX_CPU_ISA ALL instead of AVX2",
        "oneDNN convolutions off",
    ]


def test_run_json_records_the_numerics_and_the_footnote_names_them(tmp_path: Path) -> None:
    recipe = Recipe(segments=2, short_side=32, input_size=28, batch_size=4, epochs=1, lr=0.1, lr_steps=(), dropout=0)
    config = RunConfig(
        method="ce",
        models=(ModelConfig(modality="RGB", init="random"),),
        arch="tsm_tiny",
        recipe=recipe,
        dataset="test",
        num_classes=3,
        seed=0,
    )
    store = Store(tmp_path / "store")
    folder = store.run_dir(config.run_id)
    folder.mkdir(parents=True)
    write_finished(folder, config, {}, [], {"history": []}, Execution(), 1)
    recorded = json.loads((folder / "run.json").read_text())["cpu_numerics"]
    assert set(recorded) == {"setting", "aten_capability", "mkl_cbwr", "onednn_max_isa", "mkldnn", "cpu"}
    assert run_execution(store, config.run_id) == f"on cpu, world size 1, fp32, eager, {cpu_numerics(recorded)}"

    assert cpu_numerics({**recorded, "setting": PORTABLE}) == "CPU numerics portable-avx2"
    native = {**recorded, "setting": "native", "cpu": "Intel Xeon Gold 6130", "aten_capability": "AVX512"}
    assert cpu_numerics(native) == "CPU numerics native to Intel Xeon Gold 6130 (AVX512)"
    assert cpu_numerics(None) == "CPU numerics unrecorded"


def test_tvl1_flow_does_not_depend_on_the_instruction_sets_opencv_may_use() -> None:
    """OpenCV's dispatch capped at SSE3 and IPP at SSE4.2 (what an older CPU offers) give the flow this CPU gives;
    with the dispatch on, both changed it."""
    code = (
        "import hashlib, cv2, numpy as np\nfrom mml.data.flow import tvl1_flow\n"
        "noise = cv2.GaussianBlur(np.random.default_rng(0).uniform(0, 255, (40, 48, 3)), (0, 0), 2).astype(np.uint8)\n"
        "frames = np.stack([np.roll(noise, (k, 2 * k), (0, 1)) for k in range(3)])\n"
        "flow = tvl1_flow(frames)\nprint(cv2.useOptimized(), hashlib.sha256(flow.tobytes()).hexdigest())"
    )
    capped = "AVX512F,AVX512-SKX,AVX512-CLX,AVX512-COMMON,AVX512-ICL,AVX2,FMA3,FP16,AVX,SSE4.2,POPCNT,SSE4.1,SSSE3"
    here = _python(code).stdout.split()
    older = _python(code, OPENCV_CPU_DISABLE=capped, OPENCV_IPP="sse42").stdout.split()
    assert here[0] == "True"  # OpenCV's own setting is left as it was
    assert here[1] == older[1]


def test_cpu_compilation_is_refused_under_portable_numerics() -> None:
    assert mode() == "portable"  # the test process: mml imported before torch ran
    with pytest.raises(
        MMLError, match=r"^torch\.compile on the CPU builds code for this CPU.*MML_CPU_NUMERICS=native$"
    ):
        require(["cpu"], compiled=True)
    require(["cuda:0"], compiled=True)  # CUDA work is not concerned
    with pytest.raises(InvalidValue, match=r"--flow-compile: compiled CPU code is built for this CPU"):
        FlowBackend("torch", "cpu", compiled=True)
