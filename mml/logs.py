"""How the `mml` command reports: every module logs to `logging.getLogger(__name__)` (below the `mml` logger), and
`configure` sends those messages to the terminal in a plain format.

Information (what was planned, trained, written) goes to stdout as the bare message; warnings and errors go to
stderr as `mml: warning: ...` / `mml: error: ...`, one line each. Under torchrun every rank runs the same command,
so only rank 0 prints (the others print errors only). Progress bars are tqdm's, not log messages.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import warnings
from collections.abc import Iterator
from typing import TextIO

ROOT = "mml"


class _Terminal(logging.Handler):
    """Writes information to the current stdout and warnings / errors to the current stderr (looked up at each
    message, so a redirected or captured stream is honoured)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            if record.levelno < logging.WARNING:
                stream, text = sys.stdout, record.getMessage()
            else:
                stream, text = sys.stderr, f"mml: {record.levelname.lower()}: {record.getMessage()}"
            stream.write(text + "\n")
            stream.flush()
        except Exception:  # a broken stream must not end the run; logging's own report of it
            self.handleError(record)


class _RankFilter(logging.Filter):
    """Lets every message through on rank 0, and errors only on the other ranks of a torchrun job."""

    def __init__(self, rank: int) -> None:
        super().__init__()
        self.rank = rank

    def filter(self, record: logging.LogRecord) -> bool:
        return self.rank == 0 or record.levelno >= logging.ERROR


def torchrun_rank() -> int:
    """This process's rank as torchrun sets it in RANK (0 without torchrun)."""
    try:
        return int(os.environ.get("RANK", "0"))
    except ValueError:
        return 0


def configure(rank: int | None = None) -> None:
    """Send the `mml` loggers' messages to the terminal for a process of rank `rank` (default: torchrun's RANK).

    Calling it again replaces the earlier setup (the command may run several times in one process, as the tests do).
    """
    logger = logging.getLogger(ROOT)
    for handler in [h for h in logger.handlers if isinstance(h, _Terminal)]:
        logger.removeHandler(handler)
    handler = _Terminal()
    handler.addFilter(_RankFilter(torchrun_rank() if rank is None else rank))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: TextIO | None = None,
    line: str | None = None,
) -> None:
    """`warnings.showwarning` for the command: a warning (a skipped annotation, a skipped video) is logged as one
    line, without Python's source line."""
    logging.getLogger(ROOT).warning("%s", message)


@contextlib.contextmanager
def routed_warnings() -> Iterator[None]:
    """A block inside which every warning is logged each time it occurs, through `_show_warning`."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        warnings.showwarning = _show_warning
        yield
