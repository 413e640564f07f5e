"""torchrun on the CPU (gloo): ranks that train one model each, exchanging only class scores, compute the losses
and gradients one process computes; DDP replicas of a model split its batch; a rank's wait for rank 0 is bounded and
said; a 2-rank reproduction and a two-device schedule give Table 7."""

import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from runner_cli import environment, reproduce_command

from mml import distributed
from mml.distributed import Layout
from mml.errors import MMLError
from mml.methods.mutual import group_step
from mml.networks import network
from mml.spec import Recipe
from mml.store import ModelConfig, RunConfig
from mml.train import Outputs, backward

BATCH, CLASSES = 6, 5
MODALITIES = ("RGB", "Flow", "Diff")


def _config(models: int, multilabel: bool) -> RunConfig:
    recipe = Recipe(
        segments=2, short_side=32, input_size=28, batch_size=BATCH, epochs=1, lr=0.1, lr_steps=(), dropout=0
    )
    return RunConfig(
        method="ml",
        models=tuple(ModelConfig(modality=MODALITIES[i], init="random") for i in range(models)),
        arch="tsm_tiny",
        recipe=recipe,
        dataset="test",
        num_classes=CLASSES,
        seed=0,
    )


def _models(config: RunConfig) -> list[torch.nn.Module]:
    """Every model of the run, the same on every rank (one seed)."""
    torch.manual_seed(0)
    return [network(config, model.modality) for model in config.models]


def _batch(config: RunConfig, multilabel: bool) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """One batch of every modality's inputs and its labels, the same on every rank."""
    from mml.data.modalities import MODALITIES as SPECS

    generator = torch.Generator().manual_seed(1)
    size, frames = config.recipe.input_size, config.recipe.segments
    inputs = {
        m.modality: torch.randn(BATCH, frames * SPECS[m.modality].channels, size, size, generator=generator)
        for m in config.models
    }
    if multilabel:
        return inputs, (torch.rand(BATCH, CLASSES, generator=generator) > 0.5).float()
    return inputs, torch.randint(0, CLASSES, (BATCH,), generator=generator)


def _step(config: RunConfig, models, layout: Layout, multilabel: bool, train: bool):
    """One training step's loss values (whole batch) and the gradients of this process's models."""
    inputs, labels = _batch(config, multilabel)
    rows = slice(layout.shard, None, layout.replicas)
    share = len(range(BATCH)[rows]) / BATCH
    nets = layout.wrap([Outputs(models[index]) for index in layout.held])
    for net in nets:
        net.train(train)
    losses = group_step(config, nets, {k: v[rows] for k, v in inputs.items()}, labels[rows], layout)
    values = layout.reduce(losses, share)
    backward(losses, layout, share)
    grads = {
        index: {name: p.grad.clone() for name, p in models[index].named_parameters() if p.grad is not None}
        for index in layout.held
    }
    return values, grads


