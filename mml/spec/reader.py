"""Typed access to the tables of a TOML file: every error names the file, the key and the reason on one line."""

from __future__ import annotations

import contextlib
import dataclasses
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mml import validation
from mml.errors import InvalidValue, SpecError


def load_toml(path: Path) -> dict[str, Any]:
    """The content of a TOML file, or a one-line `SpecError` naming it."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise SpecError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as err:
        raise SpecError(f"{path}: invalid TOML: {err}") from None


class TomlReader:
    """One TOML table of `path` at dotted `prefix`: typed getters that report `file: prefix.key: reason` and
    remember which keys were read, so `finish` can reject the unknown ones."""

    def __init__(self, path: Path, data: dict[str, Any], prefix: str = "") -> None:
        self.path, self.data, self.prefix, self.used = path, data, prefix, set[str]()

    def error(self, key: str, reason: str) -> SpecError:
        return SpecError(f"{self.path}: {self.prefix}{key}: {reason}")

    @contextlib.contextmanager
    def reported(self) -> Iterator[None]:
        """Report an `InvalidValue` raised in the block (by a dataclass checking itself) at this table's keys."""
        try:
            yield
        except InvalidValue as invalid:
            raise self.error(invalid.key, invalid.reason) from None

    def get(self, key: str, kind: type | tuple[type, ...], default: Any = dataclasses.MISSING) -> Any:
        self.used.add(key)
        if key not in self.data:
            if default is dataclasses.MISSING:
                raise self.error(key, "missing")
            return default
        with self.reported():
            return validation.typed(key, self.data[key], kind)

    def choice(self, key: str, choices: tuple[str, ...], default: Any = dataclasses.MISSING) -> str:
        value = self.get(key, str, default)
        with self.reported():
            return validation.one_of(key, value, choices)

    def positive(self, key: str, kind: type = int, default: Any = dataclasses.MISSING, zero: bool = False) -> Any:
        value = self.get(key, kind, default)
        with self.reported():
            return validation.positive(key, value, zero=zero)

    def sub(self, key: str, default: Any = dataclasses.MISSING) -> TomlReader:
        return TomlReader(self.path, self.get(key, dict, default), f"{self.prefix}{key}.")

    def config(self, kind: type) -> Any:
        """This table as dataclass `kind` (which checks its own values): every required field present, no
        unknown key."""
        fields = {item.name: item for item in dataclasses.fields(kind)}
        for name, item in fields.items():
            if item.default is dataclasses.MISSING and item.default_factory is dataclasses.MISSING:
                self.get(name, object)
        self.used |= set(fields)
        self.finish()
        with self.reported():
            return kind(**self.data)

    def finish(self) -> None:
        unknown = sorted(set(self.data) - self.used)
        if unknown:
            raise self.error(unknown[0], "unknown key")
