"""Checks of configuration values, one style for the whole package.

A check returns the value it accepts or raises `InvalidValue(key, reason)`; a typed dataclass runs the checks of its
fields in `__post_init__`, and whoever reads the values from somewhere (a spec file, the command line) wraps the
construction in `reported_at(where)`, so the error names the file, the key and the reason on one line. This module
imports nothing from `mml` but its errors, so the spec readers and the data layer can both use it.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from mml.errors import InvalidValue, MMLError, SpecError


def typed(key: str, value: Any, kind: type | tuple[type, ...]) -> Any:
    """`value` if it is one of `kind`s: a bool is no int, and an int is taken as a float where a float is wanted
    (so `1` and `1.0` give one value, and one run id)."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise InvalidValue(key, f"expected {names}, got {type(value).__name__} {value!r}")
    return value


def one_of(key: str, value: Any, choices: Sequence[Any]) -> Any:
    """`value` if it is one of `choices`."""
    if value not in choices:
        raise InvalidValue(key, f"{value!r} is not one of {', '.join(str(choice) for choice in choices)}")
    return value


def positive(key: str, value: Any, *, zero: bool = False) -> Any:
    """`value` if it is above 0 (with `zero`, at least 0)."""
    if value < 0 or (value == 0 and not zero):
        raise InvalidValue(key, f"must be {'non-negative' if zero else 'positive'}, got {value!r}")
    return value


def within(key: str, value: Any, low: Any, high: Any) -> Any:
    """`value` if `low <= value <= high`."""
    if not low <= value <= high:
        raise InvalidValue(key, f"must be in {low}..{high}, got {value!r}")
    return value


def require(condition: bool, key: str, reason: str) -> None:
    """Refuse `key` with `reason` unless `condition` holds (for checks the helpers above do not cover)."""
    if not condition:
        raise InvalidValue(key, reason)


@contextlib.contextmanager
def reported_at(where: str, error: type[MMLError] = SpecError) -> Iterator[None]:
    """Turn an `InvalidValue` raised in the block into `error("{where}: {key}: {reason}")`."""
    try:
        yield
    except InvalidValue as invalid:
        raise error(f"{where}: {invalid}") from None
