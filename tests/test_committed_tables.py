"""Every committed table was written by the committed code: its footnote names the current code version (package
version and training semantics), so that bumping `SEMANTICS` (or the version) without regenerating the tables fails
here. Tables are regenerated with the command their footnote records."""

import re
from pathlib import Path

from mml.store import code_version

TABLES = Path(__file__).parent.parent / "tables"
CODE_VERSION = re.compile(r"Code version: (mml \S+, training semantics \d+)\.")


def test_every_committed_table_names_the_current_code_version() -> None:
    files = sorted(path for pattern in ("*/*.md", "*/*.tex") for path in TABLES.glob(pattern))
    assert files, f"{TABLES}: no committed tables"
    stale = {}
    for path in files:
        versions = set(CODE_VERSION.findall(path.read_text()))
        if versions != {code_version()}:
            stale[str(path.relative_to(TABLES.parent))] = sorted(versions) or ["no code version"]
    assert not stale, (
        f"tables not written by this code ({code_version()}): regenerate them with the command in their footnotes\n"
        + "\n".join(f"{name}: {', '.join(versions)}" for name, versions in stale.items())
    )
