"""Reading a profile of `reproductions/profiles.toml`: one scale at which tables are reproduced, inheriting the
values of another profile through `base = "<name>"`, with command-line overrides such as `recipe.epochs=1`."""

from __future__ import annotations

import dataclasses
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mml.errors import SpecError
from mml.methods import SETTINGS
from mml.spec.dataset import DATASET_KINDS, DatasetConfig, RawframesConfig
from mml.spec.reader import TomlReader, load_toml
from mml.spec.recipe import Recipe, check_recipe_value
from mml.spec.schema import DENSE_SPACINGS, IMAGENET_SOURCES, SPATIAL_CROPS, ImagenetSource, Profile, ViewProtocol


def _read_recipe(reader: TomlReader) -> Recipe:
    """A profile's recipe: every setting of `Recipe` (those with a default may be left out), checked by it, and the
    method families' settings from their tables (`gblend.warmup = 10` is table `gblend`, key `warmup`)."""
    with reader.reported():
        families = tuple(
            kind.from_values(reader.get(namespace, dict))
            for namespace, kind in SETTINGS.items()
            if namespace in reader.data
        )
        for key, value in reader.data.items():
            if key not in SETTINGS:
                check_recipe_value(key, value)  # an unknown key, a family's setting written the old way, is named
    general = TomlReader(reader.path, {k: v for k, v in reader.data.items() if k not in SETTINGS}, reader.prefix)
    return dataclasses.replace(general.config(Recipe), method_settings=families)


def read_views(views: TomlReader) -> ViewProtocol:
    """A test-view protocol (a profile's `views`, or a result cell's)."""
    protocol = ViewProtocol(
        dense=views.positive("dense", int, 0, zero=True),
        uniform=views.positive("uniform", int, 1, zero=True),
        uniform_offset=views.positive("uniform_offset", float, 0.5, zero=True),
        crops=views.get("crops", int, 1),
        crop_size=views.positive("crop_size", int, 0, zero=True),
        full_resolution=views.get("full_resolution", bool, False),
        dense_spacing=views.choice("dense_spacing", DENSE_SPACINGS, DENSE_SPACINGS[0]),
    )
    if protocol.full_resolution and protocol.crop_size:
        raise views.error("crop_size", "a full-resolution crop is the short side: give crop_size or full_resolution")
    if protocol.crops not in SPATIAL_CROPS:
        raise views.error("crops", f"must be 1 (centre crop) or 3 (crops along the longer side), got {protocol.crops}")
    if protocol.uniform_offset >= 1:
        raise views.error("uniform_offset", f"must be below 1 (a fraction of a segment), got {protocol.uniform_offset}")
    if protocol.dense + protocol.uniform < 1:
        raise views.error("uniform", "at least one test view is needed")
    views.finish()
    return protocol


def _read_dataset(dataset: TomlReader) -> DatasetConfig:
    kind = dataset.choice("kind", DATASET_KINDS)
    rawframes = dataset.sub("rawframes") if "rawframes" in dataset.data else None
    dataset.used.add("rawframes")
    with dataset.reported():
        config = DatasetConfig(
            kind=kind,
            synthetic=dict(dataset.get("synthetic", dict, {})),
            rawframes=None if rawframes is None else rawframes.config(RawframesConfig),
            frame_lists=dataset.get("frame_lists", bool, False),
        )
    dataset.finish()
    return config


def _read_profile(path: Path, name: str, reader: TomlReader) -> Profile:
    dataset = _read_dataset(reader.sub("dataset"))
    imagenet = reader.sub("imagenet")
    source = imagenet.choice("source", IMAGENET_SOURCES)
    image = ImagenetSource(
        source=source,
        epochs=imagenet.positive("epochs", int, 0, zero=source != "pretrain"),
        segments=imagenet.positive("segments", int, 1),
    )
    imagenet.finish()
    protocol = read_views(reader.sub("views", {}))
    seeds = reader.get("seeds", list, [0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise reader.error("seeds", f"expected a non-empty list of non-negative integers, got {seeds!r}")
    profile = Profile(
        name=name,
        description=reader.get("description", str, ""),
        dataset=dataset,
        arch=reader.get("arch", str),
        deep_arch=reader.get("deep_arch", str, None),
        deep_segments=reader.positive("deep_segments", int) if "deep_segments" in reader.data else None,
        recipe=_read_recipe(reader.sub("recipe")),
        imagenet=image,
        views=protocol,
        seeds=tuple(seeds),
    )
    if profile.views.crop_size > profile.recipe.short_side:
        raise reader.error(
            "views.crop_size", f"{profile.views.crop_size} exceeds the recipe's short_side {profile.recipe.short_side}"
        )
    profile = dataclasses.replace(
        profile,
        charades=_read_profile(path, f"{name}.charades", reader.sub("charades")) if "charades" in reader.data else None,
        long=_read_profile(path, f"{name}.long", _long_setup(reader)) if "long" in reader.data else None,
    )
    reader.finish()
    return profile


def _long_setup(reader: TomlReader) -> TomlReader:
    """The `long` section of a profile: the profile's sthv2 values (its setup sections aside) with the section's own
    on top, table by table, so that it need only say what differs (its dataset, mostly)."""
    section = reader.sub("long")
    own = {key: value for key, value in reader.data.items() if key not in ("charades", "long")}
    return TomlReader(section.path, _merged(own, section.data), section.prefix)


def load_profile(path: Path, name: str, overrides: Sequence[str] = ()) -> Profile:
    """Read profile `name` from a profiles TOML file, with `overrides` such as ``recipe.epochs=1`` (keys relative to
    the profile, values in TOML syntax, bare words taken as strings) applied before validation."""
    data = load_toml(path)
    if name not in data:
        raise SpecError(f"{path}: {name}: no such profile (known: {', '.join(sorted(data))})")
    data[name] = _inherited(path, data, name)
    for override in overrides:
        _apply_override(data[name], override, f"{path}: {name}")
    return _read_profile(path, name, TomlReader(path, data).sub(name))


def _inherited(path: Path, data: dict[str, Any], name: str, trail: tuple[str, ...] = ()) -> dict[str, Any]:
    """Profile `name` with the values of the profile its `base` key names underneath (recursively, tables merged
    key by key), so a profile can be another one with a few values changed."""
    profile = data[name]
    if not isinstance(profile, dict) or "base" not in profile:
        return profile
    base = profile["base"]
    if base not in data or base == name or base in trail:
        raise SpecError(f"{path}: {name}.base: {base!r} is not another profile of this file (or a cycle)")
    merged = _merged(_inherited(path, data, base, (*trail, name)), profile)
    del merged["base"]
    return merged


def _merged(base: dict[str, Any], changes: dict[str, Any]) -> dict[str, Any]:
    result = dict(base)
    for key, value in changes.items():
        both_tables = isinstance(value, dict) and isinstance(base.get(key), dict)
        result[key] = _merged(base[key], value) if both_tables else value
    return result


def _apply_override(profile: dict[str, Any], override: str, where: str) -> None:
    """Set one dotted `key=value` in a profile's TOML tables."""
    key, equals, text = override.partition("=")
    parts = key.strip().split(".")
    if not equals or not all(parts):
        raise SpecError(f"{where}: override {override!r} is not key=value (e.g. recipe.epochs=1)")
    try:
        value = tomllib.loads(f"value = {text.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = text.strip()
    table = profile
    for depth, part in enumerate(parts[:-1]):
        table = table.setdefault(part, {})
        if not isinstance(table, dict):
            raise SpecError(f"{where}: override {override!r}: {'.'.join(parts[: depth + 1])} is not a table")
    table[parts[-1]] = value
