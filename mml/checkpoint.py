"""A run's files: the checkpoint a partial run resumes from, and the weights, metrics and record of a finished run
(trained, or imported from weight files).

A checkpoint (`checkpoint.safetensors` in the run's partial folder, written after each epoch) holds every trained
module's weights (`model<i>.<key>`, `<auxiliary name>.<key>`), their optimisers' per-parameter state (SGD's
momentum buffer as `optimizer<i>.<n>` / `optimizer_<name>.<n>`, any other entry, e.g. Adam's moments and step, as
`optimizer<i>.<n>.<entry>`) and the run's state (epoch, history, a method's own entries) as JSON metadata.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save
from torch import nn

import mml
from mml import atomic, numerics
from mml.distributed import Layout
from mml.errors import CheckpointError
from mml.execution import Execution
from mml.gitstate import code_state
from mml.models.convert import fit_checkpoint
from mml.networks import new_model
from mml.store import RunConfig, Store, write_json

# Trained modules by checkpoint key: a model by its index in the run, an auxiliary module by its name.
Modules = dict[int | str, tuple[nn.Module, torch.optim.Optimizer]]


def checkpoint_names(index: int | str) -> tuple[str, str]:
    """Checkpoint key prefixes of model `index` (`model<i>`, `optimizer<i>`) or of an auxiliary module by name."""
    return (f"model{index}", f"optimizer{index}") if isinstance(index, int) else (index, f"optimizer_{index}")


def module_tensors(
    name: str, optimizer_name: str, module: nn.Module, optimizer: torch.optim.Optimizer | None
) -> dict[str, torch.Tensor]:
    """A module's weights (`<name>.<key>`) and, with its optimizer, its per-parameter state (`_state_key`)."""
    tensors = {f"{name}.{k}": v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    if optimizer is not None:
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        for number, parameter in enumerate(parameters):
            for entry, value in optimizer.state.get(parameter, {}).items():
                if isinstance(value, torch.Tensor):
                    tensors[_state_key(optimizer_name, number, entry)] = value.detach().cpu().contiguous()
    return tensors


def _state_key(optimizer_name: str, number: int, entry: str) -> str:
    """The checkpoint key of one optimiser state entry of parameter `number`: SGD's momentum buffer keeps the
    short key checkpoints have always used."""
    return f"{optimizer_name}.{number}" if entry == "momentum_buffer" else f"{optimizer_name}.{number}.{entry}"


def held_tensors(layout: Layout, modules: Mapping[int | str, tuple[nn.Module, torch.optim.Optimizer | None]]) -> dict:
    """The tensors of this process's trained modules (with their optimisers where given), from shard 0 only:
    replicas are identical."""
    tensors: dict[str, torch.Tensor] = {}
    if layout.shard == 0:
        for index, (module, optimizer) in modules.items():
            tensors.update(module_tensors(*checkpoint_names(index), module, optimizer))
    return tensors


def save_checkpoint(path: Path, tensors: dict[str, torch.Tensor], state: dict) -> None:
    """Write a checkpoint: the trained modules' tensors and the run's state."""
    atomic.write_bytes(path, save(tensors, metadata={"state": json.dumps(state)}))


def load_checkpoint(path: Path, rid: str, modules: Modules) -> dict:
    """Load the models (by index) and auxiliary modules (by name), with their optimisers, from a run's checkpoint;
    returns its state."""
    try:
        with safe_open(str(path), "pt") as handle:
            state = json.loads(handle.metadata()["state"])
    except Exception as err:  # safetensors' own error type, a missing or malformed "state"
        raise CheckpointError(f"{path}: not a resumable checkpoint ({err}); delete it to train the run anew") from None
    if state.get("run_id") != rid:
        raise CheckpointError(f"{path}: belongs to run {state.get('run_id')}, not {rid}")
    tensors = load_file(str(path))
    for index, (model, optimizer) in modules.items():
        name, optimizer_name = checkpoint_names(index)
        prefix = f"{name}."
        model.load_state_dict({k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)})
        parameters = [p for group in optimizer.param_groups for p in group["params"]]
        for key, value in tensors.items():
            if key.startswith(f"{optimizer_name}."):
                number, _, entry = key[len(optimizer_name) + 1 :].partition(".")  # `_state_key` read back
                parameter = parameters[int(number)]
                # Adam keeps its step count on the CPU; every other entry lives beside its parameter.
                value = value if entry == "step" else value.to(parameter.device)
                optimizer.state[parameter][entry or "momentum_buffer"] = value
    return state


def write_finished(
    partial: Path,
    config: RunConfig,
    tensors: dict[str, torch.Tensor],
    names: Sequence[int | str],
    state: dict,
    run: Execution,
    world: int,
) -> None:
    """Write a trained run's files into its partial folder: each module's weights (`<name>.safetensors`), the
    training history and a method's own entries (`metrics.json`) and the run record (`run.json`: config, provenance
    and how it ran — device type, world size, speed settings and CPU numerics)."""
    for index in names:
        name, _ = checkpoint_names(index)
        weights_of = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(f"{name}.")}
        atomic.write_bytes(partial / f"{name}.safetensors", save(weights_of))
    write_json(partial / "metrics.json", {key: value for key, value in state.items() if key not in ("run_id", "epoch")})
    record = {
        "run_id": config.run_id,
        "config": dataclasses.asdict(config),
        **provenance(),
        "device": torch.device(run.device).type,
        "world_size": world,
        "execution": run.speed_record(),
        "cpu_numerics": numerics.in_effect().record(),
    }
    write_json(partial / "run.json", record)


def import_run(config: RunConfig, files: Sequence[Path], store: Store) -> Path:
    """Store a run whose models are loaded from weight files (ours, torchvision's or the original TSM / MML code's)
    instead of trained; a file that does not fit its model is refused with the keys and shapes at fault."""
    rid = config.run_id
    partial = store.begin(rid, force=True)
    for index, path in enumerate(files):
        model = new_model(config, index)
        weights = {k: v.contiguous() for k, v in fit_checkpoint(Path(path), model).items()}
        atomic.write_bytes(partial / f"model{index}.safetensors", save(weights))
    write_json(partial / "metrics.json", {"history": [], "loaded_from": [str(path) for path in files]})
    write_json(partial / "run.json", {"run_id": rid, "config": dataclasses.asdict(config), **provenance()})
    return store.finish(rid)


def check_checkpoint_files(config: RunConfig, files: Sequence[Path]) -> None:
    """Refuse, when a run is planned, weight files that `import_run` would refuse later: each file must be readable
    as a weight file and its tensors, converted as `import_run` converts them, must fit the run's model of its
    index. The models are built on the meta device (no memory, no random numbers drawn).

    Raises:
        CheckpointError: One line naming the file and why: unreadable or not a state dict of tensors, or its
            unknown keys, missing keys and tensors of the wrong shape.
    """
    for index, path in enumerate(files):
        with torch.device("meta"):
            model = new_model(config, index)
        fit_checkpoint(Path(path), model)


def provenance() -> dict[str, str]:
    """What produced a run, recorded beside it and never part of its identity: versions and git commit (with
    "-dirty" when the package had uncommitted changes; "unknown" outside a git checkout)."""
    commit, dirty = code_state()
    return {
        "mml": mml.__version__,
        "torch": torch.__version__,
        "git_commit": (commit or "unknown") + ("-dirty" if dirty else ""),
    }
