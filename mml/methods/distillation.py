"""Distillation from a frozen teacher of another modality into a one-model student, on the same clip.

- MARS (Crasto et al.): the feature-map MSE to the teacher's features, weighted by `mars.weight`.
- D3D (Stroud et al.): the squared L2 distance to the teacher's logits, weighted by `d3d.weight`.
- KD (Hinton et al.; the SKD-SRL paper's Table II "KD" row): `kd.alpha` τ² KL of the softened logits at τ =
  `kd.tau` (`soft_distillation`); softmax targets, so single-label only.

The student's loss is its CE (BCE) plus the weighted term (`mml.methods.mutual.group_step`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor

from mml.losses import d3d_loss, mars_loss, tempered_kl, tempered_log_softmax
from mml.methods.base import Method, Training
from mml.methods.mutual import group_step
from mml.methods.settings import MethodSettings

if TYPE_CHECKING:
    from mml.spec import Recipe


@dataclass(frozen=True)
class MARSSettings(MethodSettings):
    """MARS's weight of the feature-map MSE (Crasto et al.)."""

    namespace = "mars"
    in_every_run_id = True
    weight: float = 50.0


@dataclass(frozen=True)
class D3DSettings(MethodSettings):
    """D3D's weight of the logit L2 distance (Stroud et al.)."""

    namespace = "d3d"
    in_every_run_id = True
    weight: float = 1.0


@dataclass(frozen=True)
class KDSettings(MethodSettings):
    """KD (Hinton et al.): CE + alpha tau² KL at temperature tau; SKD-SRL's τ and α (§IV-A) by default."""

    namespace = "kd"
    limits = {"tau": (lambda v: v > 0, "must be positive")}
    tau: float = 10.0
    alpha: float = 0.1


def soft_distillation(student_logits: Tensor, teacher_logits: Tensor, tau: float) -> Tensor:
    """Hinton et al.'s soft term τ² D_KL(softmax(t/τ) || softmax(s/τ)), batch mean, the teacher's logits detached."""
    if student_logits.ndim != 2 or student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"soft_distillation needs (B, K) student and teacher logits of one shape, "
            f"got {tuple(student_logits.shape)}, {tuple(teacher_logits.shape)}"
        )
    return tau**2 * tempered_kl(tempered_log_softmax(teacher_logits.detach(), tau), student_logits, tau)


def distillation_loss(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, tau: float, alpha: float
) -> Tensor:
    """Hinton et al.'s KD (the SKD-SRL paper's ref. [11], its Table II "KD" row, Fig. 1a):
    CE(y, s) + α τ² D_KL(softmax(t/τ) || softmax(s/τ)), batch means, the teacher's logits detached.

    The SKD-SRL paper gives no formula for this baseline. Hinton et al. take "a weighted average" of the two terms
    and scale the soft one by τ² so that its gradients keep their size as τ changes; we weight it additively by α,
    in the form of eq. 5, so ``(1 − α) CE + α τ² KL`` is this loss with α/(1 − α), scaled by 1 − α.
    """
    return F.cross_entropy(student_logits, labels) + alpha * soft_distillation(student_logits, teacher_logits, tau)


# A distillation term from the recipe, the student's features and logits, and the teacher's.
TeacherTerm = Callable[["Recipe", Tensor, Tensor, Tensor, Tensor], Tensor]


def _mars(recipe: Recipe, features: Tensor, logits: Tensor, teacher_features: Tensor, teacher_logits: Tensor):
    return recipe.settings(MARSSettings).weight * mars_loss(features, teacher_features)


def _d3d(recipe: Recipe, features: Tensor, logits: Tensor, teacher_features: Tensor, teacher_logits: Tensor):
    return recipe.settings(D3DSettings).weight * d3d_loss(logits, teacher_logits)


def _kd(recipe: Recipe, features: Tensor, logits: Tensor, teacher_features: Tensor, teacher_logits: Tensor):
    settings = recipe.settings(KDSettings)
    return settings.alpha * soft_distillation(logits, teacher_logits, settings.tau)


@dataclass(frozen=True)
class Distillation(Method):
    """A one-model student with a frozen teacher; `term` is what it learns from the teacher."""

    teacher: bool = True
    term: TeacherTerm = _mars

    def step(self, training: Training, inputs: dict[str, Tensor], labels: Tensor) -> list[Tensor]:
        config, teacher = training.config, training.teacher
        if teacher is None or config.teacher is None:
            raise ValueError(f"run {config.run_id}: method {self.name} needs a teacher")
        teacher_inputs = inputs[config.teacher.modality]

        def student_term(features: Tensor, logits: Tensor) -> Tensor:
            with torch.no_grad():
                teacher_features = teacher.features(teacher_inputs)
                teacher_logits = teacher.head(teacher_features)
            return self.term(config.recipe, features, logits, teacher_features, teacher_logits)

        return group_step(
            config, training.nets, inputs, labels, training.layout, student_term, training.record_cross_entropy
        )


MARS = Distillation("mars", term=_mars, settings=MARSSettings, reads=MARSSettings.names())
D3D = Distillation("d3d", term=_d3d, settings=D3DSettings, reads=D3DSettings.names())
KD = Distillation("kd", term=_kd, single_label=True, settings=KDSettings, reads=KDSettings.names())
