"""Reading weight files safely: ``.safetensors``, ``torch.save`` or Caffe2 ``.pkl`` files (never unpickling code),
unwrapped from checkpoint containers, with the original TSM / MML code's, PySlowFast's (``mml.models.slowfast_weights``)
and DataParallel's key names mapped to ours.

The original code saves ``torch.save({'epoch', 'arch', 'state_dict', 'best_prec1'})`` with DataParallel's
``module.`` prefix, the backbone under ``base_model.``, a ``.net`` path component where TSM's ``TemporalShift``
wraps a conv, and the classifier as ``new_fc``. Our TSM ResNet keeps torchvision's names and shifts inside the
block, so those layouts reduce to ours by renaming alone.
"""

import pickle
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import Tensor

from mml.errors import CheckpointError
from mml.models.slowfast_weights import read_caffe2, slowfast_key

# Keys under which checkpoint containers keep the state dict (the original TSM code uses "state_dict").
_CONTAINER_KEYS = ("state_dict", "model", "model_state", "module")


def _reason(error: Exception) -> str:
    """The informative line of an exception's message (torch's weights-only errors span many lines)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    detail = [line for line in lines if "unsupported" in line.lower()]
    return (detail or lines or [type(error).__name__])[0]


def read_state_dict(path: Path) -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` or ``torch.save`` file, unwrapped from a checkpoint container, or of a
    Caffe2 ``.pkl`` file of PySlowFast's model zoo (already under our names, see ``slowfast_weights.read_caffe2``).

    ``torch.save`` files are read with ``weights_only=True``, so a pickle that would run code or build arbitrary
    objects is refused rather than executed. A container dict (``state_dict``, ``model``, ``model_state`` or
    ``module`` holding a dict, possibly nested) is unwrapped; its other entries (epoch, arch, best_prec1,
    optimiser state) are metadata and ignored. The state dict itself must map names to tensors only.

    Raises:
        CheckpointError: For a missing, unreadable or refused file, or one that holds no state dict of tensors.
    """
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".pkl" and not zipfile.is_zipfile(path):
        return read_caffe2(path)
    try:
        loaded: Any = (
            load_file(path)
            if path.suffix == ".safetensors"
            else torch.load(path, map_location="cpu", weights_only=True)
        )
    except pickle.UnpicklingError as e:
        raise CheckpointError(f"{path}: refused: the weights-only unpickler rejects it ({_reason(e)})") from e
    except Exception as e:  # a corrupt file fails anywhere inside the zip / pickle / safetensors readers
        raise CheckpointError(f"{path}: cannot read weights: {type(e).__name__}: {_reason(e)}") from e
    while isinstance(loaded, Mapping):
        inner = next((loaded[k] for k in _CONTAINER_KEYS if isinstance(loaded.get(k), Mapping)), None)
        if inner is None:
            break
        loaded = inner
    if not isinstance(loaded, Mapping) or not any(isinstance(v, Tensor) for v in loaded.values()):
        raise CheckpointError(f"{path}: holds no tensors (a {type(loaded).__name__}, not a state dict)")
    for key, value in loaded.items():
        if not isinstance(key, str) or not isinstance(value, Tensor):
            raise CheckpointError(f"{path}: entry {key!r} of the state dict is a {type(value).__name__}, not a tensor")
    return dict(loaded)


def _our_key(key: str) -> str:
    """One key of the original TSM / PySlowFast / DataParallel layout in ours (already-ours keys are unchanged)."""
    while key.startswith("module."):
        key = key.removeprefix("module.")
    if slowfast := slowfast_key(key):
        return slowfast
    parts = [part for part in key.removeprefix("base_model.").split(".") if part != "net"]
    if parts[0] == "new_fc":
        parts[0] = "fc"
    return ".".join(parts)


def normalize_keys(state: Mapping[str, Tensor], *, origin: str = "state dict") -> dict[str, Tensor]:
    """Rename a state dict of the original TSM / MML layout (or PySlowFast's, DataParallel's) to our key names.

    Strips leading ``module.`` (repeated for nested wrappers) and ``base_model.``, removes the ``net`` path
    component of TSM's ``TemporalShift`` wrapper and renames ``new_fc.`` to ``fc.``:
    ``module.base_model.layer1.0.conv1.net.weight`` -> ``layer1.0.conv1.weight``, ``module.new_fc.bias`` ->
    ``fc.bias``; PySlowFast's I3D keys get our names (``s2.pathway0_res0.branch2.a.weight`` ->
    ``layer1.0.conv1.weight``). Keys already in our layout are kept as they are.

    Raises:
        CheckpointError: When two keys map to the same name (one would otherwise be dropped).
    """
    renamed: dict[str, Tensor] = {}
    source: dict[str, str] = {}
    for key, value in state.items():
        new = _our_key(key)
        if new in renamed:
            raise CheckpointError(f"{origin}: keys {source[new]} and {key} both map to {new}")
        renamed[new], source[new] = value, key
    return renamed
