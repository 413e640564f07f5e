"""A run's recipe: training and input settings, each checked where the recipe is made (a profile, a run's
overrides, a derived recipe), and the identity markers that decide which dataclass fields enter a run id."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mml import validation
from mml.errors import InvalidValue
from mml.methods import SETTINGS, MethodSettings
from mml.methods.settings import Settings
from mml.validation import reported_at

SAMPLINGS = ("uniform", "dense", "both")


def identity(**kwargs: Any) -> Any:
    """A dataclass field that changes a run's result: it enters the run identity hash."""
    return field(metadata={"identity": True}, **kwargs)


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

    `method_settings` holds each method family's own settings, written `<family>.<name>` in a recipe table (e.g.
    `gblend.warmup = 10`); they enter the ids of the runs of the methods that read them only (`mml.methods.settings`).
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
    nesterov: bool = identity(default=False)  # SGD with Nesterov momentum (PySlowFast's default; TSM's is without)
    weight_decay: float = identity(default=5e-4)
    grad_clip: float = identity(default=20.0)  # max gradient norm; 0: no clipping
    dropout: float = identity(default=0.5)
    sampling: str = identity(default="both")
    dense_stride: int = identity(default=4)  # τ at `segments`; see the class docstring
    # Each method family's own settings (`mml.methods.settings`), one of every family in `SETTINGS`, by namespace.
    method_settings: tuple[MethodSettings, ...] = field(
        default=(), metadata={"identity": True, "method_settings": True}
    )

    def __post_init__(self) -> None:
        for item in dataclasses.fields(self):
            if item.name != "method_settings":
                object.__setattr__(self, item.name, check_recipe_value(item.name, getattr(self, item.name)))
        if self.input_size > self.short_side:
            raise InvalidValue("input_size", f"{self.input_size} exceeds short_side {self.short_side}")
        if self.nesterov and self.momentum == 0:
            raise InvalidValue("nesterov", "Nesterov momentum needs a positive momentum")
        object.__setattr__(self, "method_settings", _every_family(self.method_settings))

    def settings(self, kind: type[Settings]) -> Settings:
        """The settings of method family `kind`."""
        for settings in self.method_settings:
            if isinstance(settings, kind):
                return settings
        raise KeyError(f"no settings of {kind.__name__} (not in mml.methods.SETTINGS)")

    def with_settings(self, namespace: str, values: Mapping[str, Any]) -> Recipe:
        """This recipe with family `namespace`'s settings `values` changed (checked)."""
        return dataclasses.replace(
            self,
            method_settings=tuple(s.replaced(values) if s.namespace == namespace else s for s in self.method_settings),
        )

    def stretched(self, epochs: int) -> Recipe:
        """This recipe over `epochs` epochs, its lr steps moved in proportion (those that fall outside dropped)."""
        steps = {round(step * epochs / self.epochs) for step in self.lr_steps}
        return dataclasses.replace(self, epochs=epochs, lr_steps=tuple(sorted(s for s in steps if 0 < s < epochs)))


def _every_family(given: tuple[MethodSettings, ...]) -> tuple[MethodSettings, ...]:
    """`given` with the default settings of every family it lacks, in namespace order.

    Raises:
        InvalidValue: settings of a family not in `SETTINGS`, or two of one family.
    """
    by_namespace: dict[str, MethodSettings] = {}
    for settings in given:
        namespace = getattr(settings, "namespace", None)
        validation.require(
            namespace in SETTINGS and type(settings) is SETTINGS[namespace],
            "method_settings",
            f"{settings!r} is not the settings of a family of mml.methods.SETTINGS",
        )
        validation.require(namespace not in by_namespace, str(namespace), "given twice")
        by_namespace[str(namespace)] = settings
    return tuple(by_namespace.get(namespace) or kind() for namespace, kind in SETTINGS.items())


_KINDS: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool, "tuple[int, ...]": list}
_FIELD_KINDS = {item.name: _KINDS[str(item.type)] for item in dataclasses.fields(Recipe) if item.type in _KINDS}
_CHOICES = {"sampling": SAMPLINGS}
# Range checks beyond "non-negative" (and "positive" for counts): setting -> (test, requirement).
_LIMITS = {"dropout": (lambda v: v < 1, "must be below 1")}


def check_recipe_value(key: str, value: Any) -> Any:
    """`value` checked for recipe setting `key` and normalised (an int for a float setting becomes that float,
    a list of `lr_steps` a tuple): one check for profile recipes and run overrides alike. A key
    `<namespace>.<name>` is setting `name` of a method family (`mml.methods.SETTINGS`).

    Raises:
        InvalidValue: an unknown setting, a value of the wrong type, out of its range or not one of its choices.
    """
    namespace, dot, name = key.partition(".")
    if dot:
        validation.require(namespace in SETTINGS, key, f"no method family {namespace!r} (known: {', '.join(SETTINGS)})")
        return SETTINGS[namespace].checked(name, value)
    if key not in _FIELD_KINDS:
        family, _, name = key.partition("_")
        hint = f" (a method setting: write {family}.{name})" if family in SETTINGS else ""
        raise InvalidValue(key, f"unknown recipe setting{hint}")
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
    if kind in (int, float):
        validation.positive(key, value, zero=kind is float)
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
        changed = dataclasses.replace(recipe, **{key: value for key, value in overrides.items() if "." not in key})
        for namespace in SETTINGS:
            own = {key.partition(".")[2]: v for key, v in overrides.items() if key.startswith(f"{namespace}.")}
            if own:
                changed = changed.with_settings(namespace, own)
        if "segments" in overrides and "dense_stride" not in overrides:
            span = recipe.dense_stride * recipe.segments
            changed = dataclasses.replace(changed, dense_stride=max(1, span // changed.segments))
    return changed
