"""CPU numerics that do not depend on the CPU model, so that another x86-64 machine trains the same runs to the same
bits.

PyTorch's CPU kernels round differently on different x86-64 CPUs: ATen dispatches AVX-512, AVX2 or unvectorised
kernels, oneDNN JIT-compiles its convolutions for the newest instruction set it finds, and MKL picks its GEMM code
per CPU (on a non-Intel CPU every reproducibility branch but COMPATIBLE falls back to AUTO). Training amplifies the
last bits, so the same run ids gave other tables on another machine. `portable` numerics (the default) pin all three
to code that every x86-64 CPU with AVX2 (x86-64-v3: Intel since 2013, AMD since 2015, every current server) runs
alike: ATen's `avx2` kernels, oneDNN capped at AVX2 and MKL's COMPATIBLE branch (docs/guarantees.md gives what was
measured). The SSE4.1 level, which older CPUs share too, trained the same weights under every emulated CPU but
doubles the CPU training time (benchmark/RESULTS.md), which the smoke and small budgets cannot pay; a CPU without
AVX2 is refused rather than given other numbers. `MML_CPU_NUMERICS=native` opts out: faster on AVX-512, with this CPU
model's numbers, and recorded as such. CUDA runs are not concerned: their numbers belong to the GPU.

The three libraries read their variables at their first use, not when torch is imported, so `apply` sets them when
mml is imported (`mml/__init__.py`) and every process started later inherits them; `require` refuses CPU work in a
process where torch had already fixed other ones (torch used before mml was imported), and `in_effect` says what a
run was trained with, for its `run.json` and the tables' footnotes.
"""

from __future__ import annotations

import ctypes
import os
import platform
import sys
import warnings
from collections.abc import Iterable, Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

from mml.errors import MMLError

VARIABLE = "MML_CPU_NUMERICS"
MODES = ("portable", "native")
PORTABLE = "portable-avx2"  # the name `run.json` records for portable numerics
# The variables that pin the CPU kernels, as torch's libraries read them at their first use. ATen `default` with
# oneDNN at `SSE41` would be the same on pre-AVX2 CPUs too, at about twice the CPU time (benchmark/RESULTS.md).
PORTABLE_ENVIRONMENT = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "COMPATIBLE"}
# MKL's answer to mkl_cbwr_get(MKL_CBWR_BRANCH), by value (mkl_cbwr.h).
_MKL_BRANCHES = {1: "OFF", 2: "AUTO", 3: "COMPATIBLE", 4: "SSE2", 6: "SSSE3", 7: "SSE4_1", 8: "SSE4_2", 9: "AVX"}
_MKL_BRANCHES.update({10: "AVX2", 12: "AVX512", 14: "AVX512_E1"})
_MKL_BRANCH_QUERY = 1


@dataclass(frozen=True)
class CpuNumerics:
    """The CPU numerics of this process, as `run.json` records them.

    `aten_capability`: the kernels ATen dispatches (DEFAULT, AVX2, AVX512); `mkl_cbwr`: MKL's code branch (OFF: its
    own choice per CPU); `onednn_max_isa`: the cap oneDNN reads (ALL: none); `mkldnn`: whether convolutions go through
    oneDNN; `cpu`: the CPU model the numbers belong to when they are native.
    """

    mode: str
    aten_capability: str
    mkl_cbwr: str
    onednn_max_isa: str
    mkldnn: bool
    cpu: str

    @property
    def name(self) -> str:
        """`portable-avx2` or `native`."""
        return PORTABLE if self.mode == "portable" else "native"

    def record(self) -> dict[str, object]:
        """The entry of `run.json`."""
        return {
            "setting": self.name,
            "aten_capability": self.aten_capability,
            "mkl_cbwr": self.mkl_cbwr,
            "onednn_max_isa": self.onednn_max_isa,
            "mkldnn": self.mkldnn,
            "cpu": self.cpu,
        }

    def differences(self) -> list[str]:
        """What differs from portable numerics, in words; empty when they are portable."""
        found = {
            "ATen": (self.aten_capability, PORTABLE_ENVIRONMENT["ATEN_CPU_CAPABILITY"].upper()),
            "MKL_CBWR": (self.mkl_cbwr, PORTABLE_ENVIRONMENT["MKL_CBWR"]),
            "ONEDNN_MAX_CPU_ISA": (self.onednn_max_isa, PORTABLE_ENVIRONMENT["ONEDNN_MAX_CPU_ISA"]),
        }
        lines = [f"{name} {value} instead of {wanted}" for name, (value, wanted) in found.items() if value != wanted]
        return lines + ([] if self.mkldnn else ["oneDNN convolutions off"])


