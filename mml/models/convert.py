"""Checkpoints from elsewhere (released TSM models, the original TSM / MML code, torchvision) for our models.

Files are read without unpickling code and renamed to our layout (`mml.models.weight_files`); then every tensor of
the file must find its place in the model: nothing is dropped or filled in silently.
"""

from pathlib import Path

from torch import Tensor, nn

from mml.errors import CheckpointError
from mml.models.init import adapt_first_conv
from mml.models.weight_files import normalize_keys, read_state_dict

_FIRST_CONV = "conv1.weight"
_COUNTER = ".num_batches_tracked"
_SHOWN = 8


def _listing(items: list[str]) -> str:
    """Comma-separated items, truncated after a few with "and N more"."""
    more = f" and {len(items) - _SHOWN} more" if len(items) > _SHOWN else ""
    return ", ".join(items[:_SHOWN]) + more


def fit_checkpoint(path: Path, model: nn.Module) -> dict[str, Tensor]:
    """A checkpoint file's state dict in ``model``'s layout, ready for ``model.load_state_dict(..., strict=True)``.

    The first conv of a checkpoint of another modality (3 RGB / 10 Flow / 15 RGBDiff input channels) gets
    ``model``'s input channels by ``adapt_first_conv`` (mean over input channels, replicated), as the original
    ``--tune_from`` does. BN ``num_batches_tracked`` counters are taken from ``model`` only when the checkpoint has
    none at all (files from PyTorch < 0.4.1, as PyTorch itself does for them); otherwise every key of the model must
    come from the checkpoint and every tensor of the checkpoint must have the shape of the model's.

    Raises:
        CheckpointError: When the file cannot be read, or in one message listing its unknown keys, missing keys and
            shape mismatches against ``model``.
    """
    state = normalize_keys(read_state_dict(path), origin=str(path))
    target = model.state_dict()
    if _FIRST_CONV in state and _FIRST_CONV in target:
        have, want = state[_FIRST_CONV].shape, target[_FIRST_CONV].shape
        if len(have) == len(want) and have[1] != want[1] and (have[0], *have[2:]) == (want[0], *want[2:]):
            state[_FIRST_CONV] = adapt_first_conv(state[_FIRST_CONV], want[1])
    counters_absent = not any(key.endswith(_COUNTER) for key in state)
    unknown = [key for key in state if key not in target]
    missing = [key for key in target if key not in state and not (counters_absent and key.endswith(_COUNTER))]
    mismatch = [
        f"{key} {tuple(value.shape)} vs model {tuple(target[key].shape)}"
        for key, value in state.items()
        if key in target and value.shape != target[key].shape
    ]
    problems = [
        f"{what} {_listing(items)}"
        for what, items in (("unknown keys", unknown), ("missing keys", missing), ("shape mismatch", mismatch))
        if items
    ]
    if problems:
        raise CheckpointError(f"{path}: does not fit the {type(model).__name__} model: {'; '.join(problems)}")
    return {key: state.get(key, value) for key, value in target.items()}