def _rank(rank: int, world: int, port: int, models: int, multilabel: bool, train: bool, folder: Path) -> None:
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world), RANK=str(rank), LOCAL_RANK=str(rank)
    )
    torch.set_num_threads(1)
    distributed.init("cpu")
    try:
        config = _config(models, multilabel)
        layout = distributed.layout(models)
        values, grads = _step(config, _models(config), layout, multilabel, train)
        torch.save({"values": values, "grads": grads, "shard": layout.shard}, folder / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize(
    ("world", "models", "multilabel", "train"),
    [
        (2, 2, False, True),  # MML RGB + Flow, one model per rank
        (3, 3, True, True),  # RGB + Flow + Diff, multi-label (BCE, KL / classes)
        (4, 2, False, False),  # two replicas of each model under DDP, each on half of the batch
    ],
)
def test_distributed_ml_gives_the_losses_and_gradients_of_one_process(
    world: int, models: int, multilabel: bool, train: bool, tmp_path: Path
) -> None:
    """With replicas, BatchNorm normalises each replica's shard by its own statistics (as DDP and the original
    code's DataParallel do), so that case compares in eval mode; one rank per model compares in train mode."""
    mp.spawn(_rank, (world, _free_port(), models, multilabel, train, tmp_path), nprocs=world)
    config = _config(models, multilabel)
    expected_values, expected_grads = _step(config, _models(config), Layout(models), multilabel, train)
    results = [torch.load(tmp_path / f"rank{rank}.pt") for rank in range(world)]
    for result in results:
        assert result["values"] == pytest.approx(expected_values, rel=1e-5, abs=1e-6)
        for index, grads in result["grads"].items():
            assert grads.keys() == expected_grads[index].keys()
            for name, grad in grads.items():
                torch.testing.assert_close(grad, expected_grads[index][name], rtol=1e-4, atol=1e-6, msg=name)
    assert sorted(index for result in results for index in result["grads"]) == sorted(
        index for index in range(models) for _ in range(world // models)
    )


def _waiting_rank(rank: int, port: int, case: str, folder: Path) -> None:
    """Rank 1 waits for rank 0's work on the control group; rank 0 never gives it (`timeout`), leaves the group
    (`lost`), or works until it has said that the others wait (`notice`, said at once). Each rank writes what it
    got to rank<r>.txt."""
    wait = "1" if case == "timeout" else "60"
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank)
    )
    os.environ[distributed.WAIT_VARIABLE] = wait
    distributed.NOTICE = timedelta(0)  # this process's copy of the module: say at once that the others wait
    said = threading.Event()
    notices: list[str] = []

    class Heard(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            notices.append(record.getMessage())
            said.set()

    logging.getLogger("mml.distributed").addHandler(Heard())
    logging.getLogger("mml.distributed").setLevel(logging.INFO)
    distributed.init("cpu")
    try:
        if rank == 1:
            try:
                got = str(distributed.on_rank0(lambda: "rank 0's answer"))
            except MMLError as error:
                got = str(error)
            (folder / "rank1.txt").write_text(got)
        elif case == "timeout":
            while not (folder / "rank1.txt").exists():
                time.sleep(0.05)
        elif case == "notice":

            def work() -> str:
                said.wait(60)
                return "rank 0's answer"

            distributed.on_rank0(work)
            (folder / "rank0.txt").write_text("\n".join(notices))
    finally:
        distributed.shutdown()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("timeout", r"rank 1 waited \d+ s for rank 0 \(<lambda>\) and gave up; raise MML_RANK_WAIT_S \(now 1 s\)"),
        ("lost", r"rank 1 lost rank 0 after \d+ s \(<lambda>\): .*Connection closed by peer"),
        ("notice", r"rank 0's answer"),
    ],
)
def test_a_rank_waiting_for_rank_0_is_bounded_and_says_so(case: str, expected: str, tmp_path: Path) -> None:
    mp.spawn(_waiting_rank, (_free_port(), case, tmp_path), nprocs=2)
    got = (tmp_path / "rank1.txt").read_text()
    assert re.match(expected, got) and "\n" not in got, got
    if case == "notice":
        notice = "the other ranks have waited 0 s for rank 0 (work); they wait at most 60 s (MML_RANK_WAIT_S)"
        assert (tmp_path / "rank0.txt").read_text().splitlines()[0] == notice


@pytest.mark.parametrize("value", ["0", "-5", "soon", "inf"])
def test_a_bad_rank_wait_is_refused(value: str) -> None:
    with pytest.raises(MMLError, match=rf"^MML_RANK_WAIT_S='{value}': expected a positive number of seconds$"):
        distributed.rank_wait({"MML_RANK_WAIT_S": value})
    assert distributed.rank_wait({"MML_RANK_WAIT_S": "90.5"}) == timedelta(seconds=90.5)
    assert distributed.rank_wait({}) == distributed.DEFAULT_WAIT


@pytest.mark.slow
def test_two_ranks_under_torchrun_reproduce_table7(table7_specs: Path, uninterrupted: str, tmp_path: Path) -> None:
    """The ranks split every run (CE runs: two DDP replicas; ML runs: one model per rank) and give Table 7 with
    every cell filled. Its numbers differ from one process's in the last digits only through the ranks' own
    dropout masks and per-shard BatchNorm statistics, so the table's layout is compared, not its values."""
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]
    command = reproduce_command(table7_specs, tmp_path, "--device", "cpu")
    done = subprocess.run(
        [*torchrun, *command[1:]], env={**environment(), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "11 runs needed, 11 trained or loaded" in done.stdout
    assert len(re.findall(r"^\[\d+/11\] training", done.stdout, re.M)) == 11  # printed by rank 0 only
    table = (tmp_path / "tables" / "micro" / "table07.md").read_text()
    assert _table_rows(table) == _table_rows(uninterrupted)


def _table_rows(markdown: str) -> list[str]:
    """The rows of a Markdown table, every number replaced by x and the padding that depends on numbers' widths
    removed (the verdicts below the table depend on the numbers, so they are left out)."""
    rows = [re.sub(r"[+\-−]?\d+\.\d+", "x", line) for line in markdown.splitlines() if line.startswith("|")]
    return [re.sub(r"[\s:-]+", " ", row) for row in rows]


@pytest.mark.slow
def test_two_devices_train_independent_runs_at_once_to_the_same_table(
    table7_specs: Path, uninterrupted: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        reproduce_command(table7_specs, tmp_path, "--devices", "cpu,cpu"), env=environment(), capture_output=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    same = uninterrupted.replace("--no-progress`", "--no-progress --devices cpu,cpu`")  # the footnote's command line
    assert (tmp_path / "tables" / "micro" / "table07.md").read_text() == same
