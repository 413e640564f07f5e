"""`mml reproduce table7 --profile micro` as a subprocess, for tests that kill, race or distribute runners."""

import os
import sys
from pathlib import Path

TESTS = Path(__file__).parent


def reproduce_command(specs: Path, root: Path, *extra: str) -> list[str]:
    """The command line of Table 7 on the micro profile, storing under `root/store`, writing under `root/tables`."""
    folders = ["--specs", str(specs), "--store", str(root / "store"), "--out", str(root / "tables")]
    return [sys.executable, "-m", "mml", "reproduce", "table7", "--profile", "micro", *folders, "--no-progress", *extra]


def environment() -> dict[str, str]:
    """This process's environment, with the checkout importable (the subprocess may start elsewhere)."""
    return {**os.environ, "PYTHONPATH": str(TESTS.parent)}
