"""Where a model's weights start from: one tagged type for the `init` strings of table specs and run configs.

A table spec names `random`, `imagenet` (the profile says which weights) or `run:<run name>/<model index>`; a run
config, whose `init` enters its run id, names the resolved source: `random`, `imagenet:<torchvision weights>`,
`imagenet:sha256:<file sha256>`, `imagenet:run:<run id>/0` (the synthetic pretraining stand-in for ImageNet),
`run:<run id>/<model index>` or `checkpoint:sha256:<file sha256>` (a run loaded from a weight file; a spec run so
loaded has `checkpoint`). `parse_init` reads any of them and `str()` writes exactly the same text back, so the
run ids that hash these strings do not depend on this type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from mml.errors import InvalidValue

RUN_NAME = r"[A-Za-z0-9_\-]+"  # spec run names and run ids alike
_REFERENCE = re.compile(rf"(?P<run>{RUN_NAME})/(?P<model>\d+)")
_SHA256 = re.compile(r"sha256:(?P<sha>[0-9a-f]+)")
_WEIGHTS = re.compile(r"[^:\s]+")


@dataclass(frozen=True)
class Random:
    """Fresh random weights."""

    def __str__(self) -> str:
        return "random"


@dataclass(frozen=True)
class Imagenet:
    """ImageNet weights: torchvision's `weights` (e.g. `ResNet50_Weights.IMAGENET1K_V1`), or none named in a table
    spec, whose profile resolves them."""

    weights: str = ""

    def __str__(self) -> str:
        return f"imagenet:{self.weights}" if self.weights else "imagenet"


@dataclass(frozen=True)
class ImagenetFile:
    """ImageNet weights from the user's weight file with this sha256."""

    sha256: str

    def __str__(self) -> str:
        return f"imagenet:sha256:{self.sha256}"


@dataclass(frozen=True)
class PretrainRun:
    """The synthetic pretraining run that stands in for ImageNet: its model `model` (always 0), fc left out."""

    run: str
    model: int = 0

    def __str__(self) -> str:
        return f"imagenet:run:{self.run}/{self.model}"


@dataclass(frozen=True)
class RunModel:
    """Model `model` of another run (a spec run's name, or a run id), fc included."""

    run: str
    model: int

    def __str__(self) -> str:
        return f"run:{self.run}/{self.model}"


@dataclass(frozen=True)
class Checkpoint:
    """Loaded from a weight file instead of trained: the file's sha256 in a run config, none in a table spec."""

    sha256: str = ""

    def __str__(self) -> str:
        return f"checkpoint:sha256:{self.sha256}" if self.sha256 else "checkpoint"


InitSource = Random | Imagenet | ImagenetFile | PretrainRun | RunModel | Checkpoint


def parse_init(text: str, key: str = "init") -> InitSource:
    """The source an `init` string names; `str()` of the result is `text` again.

    Raises:
        InvalidValue: `text` is none of the forms of the module docstring (`key` names it in the message).
    """
    head, _, rest = text.partition(":")
    sha, reference = _SHA256.fullmatch(rest), _REFERENCE.fullmatch(rest.removeprefix("run:"))
    source: InitSource | None = None
    if text == "random":
        source = Random()
    elif text == "imagenet":
        source = Imagenet()
    elif text == "checkpoint":
        source = Checkpoint()
    elif head == "imagenet" and rest.startswith("run:") and reference:
        source = PretrainRun(reference["run"], int(reference["model"]))
    elif head == "imagenet" and sha:
        source = ImagenetFile(sha["sha"])
    elif head == "imagenet" and _WEIGHTS.fullmatch(rest) and not rest.startswith(("run:", "sha256:")):
        source = Imagenet(rest)
    elif head == "run" and reference and not rest.startswith("run:"):
        source = RunModel(reference["run"], int(reference["model"]))
    elif head == "checkpoint" and sha:
        source = Checkpoint(sha["sha"])
    if source is None or str(source) != text:
        raise InvalidValue(key, f"{text!r} is not random, imagenet[:...], run:<run>/<model index> or checkpoint[:...]")
    return source


def upstream(source: InitSource) -> tuple[str, int] | None:
    """(run, model index) of the run whose model `source` starts from, or None."""
    return (source.run, source.model) if isinstance(source, RunModel | PretrainRun) else None


class InitialisedFrom:
    """Base of the dataclasses with an `init` string (a spec's model, a run config's model): its parsed source and
    the (run, model index) it starts from. It adds no dataclass field, so run ids do not see it."""

    init: str

    @property
    def source(self) -> InitSource:
        """`init` as its tagged type."""
        return parse_init(self.init)

    @property
    def init_run(self) -> tuple[str, int] | None:
        """(run, model index) of the run this model starts from (a spec run's name or a run id), else None."""
        return upstream(self.source)
