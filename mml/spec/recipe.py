"""A run's recipe: training and input settings, each checked where the recipe is made (a profile, a run's
overrides, a derived recipe), and the identity markers that decide which dataclass fields enter a run id."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mml import validation
from mml.errors import InvalidValue
from mml.losses import KL_FORMS
from mml.models.tsm import ARCHS
from mml.validation import reported_at

SAMPLINGS = ("uniform", "dense", "both")


def identity(**kwargs: Any) -> Any:
    """A dataclass field that changes a run's result: it enters the run identity hash."""
    return field(metadata={"identity": True}, **kwargs)


def method_setting(**kwargs: Any) -> Any:
    """A setting of some methods only (those naming it in `Method.settings`): it enters the identity of their runs
    and of no other run, so a profile can set it without changing the ids, or the stored results, of other runs."""
    return field(metadata={"identity": True, "method_setting": True}, **kwargs)


def execution(**kwargs: Any) -> Any:
    """A dataclass field that only says how or where to run (device, workers, paths): never hashed."""
    return field(metadata={"identity": False}, **kwargs)


@dataclass(frozen=True)
class Recipe:
    """Training and input settings of one run (all result-changing).

    `dense_stride` is the frame step τ of dense sampling at this recipe's `segments`; the dense clip's span
    `dense_stride × segments` is what a profile fixes, as the original code fixes `--dense_length` (32) and takes
    τ = dense_length // T. A run that overrides `segments` keeps the span (`run_recipe`).

    Every value is checked on construction (`check_recipe_value`, and `input_size <= short_side`), and an int given
    for a float setting is stored as that float, so `lr = 1` and `lr = 1.0` make one recipe and one run id.
    """

    segments: int = identity()
    short_side: int = identity()
    input_size: int = identity()
    batch_size: int = identity()
    epochs: int = identity()
    lr: float = identity()
    lr_steps: tuple[int, ...] = identity()
    lr_decay: float = identity(default=0.1)
    momentum: float = identity(default=0.9)
    weight_decay: float = identity(default=5e-4)
    grad_clip: float = identity(default=20.0)  # max gradient norm; 0: no clipping
    dropout: float = identity(default=0.5)
    sampling: str = identity(default="both")
    dense_stride: int = identity(default=4)  # τ at `segments`; see the class docstring
    kl_form: str = identity(default="probs")
    mars_weight: float = identity(default=50.0)  # MARS feature-MSE weight (Crasto et al.)
    d3d_weight: float = identity(default=1.0)  # D3D logit-L2 weight (Stroud et al.)
    # KD (Hinton et al.): CE + kd_alpha kd_tau² KL at temperature kd_tau; SKD-SRL's τ and α by default.
    kd_tau: float = method_setting(default=10.0)
    kd_alpha: float = method_setting(default=0.1)
    # SKD-SRL (Vu et al., §IV-A): temperature τ of eq. 2, weights α (distillation) and β (similarity) of eq. 5.
    skd_tau: float = method_setting(default=10.0)
    skd_alpha: float = method_setting(default=0.1)
    skd_beta: float = method_setting(default=1.0)
    # G-Blend (Wang et al.): the held-out fraction V of the training videos (8% on Kinetics, §3.1); the epochs n
    # each weight estimate trains (0: as Algorithms 2 and 3 print, the whole training offline, the super-epoch
    # online); online G-Blend's super-epoch and its longer first one (5 and 10 in §3.2).
    gblend_holdout: float = method_setting(default=0.08)
    gblend_estimate_epochs: int = method_setting(default=0)
    gblend_super_epoch: int = method_setting(default=5)
    gblend_warmup: int = method_setting(default=10)
    # AdaMML (Panda et al., ICCV 2021; defaults: the official code's README): C training regions and C' test
    # segments; the stages in epochs (warm-up with the policy frozen, alternating pairs of a recognition and a policy
    # epoch, fine-tuning with the policy frozen); the policy's Adam lr; the Gumbel temperature and its decay per
    # pair; γ and λ of the efficiency loss, λ the same for every modality (`hand`) or scaled by each modality's
    # GFLOPs (`gflops`); the policy's backbone and its input frames and size (the original's 4 x 160 x 160), the width
    # of its joint MLP and its LSTM's hidden size (the original's 2048 and 256).
    adamml_regions: int = method_setting(default=5)
    adamml_test_regions: int = method_setting(default=10)
    adamml_warmup: int = method_setting(default=5)
    adamml_alternations: int = method_setting(default=20)
    adamml_finetune: int = method_setting(default=10)
    adamml_policy_lr: float = method_setting(default=0.01)
    adamml_temperature: float = method_setting(default=5.0)
    adamml_temperature_decay: float = method_setting(default=0.965)
    adamml_gamma: float = method_setting(default=10.0)
    adamml_lambda: float = method_setting(default=1.0)
    adamml_lambda_from: str = method_setting(default="hand")
    adamml_policy_arch: str = method_setting(default="tsm_tiny")
    adamml_policy_frames: int = method_setting(default=4)
    adamml_policy_size: int = method_setting(default=160)
    adamml_policy_width: int = method_setting(default=2048)
    adamml_policy_hidden: int = method_setting(default=256)

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            object.__setattr__(self, item.name, check_recipe_value(item.name, getattr(self, item.name)))
        if self.input_size > self.short_side:
            raise InvalidValue("input_size", f"{self.input_size} exceeds short_side {self.short_side}")

    def stretched(self, epochs: int) -> Recipe:
        """This recipe over `epochs` epochs, its lr steps moved in proportion (those that fall outside dropped)."""
        steps = {round(step * epochs / self.epochs) for step in self.lr_steps}
        return dataclasses.replace(self, epochs=epochs, lr_steps=tuple(sorted(s for s in steps if 0 < s < epochs)))


