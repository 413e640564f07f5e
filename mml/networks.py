"""The networks of a run: its backbone for a modality, its models built and initialised for training, its frozen
teacher, and a finished run's models and evaluated heads loaded from the store."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from safetensors.torch import load_file
from torch import nn

from mml.data.modalities import MODALITIES
from mml.init_source import Random, RunModel
from mml.methods import METHODS
from mml.models.i3d import I3D_ARCHS, I3DResNet, build_i3d, inflate_2d_state_dict
from mml.models.init import transfer_weights
from mml.models.tsm import TSMResNet, build_tsm
from mml.seeding import INIT_SEED, derive_seed
from mml.store import RunConfig, Store

# Returns the state dict an `init` string names (a stored run's model or ImageNet weights), given (init, arch).
InitLoader = Callable[[str, str], dict[str, torch.Tensor]]


def network(config: RunConfig, modality: str) -> TSMResNet | I3DResNet:
    """A fresh network of the run's backbone for `modality` (uses the current torch RNG state)."""
    channels = MODALITIES[modality].channels
    if config.arch in I3D_ARCHS:
        return build_i3d(
            config.arch, in_channels=channels, num_classes=config.num_classes, dropout=config.recipe.dropout
        )
    return build_tsm(
        config.arch,
        in_channels=channels,
        num_classes=config.num_classes,
        segments=config.recipe.segments,
        dropout=config.recipe.dropout,
    )


def new_model(config: RunConfig, index: int) -> TSMResNet | I3DResNet:
    """Model `index` of a run, freshly initialised (uses the current torch RNG state)."""
    return network(config, config.models[index].modality)


def build_models(
    config: RunConfig, load_init: InitLoader, indices: Sequence[int] | None = None
) -> list[TSMResNet | I3DResNet]:
    """Build and initialise the run's models (those of `indices`, default all; each as in the whole group).

    Args:
        config: the run.
        load_init: returns the state dict named by a model's `init` string (a stored run's model or ImageNet
            weights) given (init, arch).
        indices: which models.
    """
    models: list[TSMResNet | I3DResNet] = []
    for index in range(len(config.models)) if indices is None else indices:
        spec = config.models[index]
        torch.manual_seed(derive_seed(config.seed, config.replica, INIT_SEED, index))
        model = new_model(config, index)
        if not isinstance(spec.source, Random):
            state = load_init(spec.init, config.arch)
            if isinstance(model, I3DResNet) and state["conv1.weight"].ndim == 4:
                state = inflate_2d_state_dict(state, model)  # ImageNet's 2D weights into the 3D network
            # The fc of a model trained on this dataset is kept (the original MML stage 2); ImageNet's is not.
            transfer_weights(model, state, keep_fc=isinstance(spec.source, RunModel), origin=spec.init)
        models.append(model)
    return models


def build_teacher(config: RunConfig, load_init: InitLoader) -> TSMResNet | I3DResNet:
    """The frozen teacher of a distillation run, in eval mode, loaded from the run it names."""
    if config.teacher is None:
        raise ValueError(f"run {config.run_id} has no teacher")
    teacher = network(config, config.teacher.modality)
    transfer_weights(teacher, load_init(config.teacher.init, config.arch), keep_fc=True, origin=config.teacher.init)
    return teacher.requires_grad_(False).eval()


def stored_weights(store: Store, config: RunConfig, name: str) -> dict[str, torch.Tensor]:
    """The stored weights of a finished run's module `name` (`model<i>`, or an auxiliary module's name)."""
    return load_file(str(store.run_dir(config.run_id) / f"{name}.safetensors"))


def stored_models(store: Store, config: RunConfig) -> list[TSMResNet | I3DResNet]:
    """The trained models of a finished run, loaded from the store."""
    models: list[TSMResNet | I3DResNet] = []
    for index in range(len(config.models)):
        model = new_model(config, index)
        model.load_state_dict(stored_weights(store, config, f"model{index}"))
        models.append(model)
    return models


def stored_heads(store: Store, config: RunConfig, models: Sequence[TSMResNet | I3DResNet]) -> list[nn.Module]:
    """The heads a finished run is evaluated with beyond its models (a late-fusion run's fused head), built over
    its loaded `models`."""
    return METHODS[config.method].evaluation_heads(config, models, lambda name: stored_weights(store, config, name))
