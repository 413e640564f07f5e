"""A method family's own settings: one frozen dataclass beside the family's code, read from its table of the recipe.

A profile sets them as dotted keys of its recipe (`gblend.warmup = 10` under `[smoke.recipe]`), a spec run in its
`recipe` table (`recipe = { gblend = { warmup = 2 } }`), the command line as `--set recipe.gblend.warmup=2`. A
setting enters the run id of the methods that read it (`Method.reads`) as the recipe key `<namespace>_<name>` — the
form these settings had when they were recipe fields, so stored runs keep their ids — and no other run's id, so a
profile can change one method's setting without retraining the rest. `in_every_run_id` keeps the three settings
that were hashed into every run before (`kl.form`, `mars.weight`, `d3d.weight`) where they were.
"""

from __future__ import annotations

import dataclasses
import keyword
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from mml import validation

_KINDS: dict[str, type] = {"int": int, "float": float, "str": str}
Settings = TypeVar("Settings", bound="MethodSettings")


@dataclass(frozen=True)
class MethodSettings:
    """Base of a family's settings: a subclass names its recipe table (`namespace`) and gives every field a default.
    A setting named by a Python keyword is a field with a trailing underscore (`lambda_` for `lambda`).

    Each value is type-checked (an int given for a float setting is stored as that float: one value, one run id) and
    must be non-negative (an int positive, unless listed in `zero_allowed`), one of its `choices`, and pass its
    `limits` (setting -> (test, requirement)).
    """

    namespace: ClassVar[str]
    choices: ClassVar[Mapping[str, Sequence[Any]]] = {}
    limits: ClassVar[Mapping[str, tuple[Callable[[Any], bool], str]]] = {}
    zero_allowed: ClassVar[frozenset[str]] = frozenset()
    in_every_run_id: ClassVar[bool] = False

    def __post_init__(self) -> None:
        for name in self.names():
            object.__setattr__(self, _field(name), self.checked(name, self.value(name)))

    @classmethod
    def names(cls) -> tuple[str, ...]:
        """The settings of this family, in declaration order."""
        return tuple(_setting(item.name) for item in dataclasses.fields(cls))

    @classmethod
    def from_values(cls: type[Settings], values: Mapping[str, Any]) -> Settings:
        """These settings with `values` (by setting name) instead of the defaults.

        Raises:
            InvalidValue: an unknown setting or a value its check refuses.
        """
        for name in values:
            validation.require(name in cls.names(), f"{cls.namespace}.{name}", cls._unknown())
        return cls(**{_field(name): value for name, value in values.items()})

    def replaced(self: Settings, values: Mapping[str, Any]) -> Settings:
        """These settings with `values` (by setting name) changed, checked as `from_values`."""
        return self.from_values({**{name: self.value(name) for name in self.names()}, **values})

    def value(self, name: str) -> Any:
        """The value of setting `name`."""
        return getattr(self, _field(name))

    @classmethod
    def _unknown(cls) -> str:
        return f"unknown setting of {cls.namespace} (known: {', '.join(cls.names())})"

    @classmethod
    def checked(cls, name: str, value: Any) -> Any:
        """`value` checked for setting `name` and normalised.

        Raises:
            InvalidValue: (keyed `<namespace>.<name>`) an unknown setting, a value of the wrong type, out of its
                range or not one of its choices.
        """
        key = f"{cls.namespace}.{name}"
        kinds = {_setting(item.name): _KINDS[str(item.type)] for item in dataclasses.fields(cls)}
        validation.require(name in kinds, key, cls._unknown())
        kind = kinds[name]
        value = validation.typed(key, value, kind)
        if name in cls.choices:
            return validation.one_of(key, value, cls.choices[name])
        if kind is not str:
            validation.positive(key, value, zero=kind is float or name in cls.zero_allowed)
        test, requirement = cls.limits.get(name, (lambda v: True, ""))
        validation.require(test(value), key, f"{requirement}, got {value!r}")
        return value

    def identity_items(self, read: Sequence[str]) -> dict[str, Any]:
        """The settings among `read` (all of them when `in_every_run_id`) as run-id recipe keys."""
        names = self.names() if self.in_every_run_id else read
        return {f"{self.namespace}_{name}": self.value(name) for name in names}


def _field(name: str) -> str:
    """The dataclass field of setting `name` (a keyword gets a trailing underscore)."""
    return f"{name}_" if keyword.iskeyword(name) else name


def _setting(field: str) -> str:
    """The setting name of dataclass field `field`."""
    bare = field.removesuffix("_")
    return bare if keyword.iskeyword(bare) else field