_KINDS: dict[str, type] = {"int": int, "float": float, "str": str, "tuple[int, ...]": list}
_FIELD_KINDS = {item.name: _KINDS[str(item.type)] for item in dataclasses.fields(Recipe)}
_CHOICES = {
    "sampling": SAMPLINGS,
    "kl_form": KL_FORMS,
    "adamml_lambda_from": ("hand", "gflops"),
    "adamml_policy_arch": tuple(ARCHS),
}
# Range checks beyond "non-negative" (and "positive" for counts): setting -> (test, requirement).
_LIMITS = {
    "dropout": (lambda v: v < 1, "must be below 1"),
    "kd_tau": (lambda v: v > 0, "must be positive"),
    "skd_tau": (lambda v: v > 0, "must be positive"),
    "gblend_holdout": (lambda v: 0 < v < 1, "must be a fraction in (0, 1)"),
    "adamml_policy_lr": (lambda v: v > 0, "must be positive"),
    "adamml_temperature": (lambda v: v > 0, "must be positive"),
    "adamml_temperature_decay": (lambda v: 0 < v <= 1, "must be in (0, 1]"),
}
_ZERO_ALLOWED = {
    "gblend_estimate_epochs",
    "adamml_warmup",
    "adamml_alternations",
    "adamml_finetune",
}  # integer settings where 0 has a meaning (0: the whole training)


def check_recipe_value(key: str, value: Any) -> Any:
    """`value` checked for recipe setting `key` and normalised (an int for a float setting becomes that float,
    a list of `lr_steps` a tuple): one check for profile recipes and run overrides alike.

    Raises:
        InvalidValue: an unknown setting, a value of the wrong type, out of its range or not one of its choices.
    """
    if key not in _FIELD_KINDS:
        raise InvalidValue(key, "unknown recipe setting")
    kind = _FIELD_KINDS[key]
    if kind is list:
        steps = value
        ok = isinstance(steps, list | tuple) and all(type(step) is int and step > 0 for step in steps)
        validation.require(
            ok and list(steps) == sorted(steps), key, f"expected increasing positive epochs, got {steps!r}"
        )
        return tuple(steps)
    value = validation.typed(key, value, kind)
    if key in _CHOICES:
        return validation.one_of(key, value, _CHOICES[key])
    if kind is not str:
        validation.positive(key, value, zero=kind is float or key in _ZERO_ALLOWED)
    test, requirement = _LIMITS.get(key, (lambda v: True, ""))
    validation.require(test(value), key, f"{requirement}, got {value!r}")
    return value


def run_recipe(recipe: Recipe, overrides: Mapping[str, Any], where: str = "recipe overrides") -> Recipe:
    """A spec run's recipe: the profile's `recipe` with the run's `overrides`, checked as a whole (an error names
    `where`, e.g. the spec file and run).

    A run that changes `segments` but not `dense_stride` keeps the profile's dense clip span `dense_stride ×
    segments`, as the original code keeps `--dense_length` when T changes (`t_stride = dense_length // T`): the
    paper profile's 8 × 4 = 32 frames give τ = 2 for Tab. 9's 16 frames, where τ = 4 would span 61 frames and wrap
    around most videos. τ is at least 1 (a span shorter than the segments, as the smoke profile's 2 × 4 for 16
    segments, gives consecutive frames).
    """
    with reported_at(where):
        changed = dataclasses.replace(recipe, **overrides)
        if "segments" in overrides and "dense_stride" not in overrides:
            span = recipe.dense_stride * recipe.segments
            changed = dataclasses.replace(changed, dense_stride=max(1, span // changed.segments))
    return changed
