"""The one style of value checks: `InvalidValue(key, reason)`, placed by the reader that knows the file."""

import pytest

from mml import validation
from mml.errors import DataError, InvalidValue, MMLError, SpecError


def test_typed_takes_an_int_as_a_float_but_no_bool_as_an_int() -> None:
    assert validation.typed("lr", 1, float) == 1.0 and type(validation.typed("lr", 1, float)) is float
    assert validation.typed("epochs", 3, int) == 3
    with pytest.raises(InvalidValue, match=r"^epochs: expected int, got bool True$"):
        validation.typed("epochs", True, int)
    with pytest.raises(InvalidValue, match=r"^lr: expected float, got str '0.1'$"):
        validation.typed("lr", "0.1", float)


def test_range_and_choice_checks_name_key_and_value() -> None:
    assert validation.positive("seed", 0, zero=True) == 0
    with pytest.raises(InvalidValue, match=r"^batch: must be positive, got 0$"):
        validation.positive("batch", 0)
    with pytest.raises(InvalidValue, match=r"^fps: must be non-negative, got -1$"):
        validation.positive("fps", -1, zero=True)
    with pytest.raises(InvalidValue, match=r"^percent: must be in 0..100, got 101$"):
        validation.within("percent", 101, 0, 100)
    with pytest.raises(InvalidValue, match=r"^kind: 'x' is not one of a, b$"):
        validation.one_of("kind", "x", ("a", "b"))


def test_reported_at_puts_the_place_in_front_on_one_line() -> None:
    with pytest.raises(SpecError, match=r"^profiles.toml: smoke.recipe: lr: expected float, got str 'x'$"):
        with validation.reported_at("profiles.toml: smoke.recipe"):
            validation.typed("lr", "x", float)
    with pytest.raises(DataError, match=r"^dataset.synthetic: fps: must be positive, got 0$"):
        with validation.reported_at("dataset.synthetic", DataError):
            validation.positive("fps", 0)


def test_an_invalid_value_is_an_mml_error_and_a_value_error() -> None:
    error = InvalidValue("key", "reason")
    assert isinstance(error, MMLError) and isinstance(error, ValueError)
    assert (str(error), error.key, error.reason) == ("key: reason", "key", "reason")
