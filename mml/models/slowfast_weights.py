"""PySlowFast's checkpoints for our I3D: its PyTorch files (`.pyth`) and the Caffe2 files of its model zoo (`.pkl`,
e.g. the Kinetics-400 `I3D_8x8_R50.pkl` that PySlowFast's Charades configs start from), renamed to our key names.

PySlowFast names an I3D ResNet `s1.pathway0_stem.{conv,bn}`, `s<n>.pathway0_res<j>.branch1` (+ `branch1_bn`,
the projection shortcut) and `.branch2.{a,b,c}` (+ `_bn`), `head.projection`; its Caffe2 files name the same
tensors `conv1_w`, `res_conv1_bn_{s,b,rm,riv}`, `res<n>_<j>_branch1_w`, `res<n>_<j>_branch2<a|b|c>_bn_s`,
`pred_w` ... Ours follow torchvision's ResNet (`mml.models.i3d`): stage n is `layer<n-1>`.

A Caffe2 file is a pickle of numpy arrays (`{"blobs": {...}}`, written by Python 2). It is read by an unpickler
that can build nothing but numpy arrays, so a file that would run code is refused, as `torch.load(weights_only=True)`
refuses one. Caffe2 video models take BGR frames (PySlowFast's Charades config sets `REVERSE_INPUT_CHANNEL: True`
for them); ours take RGB, so the stem conv's input channels are reversed on reading.
"""

import pickle
import re
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from mml.errors import CheckpointError

try:
    from numpy._core import multiarray  # numpy >= 2
except ImportError:  # pragma: no cover - numpy 1
    from numpy.core import multiarray  # type: ignore[no-redef]

_BN = {"s": "weight", "b": "bias", "rm": "running_mean", "riv": "running_var"}
_PARAM = {"w": "weight", "b": "bias"}
_BRANCH2 = {"a": 1, "b": 2, "c": 3}
_OPTIMIZER_BLOBS = ("momentum", "lr", "model_iter")  # Caffe2 training state, not weights (as PySlowFast skips them)


def _latin1_bytes(text: str, encoding: str) -> bytes:
    """`_codecs.encode` as Python 3 pickles of bytes use it (protocol 2), for latin-1 only."""
    if encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError(f"_codecs.encode with encoding {encoding!r}")
    return text.encode(encoding)


# The only globals a pickle of numpy arrays needs (module names as numpy 1 and 2 write them).
_NUMPY_GLOBALS = {
    (module, name): getattr(multiarray, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("collections", "OrderedDict"): OrderedDict,
    ("_codecs", "encode"): _latin1_bytes,
}


def slowfast_key(key: str) -> str | None:
    """Our name of a PySlowFast I3D key (`s3.pathway0_res1.branch2.b_bn.weight` -> `layer2.1.bn2.weight`), or
    None for a key of another layout."""
    if match := re.fullmatch(r"s1\.pathway0_stem\.(conv|bn)\.(\w+)", key):
        return f"{'conv1' if match[1] == 'conv' else 'bn1'}.{match[2]}"
    if match := re.fullmatch(r"s(\d)\.pathway0_res(\d+)\.branch1(_bn)?\.(\w+)", key):
        return f"layer{int(match[1]) - 1}.{match[2]}.downsample.{1 if match[3] else 0}.{match[4]}"
    if match := re.fullmatch(r"s(\d)\.pathway0_res(\d+)\.branch2\.([abc])(_bn)?\.(\w+)", key):
        kind = "bn" if match[4] else "conv"
        return f"layer{int(match[1]) - 1}.{match[2]}.{kind}{_BRANCH2[match[3]]}.{match[5]}"
    if match := re.fullmatch(r"head\.projection\.(\w+)", key):
        return f"fc.{match[1]}"
    return None


def caffe2_key(blob: str) -> str | None:
    """Our name of a Caffe2 I3D blob (`res3_1_branch2b_bn_s` -> `layer2.1.bn2.weight`), or None for another blob."""
    if blob == "conv1_w":
        return "conv1.weight"
    if match := re.fullmatch(r"res_conv1_bn_(s|b|rm|riv)", blob):
        return f"bn1.{_BN[match[1]]}"
    if match := re.fullmatch(r"res(\d)_(\d+)_branch1_(w|bn_s|bn_b|bn_rm|bn_riv)", blob):
        part = match[3]
        name = f"1.{_BN[part[3:]]}" if part.startswith("bn_") else f"0.{_PARAM[part]}"
        return f"layer{int(match[1]) - 1}.{match[2]}.downsample.{name}"
    if match := re.fullmatch(r"res(\d)_(\d+)_branch2([abc])_(w|bn_s|bn_b|bn_rm|bn_riv)", blob):
        part, index = match[4], _BRANCH2[match[3]]
        name = f"bn{index}.{_BN[part[3:]]}" if part.startswith("bn_") else f"conv{index}.{_PARAM[part]}"
        return f"layer{int(match[1]) - 1}.{match[2]}.{name}"
    if match := re.fullmatch(r"pred_(w|b)", blob):
        return f"fc.{_PARAM[match[1]]}"
    return None


class _NumpyUnpickler(pickle.Unpickler):
    """Builds numpy arrays and plain containers, and refuses every other global."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _NUMPY_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not a numpy array type")
        return _NUMPY_GLOBALS[(module, name)]


def read_caffe2(path: Path) -> dict[str, Tensor]:
    """The weights of a Caffe2 checkpoint (a pickle of `{"blobs": {name: array}}`) under our I3D key names.

    Optimiser blobs (momentum, lr, model_iter) are left out; a blob of any other unknown name is refused, so nothing
    is dropped silently. The stem conv's input channels are reversed, from Caffe2's BGR to our RGB.

    Raises:
        CheckpointError: For an unreadable or refused file, one without blobs, or an unknown blob.
    """
    try:
        with open(path, "rb") as handle:
            loaded = _NumpyUnpickler(handle, encoding="latin1").load()
    except FileNotFoundError:
        raise CheckpointError(f"{path}: no such file") from None
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{path}: refused or unreadable as a Caffe2 checkpoint: {e}") from e
    blobs = loaded.get("blobs") if isinstance(loaded, dict) else None
    if not isinstance(blobs, dict):
        raise CheckpointError(f"{path}: not a Caffe2 checkpoint (no 'blobs' dict)")
    state = {}
    for blob, value in blobs.items():
        if any(part in blob for part in _OPTIMIZER_BLOBS):
            continue
        key = caffe2_key(blob)
        if key is None or not isinstance(value, np.ndarray):
            raise CheckpointError(f"{path}: blob {blob!r} is not a weight of an I3D ResNet")
        state[key] = torch.from_numpy(np.ascontiguousarray(value))
    if state.get("conv1.weight") is not None and state["conv1.weight"].shape[1] == 3:
        state["conv1.weight"] = state["conv1.weight"].flip(1).contiguous()
    return state
