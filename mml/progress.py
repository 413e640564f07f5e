"""Progress of a run in training, epoch by epoch, where it can be watched without the progress bars.

Under `--devices` and on SLURM the bars are off, and a run could train for hours without a word. After each epoch the
process that writes the store reports it four ways, all in the run's partial folder (they move into `runs/<id>/` when
the run finishes): one log line (`mml.logs` prints it, in `--devices` workers too), the same line appended to
`train.log` (a resumed run continues it), `progress.json` (the latest epoch, lr, speed and ETA, for a status view)
and TensorBoard event files under `tensorboard/` (loss per term, lr, clips/s by epoch; needs the `tensorboard`
extra). The ETA is the epochs left times the mean epoch time of this attempt: after a resume it counts from the
resume, as mmengine's does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from mml.store import write_json

if TYPE_CHECKING:
    from torch.utils.tensorboard import SummaryWriter

logger = logging.getLogger(__name__)

LOG_FILE = "train.log"
PROGRESS_FILE = "progress.json"
TENSORBOARD_DIR = "tensorboard"


def duration(seconds: float) -> str:
    """`h:mm:ss` of a number of seconds, rounded to the second."""
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


class EpochReporter:
    """Reports each finished epoch of run `run_id` (of `epochs`) trained in `folder`, this attempt having started
    after `resumed_from` epochs. A context manager: leaving it closes the TensorBoard event file.

    Nothing is written until the first `report`, so a process that never reports (a torchrun rank that does not
    write the store) leaves no trace. `clock` gives the unix time of `started` and `updated` in progress.json.
    """

    def __init__(
        self, folder: Path, run_id: str, epochs: int, resumed_from: int, clock: Callable[[], float] = time.time
    ) -> None:
        if not 0 <= resumed_from <= epochs:
            raise ValueError(f"EpochReporter: resumed after {resumed_from} of {epochs} epochs")
        self.folder = folder
        self.run_id = run_id
        self.epochs = epochs
        self.resumed_from = resumed_from
        self.clock = clock
        self.started = clock()
        self._seconds = 0.0  # the time of the epochs reported so far
        self._reported = 0
        self._writer: SummaryWriter | None = None
        self._tensorboard_tried = False

    def __enter__(self) -> EpochReporter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def report(self, epoch: int, losses: Sequence[float], lr: float, clips: int, seconds: float) -> None:
        """Report epoch `epoch` (1-based) that trained `clips` clips in `seconds` at `lr` with mean `losses` (one per
        loss term)."""
        if not self.resumed_from < epoch <= self.epochs or seconds <= 0:
            raise ValueError(f"EpochReporter: epoch {epoch} of {self.epochs} after {self.resumed_from} in {seconds} s")
        self._seconds += seconds
        self._reported += 1
        eta = (self.epochs - epoch) * self._seconds / self._reported
        speed = clips / seconds
        line = (
            f"{self.run_id} epoch {epoch}/{self.epochs}: loss {' '.join(f'{loss:.4f}' for loss in losses)}, "
            f"lr {lr:.4g}, {speed:.1f} clips/s, ETA {duration(eta)}"
        )
        logger.info(line)
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / LOG_FILE, "a") as log:
            log.write(line + "\n")
        progress = {"epoch": epoch, "epochs": self.epochs, "loss": [float(loss) for loss in losses], "lr": lr}
        progress |= {"clips_per_s": speed, "eta_s": eta, "updated": self.clock(), "started": self.started}
        write_json(self.folder / PROGRESS_FILE, progress)
        writer = self._tensorboard()
        if writer is not None:
            for term, loss in enumerate(losses):
                writer.add_scalar(f"loss/{term}", loss, epoch)
            writer.add_scalar("lr", lr, epoch)
            writer.add_scalar("clips_per_s", speed, epoch)
            writer.flush()  # an epoch's events are on disk before the next can be checkpointed and resumed from

    def close(self) -> None:
        """Close the TensorBoard event file, if one was opened."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _tensorboard(self) -> SummaryWriter | None:
        """The run's event file writer, opened on first use; None (said once) without the tensorboard package.

        Steps are epochs (1-based); `purge_step` drops any events an earlier attempt wrote past its last checkpoint,
        so a resumed run's curves have each step once."""
        if self._writer is None and not self._tensorboard_tried:
            self._tensorboard_tried = True
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                logger.info(f"{self.run_id}: no TensorBoard event files: they need `pip install mml[tensorboard]`")
                return None
            folder = self.folder / TENSORBOARD_DIR
            self._writer = SummaryWriter(log_dir=str(folder), purge_step=self.resumed_from + 1)
        return self._writer
