"""Weight initialisation and transfer between modalities (paper §2.1) and TSM's optimiser parameter groups.

A model of any modality starts from ImageNet or from another trained model; only the first convolution's input
channels differ between modalities, and they are re-derived by averaging the source filters over their input
channels (the paper's pseudocode, TSN's ``_construct_{flow,diff,rgb}_model``).
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torchvision
from torch import Tensor, nn

from mml.errors import CheckpointError
from mml.models.tsm import arch_spec
from mml.models.weight_files import normalize_keys, read_state_dict

_SHOWN_KEYS = 8


def adapt_first_conv(weight: Tensor, in_channels: int) -> Tensor:
    """Give a first-conv weight ``in_channels`` input channels, each the mean of the source's input filters.

    Not rescaled (unlike timm's ``adapt_input_conv``): every new channel gets the plain mean filter, as in the
    paper's ``W_new[:, i] = (W[:, 1] + W[:, 2] + W[:, 3]) / 3`` and TSN's code, for any source channel count.

    Args:
        weight: Source weight ``(C_out, C_src, k, k)``, or ``(C_out, C_src, t, k, k)`` for an inflated 3D conv.
        in_channels: Input channels of the new weight.

    Returns:
        A new tensor with ``in_channels`` input channels; a copy of ``weight`` when the counts already match.
    """
    if weight.ndim not in (4, 5) or in_channels < 1:
        shape = tuple(weight.shape)
        raise ValueError(f"adapt_first_conv: need a 4-d or 5-d weight and in_channels >= 1, got {shape}, {in_channels}")
    if weight.shape[1] == in_channels:
        return weight.clone()
    return weight.mean(dim=1, keepdim=True).expand(-1, in_channels, *weight.shape[2:]).contiguous()


def _names(keys: list[str]) -> str:
    """A short listing of key names, truncated after a few."""
    more = f" ... (+{len(keys) - _SHOWN_KEYS} more)" if len(keys) > _SHOWN_KEYS else ""
    return ", ".join(keys[:_SHOWN_KEYS]) + more


def transfer_weights(model: nn.Module, source: Mapping[str, Tensor], *, keep_fc: bool, origin: str) -> None:
    """Load another model's weights into ``model``, adapting the first conv to ``model``'s input channels.

    ``source`` is a state dict of one of our models (any modality) or of torchvision's ResNet. ``conv1.weight`` is
    re-derived with ``adapt_first_conv`` when only its input channel count differs; ``fc.*`` is dropped when
    ``keep_fc`` is False or the source has a different class count, leaving ``model``'s fresh fc. Every other key
    must match: nothing else is dropped or filled in, except BN ``num_batches_tracked`` counters a source may lack.

    Args:
        model: The model to load into, in place.
        source: The weights to load.
        keep_fc: Whether to load the source's classifier when its class count matches.
        origin: Where ``source`` came from (a file path or run id), for error messages.

    Raises:
        CheckpointError: On unexpected or missing keys, or a tensor whose shape differs from the model's.
    """
    target = model.state_dict()
    src = dict(source)
    for key, value in src.items():
        if not isinstance(value, Tensor):
            raise CheckpointError(f"{origin}: entry {key!r} is a {type(value).__name__}, not a tensor")
    src_classes, own_classes = src.get("fc.weight"), target.get("fc.weight")
    differ = src_classes is not None and own_classes is not None and src_classes.shape[0] != own_classes.shape[0]
    if not keep_fc or differ:
        src = {k: v for k, v in src.items() if not k.startswith("fc.")}
    if "conv1.weight" in src and "conv1.weight" in target:
        have, want = src["conv1.weight"].shape, target["conv1.weight"].shape
        if len(have) == len(want) in (4, 5) and have[1] != want[1] and (have[0], *have[2:]) == (want[0], *want[2:]):
            src["conv1.weight"] = adapt_first_conv(src["conv1.weight"], want[1])
    unexpected = sorted(set(src) - set(target))
    if unexpected:
        raise CheckpointError(f"{origin}: {len(unexpected)} unexpected key(s): {_names(unexpected)}")
    missing = [k for k in target if k not in src and not k.startswith("fc.") and not k.endswith("num_batches_tracked")]
    if missing:
        raise CheckpointError(f"{origin}: {len(missing)} missing key(s): {_names(missing)}")
    for key, value in src.items():
        if value.shape != target[key].shape:
            raise CheckpointError(
                f"{origin}: tensor {key!r} has shape {tuple(value.shape)} in the checkpoint but "
                f"{tuple(target[key].shape)} in the model"
            )
    model.load_state_dict({**target, **src}, strict=True)


def imagenet_state_dict(arch: str, path: Path | None = None) -> dict[str, Tensor]:
    """ImageNet weights for an arch, in torchvision ResNet layout, on the CPU.

    Args:
        arch: A key of ``mml.models.tsm.ARCHS``.
        path: A local weight file to read instead of torchvision's download (also how an arch without
            torchvision weights, such as ``tsm_tiny``, gets a pretrained init).

    Raises:
        ValueError: For an unknown arch, or one without ImageNet weights when no path is given.
        CheckpointError: When the file cannot be read or the download fails.
    """
    spec = arch_spec(arch)
    if path is not None:
        return normalize_keys(read_state_dict(Path(path)), origin=str(path))
    if spec.imagenet is None:
        raise ValueError(f"arch {arch!r} has no torchvision ImageNet weights; pass a weight file")
    weights = torchvision.models.get_weight(spec.imagenet)
    try:
        return weights.get_state_dict(progress=True)
    except OSError as e:
        raise CheckpointError(f"{weights.url}: cannot download {spec.imagenet}: {e}") from e


NEW_FC_LR_MULT = 5  # how much faster a new classifier's weights learn than the backbone (TSM's fine-tuning policy)


def param_groups(model: nn.Module, *, fc_lr5: bool) -> list[dict[str, Any]]:
    """SGD parameter groups of TSM's ``get_optim_policies`` without partial BN (the sthv2 recipe's ``--npb``).

    Each group has ``params``, ``lr_mult``, ``decay_mult`` and ``name``; every parameter is in exactly one group and
    empty groups are left out. With ``fc_lr5`` (training from ImageNet) fc learns 5x (weight) / 10x (bias) faster.

    Raises:
        ValueError: For a module with parameters of a kind TSM does not group.
    """
    groups: dict[str, tuple[list[nn.Parameter], float, float]] = {
        name: ([], lr_mult, decay_mult)
        for name, lr_mult, decay_mult in (
            ("first_conv_weight", 1, 1),
            ("first_conv_bias", 2, 0),
            ("normal_weight", 1, 1),
            ("normal_bias", 2, 0),
            ("bn", 1, 0),
            ("lr5_weight", NEW_FC_LR_MULT, 1),
            ("lr10_bias", 10, 0),
        )
    }
    for module in model.modules():
        own = dict(module.named_parameters(recurse=False))
        if not own:
            continue
        if isinstance(module, nn.BatchNorm1d | nn.BatchNorm2d | nn.BatchNorm3d):
            groups["bn"][0].extend(own.values())
            continue
        if not isinstance(module, nn.Conv2d | nn.Conv1d | nn.Conv3d | nn.Linear):
            raise ValueError(f"param_groups: no group for parameters of {type(module).__name__}")
        if module is model.conv1:
            weight_group, bias_group = "first_conv_weight", "first_conv_bias"
        elif module is model.fc and fc_lr5:
            weight_group, bias_group = "lr5_weight", "lr10_bias"
        else:
            weight_group, bias_group = "normal_weight", "normal_bias"
        groups[weight_group][0].append(own["weight"])
        if "bias" in own:
            groups[bias_group][0].append(own["bias"])
    return [
        {"params": params, "lr_mult": lr_mult, "decay_mult": decay_mult, "name": name}
        for name, (params, lr_mult, decay_mult) in groups.items()
        if params
    ]
