"""Packages of mml; the rest of the metadata is in pyproject.toml.

The specs stay in the top-level `reproductions/` folder, where users edit them, and install as package data
`mml.reproductions`, so that a non-editable install finds them (`mml.cli.default_specs`).
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["mml", "mml.*"]), "mml.reproductions"],
    package_dir={"mml.reproductions": "reproductions"},
)