def mode(environ: Mapping[str, str] = os.environ) -> str:
    """The requested CPU numerics: `portable`, unless MML_CPU_NUMERICS says `native`.

    Raises:
        MMLError: MML_CPU_NUMERICS holds another value.
    """
    value = environ.get(VARIABLE, "portable")
    if value not in MODES:
        raise MMLError(f"{VARIABLE}={value}: not one of {', '.join(MODES)}")
    return value


def apply(environ: MutableMapping[str, str] = os.environ) -> None:
    """Ask torch's CPU libraries for portable numerics, unless MML_CPU_NUMERICS asks otherwise: set each variable of
    `PORTABLE_ENVIRONMENT` that is not set yet (one set to another value is left for `require` to refuse). Called
    when mml is imported; warns when torch has already fixed other numerics in this process."""
    if environ.get(VARIABLE, "portable") != "portable":
        return  # native, or a bad value that `require` names
    for name, value in PORTABLE_ENVIRONMENT.items():
        environ.setdefault(name, value)
    if "torch" in sys.modules:
        differing = in_effect(environ).differences()
        if differing:
            warnings.warn(
                f"mml: torch ran before mml was imported and keeps this CPU's own numerics ({'; '.join(differing)}): "
                f"CPU runs will be refused; import mml before torch, or set {VARIABLE}=native",
                RuntimeWarning,
                stacklevel=3,
            )


def in_effect(environ: Mapping[str, str] = os.environ) -> CpuNumerics:
    """The CPU numerics this process computes with. ATen's and MKL's are read from the libraries; oneDNN's cap is the
    variable as it stands (oneDNN offers no query), which it read unless a convolution ran before mml was imported —
    and then ATen's kernels were fixed too, by the tensors made for it, which `differences` shows."""
    import torch

    return CpuNumerics(
        mode=environ.get(VARIABLE, "portable"),
        aten_capability=torch.backends.cpu.get_cpu_capability(),
        mkl_cbwr=_mkl_branch(Path(torch.__file__).parent / "lib") or environ.get("MKL_CBWR", "OFF").upper(),
        onednn_max_isa=environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper(),
        mkldnn=bool(torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled),
        cpu=cpu_model(),
    )


def require(devices: Iterable[str], compiled: bool = False, environ: Mapping[str, str] = os.environ) -> CpuNumerics:
    """The numerics in effect, after refusing CPU work with numerics other than the requested ones (a bad
    MML_CPU_NUMERICS, portable numerics that torch had fixed otherwise before mml was imported, or torch.compile on
    the CPU, `compiled`: inductor builds its C++ for this CPU, and under ATen's capped kernels its code gave NaN here).
    `devices`: where the work runs; CUDA-only work is never refused.

    Raises:
        MMLError: One line naming what differs and the ways out.
    """
    requested = mode(environ)
    numerics = in_effect(environ)
    on_cpu = any(device.split(":")[0] == "cpu" for device in devices)
    if requested == "portable" and on_cpu and numerics.differences():
        variables = " ".join(f"{name}={value}" for name, value in PORTABLE_ENVIRONMENT.items())
        raise MMLError(
            f"CPU numerics are not portable in this process ({'; '.join(numerics.differences())}): import mml before "
            f"torch, start Python with {variables}, or set {VARIABLE}=native for this CPU's own numbers"
        )
    if requested == "portable" and on_cpu and compiled:
        raise MMLError(
            f"torch.compile on the CPU builds code for this CPU, not portable numerics: run without --compile, or "
            f"set {VARIABLE}=native"
        )
    return numerics


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo), else what `platform` knows."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                return value.strip()
    return platform.processor() or platform.machine() or "unknown CPU"


def _mkl_branch(torch_lib: Path) -> str | None:
    """MKL's code branch as MKL itself reports it, or None where torch has no MKL to ask (not an x86-64 wheel)."""
    for library in sorted(torch_lib.glob("libtorch_cpu.*")):
        try:
            query = ctypes.CDLL(str(library)).mkl_serv_cbwr_get
        except (OSError, AttributeError):
            continue
        value = int(query(_MKL_BRANCH_QUERY))
        return _MKL_BRANCHES.get(value, f"branch {value}")
    return None
