"""CE and mutual learning (ML / MML, paper §2.2, eq. 1-4): M models of one run trained together on the same clips.

Model i's loss is CE(p_i, y) (BCE for multi-label targets), plus for M >= 2 the mutual term
KL(mean of the other models' probabilities || p_i) in the form `kl.form` (`mml.losses.KL_FORMS`); CE is the group of
one model.
The KL targets are detached, so one backward pass of the summed losses equals a backward pass per model. MML is
ML whose models start from a first ML stage (their `init`): the same method, two spec runs.

Under torchrun each rank trains one model on one shard of every batch, builds only its model's modality and
receives the other models' detached class scores (`Layout.exchange`) instead of computing them; `group_step` is
the one loss computation of both, and of the distillation methods (`mml.methods.distillation`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor, nn

from mml.distributed import Layout
from mml.losses import KL_FORMS, binary_cross_entropy, cross_entropy, kl_message, kl_to_others
from mml.methods.base import Method, Training
from mml.methods.settings import MethodSettings

if TYPE_CHECKING:
    from mml.store import RunConfig


@dataclass(frozen=True)
class KLSettings(MethodSettings):
    """The form of the mutual KL term: `probs` (the paper's eq. 2-3) or `logits` (the original code's)."""

    namespace = "kl"
    in_every_run_id = True
    choices = {"form": KL_FORMS}
    form: str = "probs"


# The student's extra term from its (features, logits), before the multi-label scaling (distillation's).
StudentTerm = Callable[[Tensor, Tensor], Tensor]


def group_step(
    config: RunConfig,
    models: Sequence[nn.Module],
    inputs: dict[str, Tensor],
    labels: Tensor,
    layout: Layout | None = None,
    student_term: StudentTerm | None = None,
    record: Callable[[list[Tensor]], None] | None = None,
) -> list[Tensor]:
    """The loss of each model this process trains, on one batch (on a rank: on its shard of the batch).

    CE for every model (BCE for multi-label targets); plus the mutual KL term when the group has two or more
    models, its target built from the other models' `kl_message`s, computed here in one process or received from
    the peer ranks; plus, for a distillation student (one model), `student_term` of its features and logits. With
    BCE the extra terms are divided by the number of classes, so that they keep the magnitude of the
    classification loss (paper Appendix 2).

    Args:
        models: the `Outputs` of the models of `layout.held` (every model of the run without a layout), possibly
            under DDP.
        layout: where this process stands in the run; None: one process trains every model.
        student_term: the extra loss of model 0 (a distillation student), from its features and logits.
        record: receives the CE (BCE) term of each held model alone (`Training.record_cross_entropy`).
    """
    layout = layout or Layout(len(config.models))
    outputs = [net(inputs[config.models[index].modality]) for index, net in zip(layout.held, models, strict=True)]
    features, logits = [f for f, _ in outputs], [z for _, z in outputs]
    multilabel = labels.is_floating_point()
    scale = 1 / config.num_classes if multilabel else 1.0
    losses = [(binary_cross_entropy if multilabel else cross_entropy)(output, labels) for output in logits]
    if record is not None:
        record(losses)
    if len(config.models) >= 2:
        form = config.recipe.settings(KLSettings).form
        messages = layout.exchange([kl_message(z, form) for z in logits])
        losses = [
            loss + scale * kl_to_others(z, [m for j, m in enumerate(messages) if j != index], form)
            for index, z, loss in zip(layout.held, logits, losses)
        ]
    if student_term is not None:
        losses[0] = losses[0] + scale * student_term(features[0], logits[0])
    return losses


@dataclass(frozen=True)
class MutualLearning(Method):
    """CE (one model) or ML / MML (two or more): `group_step`."""

    def step(self, training: Training, inputs: dict[str, Tensor], labels: Tensor) -> list[Tensor]:
        return group_step(
            training.config, training.nets, inputs, labels, training.layout, record=training.record_cross_entropy
        )


CE = MutualLearning("ce")
ML = MutualLearning("ml", min_models=2, max_models=None, settings=KLSettings, reads=KLSettings.names())
