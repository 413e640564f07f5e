"""Writing a generated (synthetic) dataset once: into a staging folder renamed into place, with a marker of the
generator's settings that later uses compare against, never overwriting other data. Shared by the generators of
`mml.data.synthetic` and `mml.data.synthetic_charades`."""

import json
from collections.abc import Callable
from pathlib import Path

from mml import validation
from mml.atomic import staging_folder
from mml.errors import DataError

MARKER_NAME = ".mml-synthetic.json"


def generate_into(root: Path, write: Callable[[Path], None]) -> None:
    """Run `write` into a staging folder (videos, annotations, then the marker) that becomes `root` with one rename
    (`mml.atomic.staging_folder`), so an interrupted generation never leaves a partial dataset under `root`. When
    another process generated the same dataset first, its copy stays and this one is dropped (the caller checks
    the marker).

    Raises:
        DataError: `root` already exists and is not an empty folder.
    """
    if _holds_data(root):
        raise DataError(f"{root}: already exists and is not empty; refusing to overwrite it")
    with staging_folder(root, replace=False) as staging:
        write(staging)


def check_frame_size(height: int, width: int) -> None:
    """Refuse a frame size a generator cannot draw: each side even and at least 32 pixels."""
    for name, value in (("height", height), ("width", width)):
        validation.require(value >= 32 and value % 2 == 0, name, f"must be even and >= 32, got {value}")


def ensure_generated(root: Path, expected: dict[str, int], generate: Callable[[], None]) -> Path:
    """Return `root` if it holds the synthetic dataset whose marker equals `expected`; call `generate` if `root` is
    absent or empty.

    Raises:
        DataError: `root` holds other data: no marker, an unreadable one, or one from different settings.
            Existing data is never deleted.
    """
    if not _holds_data(root):
        generate()
        return root
    marker = root / MARKER_NAME
    if not marker.is_file():
        raise DataError(f"{root}: exists without a {MARKER_NAME} marker, so it is not a generated synthetic dataset")
    try:
        found = json.loads(marker.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{marker}: unreadable synthetic dataset marker ({error})") from error
    if not isinstance(found, dict):
        raise DataError(f"{marker}: synthetic dataset marker is not a JSON object")
    differences = [
        f"{key}={found.get(key)!r} (wanted {expected.get(key)!r})"
        for key in sorted(expected.keys() | found.keys())
        if found.get(key) != expected.get(key)
    ]
    if differences:
        raise DataError(f"{root}: holds a synthetic dataset from other settings: {', '.join(differences)}")
    return root


def _holds_data(root: Path) -> bool:
    """Whether `root` exists as anything but an empty folder."""
    return root.exists() and not (root.is_dir() and not any(root.iterdir()))
