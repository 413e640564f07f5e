"""The `init` mini-language: every form parses to its tagged type and prints back to the same text, so the run
ids that hash these strings cannot change."""

import pytest

from mml.errors import InvalidValue
from mml.init_source import (
    Checkpoint,
    Imagenet,
    ImagenetFile,
    PretrainRun,
    Random,
    RunModel,
    parse_init,
    upstream,
)


@pytest.mark.parametrize(
    ("text", "source"),
    [
        ("random", Random()),
        ("imagenet", Imagenet()),
        ("imagenet:ResNet50_Weights.IMAGENET1K_V1", Imagenet("ResNet50_Weights.IMAGENET1K_V1")),
        ("imagenet:sha256:0123abcd", ImagenetFile("0123abcd")),
        ("imagenet:run:5f0c2e41a9b3d7e8/0", PretrainRun("5f0c2e41a9b3d7e8", 0)),
        ("run:rgb_a-2/1", RunModel("rgb_a-2", 1)),
        ("run:5f0c2e41a9b3d7e8/3", RunModel("5f0c2e41a9b3d7e8", 3)),
        ("checkpoint", Checkpoint()),
        ("checkpoint:sha256:ff00", Checkpoint("ff00")),
    ],
)
def test_every_form_round_trips(text: str, source: object) -> None:
    assert parse_init(text) == source
    assert str(source) == text


def test_upstream_names_the_run_a_model_starts_from() -> None:
    assert upstream(parse_init("run:abc/2")) == ("abc", 2)
    assert upstream(parse_init("imagenet:run:abc/0")) == ("abc", 0)
    assert [upstream(parse_init(text)) for text in ("random", "imagenet", "checkpoint:sha256:ff")] == [None] * 3


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Random",
        "imagenet:",
        "imagenet:sha256:",
        "imagenet:run:x",
        "run:x",
        "run:/0",
        "run:a/b",
        "run:a b/0",
        "checkpoint:",
        "checkpoint:x",
        "checkpoint:sha256:XYZ",
        "kinetics400",
    ],
)
def test_malformed_strings_are_refused_naming_the_key(text: str) -> None:
    with pytest.raises(InvalidValue, match=rf"^teacher: {text!r} is not random, imagenet"):
        parse_init(text, "teacher")


def test_a_spec_model_reads_its_init_through_the_type() -> None:
    from mml.spec import ModelSpec

    assert ModelSpec("RGB", "run:A/1").source == RunModel("A", 1)
    assert ModelSpec("RGB", "run:A/1").init_run == ("A", 1)
    assert ModelSpec("Flow", "imagenet").init_run is None
