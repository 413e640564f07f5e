"""Which SLURM job holds which run: one small JSON file per job key in the store (`slurm/<key>.json`, written
atomically), so that a second invocation adopts the jobs still queued or running instead of submitting them twice,
and counts the jobs that ended without their work.

A job key is a run id, or `prepare-<digest>` / `tables-<digest>` for an invocation's data and table jobs. Logs go to
`slurm/logs/<key>-<job id>.out`: one file per attempt, appended across requeues of that attempt.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

from mml.errors import MMLError
from mml.store import Store, write_json


@dataclass(frozen=True)
class Entry:
    """The last job submitted under a key, where it logs, and how many of the key's jobs ended without their work
    (`counted`: the last job counted among them, so that no job is counted twice)."""

    job: str
    log: str
    failures: int = 0
    counted: str = ""


class Ledger:
    """The job entries of a store."""

    def __init__(self, store: Store) -> None:
        self.folder = store.root / "slurm"

    def path(self, key: str) -> Path:
        return self.folder / f"{key}.json"

    def log(self, key: str, job: str = "%j") -> Path:
        """The log file of `key`'s job `job` (`%j`: sbatch's placeholder for the id it gives)."""
        return self.folder / "logs" / f"{key}-{job}.out"

    def read(self, key: str) -> Entry | None:
        path = self.path(key)
        if not path.is_file():
            return None
        try:
            return Entry(**json.loads(path.read_text()))
        except (ValueError, TypeError) as err:
            raise MMLError(f"{path}: not a job entry of mml ({err}); delete it to forget the job") from None

    def write(self, key: str, entry: Entry) -> None:
        write_json(self.path(key), asdict(entry))
