"""The method table: every method's traits as the spec, the trainer and the evaluation read them, the spec's
messages for bad model lists, and the import layering (methods below spec and data; evaluation and the GFLOPs count
without the trainer)."""

import subprocess
import sys

import pytest

from mml.methods import METHODS

NAMES = (
    "ce", "ml", "mars", "d3d", "kd", "ce_aug", "self_kd", "skd_srl", "late_fusion", "gblend", "gblend_online",
    "weighted_fusion", "adamml",
)  # fmt: skip


def test_every_method_with_its_traits() -> None:
    assert tuple(METHODS) == NAMES  # the spec's order of choices in its error messages
    traits = {name: (m.teacher, m.single_label, m.torchrun, m.views, m.extra_heads) for name, m in METHODS.items()}
    assert [name for name, (teacher, *_) in traits.items() if teacher] == ["mars", "d3d", "kd"]
    fusions = ["late_fusion", "gblend", "gblend_online", "weighted_fusion", "adamml"]
    single_label = ["kd", "ce_aug", "self_kd", "skd_srl", *fusions]
    assert [name for name, (_, single, *_) in traits.items() if single] == single_label
    one_process = ["ce_aug", "self_kd", "skd_srl", *fusions]
    assert [name for name, (_, _, torchrun, *_) in traits.items() if not torchrun] == one_process
    assert [name for name, (*_, views, _) in traits.items() if views == 2] == ["ce_aug", "self_kd", "skd_srl"]
    assert [name for name, (*_, heads) in traits.items() if heads] == fusions


@pytest.mark.parametrize(
    ("method", "modalities", "loaded", "problem"),
    [
        ("ce", ["RGB"], False, None),
        ("ce", ["RGB", "Flow"], False, ("models", "method ce trains exactly one model, got 2")),
        ("kd", [], False, ("models", "method kd trains exactly one model, got 0")),
        ("skd_srl", ["RGB", "RGB"], False, ("models", "method skd_srl trains exactly one model, got 2")),
        ("ml", ["RGB"], False, ("models", "method ml trains two or more models, got 1")),
        ("ml", ["RGB", "RGB", "Flow"], True, None),
        (
            "gblend",
            ["RGB", "RGB"],
            False,
            ("models", "method gblend fuses two or more distinct modalities, got ['RGB', 'RGB']"),
        ),
        (
            "late_fusion",
            ["RGB", "Flow"],
            True,
            ("checkpoints", "a late_fusion run is trained, not loaded from checkpoint files"),
        ),
        ("gblend_online", ["RGB", "Flow", "Diff"], False, None),
    ],
)
def test_model_lists_a_method_refuses(method: str, modalities: list[str], loaded: bool, problem) -> None:
    assert METHODS[method].check_models(modalities, loaded) == problem


def _imported(statement: str) -> set[str]:
    code = f"import sys; {statement}; print(' '.join(sorted(m for m in sys.modules if m.startswith('mml'))))"
    return set(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split())


def test_methods_import_neither_spec_nor_data() -> None:
    modules = _imported("import mml.methods")
    assert not {m for m in modules if m.startswith(("mml.spec", "mml.data"))}, modules


def test_evaluation_and_the_gflops_count_do_not_import_the_trainer() -> None:
    assert "mml.train" not in _imported("import mml.evaluate, mml.report.cost")
