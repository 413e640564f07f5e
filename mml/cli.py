"""The `mml` command: `mml reproduce table7 [--profile smoke] [--store DIR] [--data DIR] ...` trains what tables
need and writes them; `mml prepare sthv2 --data DIR` decodes a dataset's videos and extracts their flow beforehand.

`torchrun --nproc-per-node N -m mml reproduce ...` runs `reproduce` on N ranks (see `mml.distributed`); ranks other
than 0 print nothing but errors (`mml.logs`).

Every table records the command that wrote it (`recorded_command`) and the code version (`mml.store.code_version`).
`reproduce` trains and evaluates with `mml.store.CPU_THREADS` intra-op threads, so that results do not depend on the
machine's core count.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import logging
import os
import shlex
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from mml import distributed, logs
from mml.data.datasets import open_dataset, prepare_frames
from mml.data.flow_backend import FLOW_BACKENDS, FlowBackend
from mml.data.modalities import MODALITIES, frames_needed
from mml.errors import MMLError
from mml.execution import PRECISIONS, Execution
from mml.report.build import write_outputs, write_summary
from mml.report.results import StoredResults
from mml.runner import Setup, execute, plan_tables
from mml.spec import ALL_GROUP, SETUPS, TableSpec, load_profile, load_table, table_path, table_paths
from mml.store import Store, pinned_cpu_threads

logger = logging.getLogger(__name__)
MAX_CPU_RUNS = 8  # runs side by side on a CPU by default: each is a process with its own PyTorch and data buffers

# Defaults point into the project checkout when mml runs from one (editable install), else the working directory.
_PACKAGE = Path(__file__).resolve().parent
_PROJECT = _PACKAGE.parent
_HOME = _PROJECT if (_PROJECT / "reproductions").is_dir() else Path.cwd()


def default_specs(package: Path = _PACKAGE) -> Path:
    """The folder of specs and profiles: the checkout's `reproductions/` when mml runs from one, else the copy
    installed with the package (`mml/reproductions`, package data)."""
    checkout = package.parent / "reproductions"
    return checkout if checkout.is_dir() else package / "reproductions"


def _reproduce_parser(commands: argparse._SubParsersAction) -> None:
    # No abbreviated options: the command line a table records names every option in full (`recorded_command`).
    parser = commands.add_parser("reproduce", help="train what paper tables need and write them", allow_abbrev=False)
    parser.add_argument(
        "tables",
        nargs="+",
        help="table ids (table7, 07, 7) or 'all'; related-method tables gblend_table4, skd_table2, methods, 'related'",
    )
    parser.add_argument("--profile", default="smoke", help="scale profile from profiles.toml (default: smoke)")
    parser.add_argument(
        "--store", type=Path, default=_HOME / "store", metavar="DIR", help="run store folder (default: ./store)"
    )
    parser.add_argument(
        "--data", type=Path, metavar="DIR", help="dataset folder (real datasets; synthetic ones are generated here)"
    )
    parser.add_argument(
        "--charades-data", type=Path, metavar="DIR", help="Charades folder for the charades setup (Tab. 6)"
    )
    parser.add_argument(
        "--imagenet",
        type=Path,
        metavar="FILE",
        help="ImageNet weights file of the profile's backbone instead of torchvision's download (sthv2 setup)",
    )
    parser.add_argument(
        "--kinetics",
        type=Path,
        metavar="FILE",
        help="Kinetics-400 weights file for the Charades setup's 'from Kinetics' init (PySlowFast's I3D checkpoint, "
        ".pkl or .pyth); without it that init is torchvision's ImageNet weights inflated to 3D",
    )
    parser.add_argument(
        "--specs", type=Path, default=default_specs(), metavar="DIR", help="folder of specs and profiles"
    )
    parser.add_argument(
        "--out", type=Path, default=_HOME / "tables", metavar="DIR", help="output folder (default: ./tables)"
    )
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--devices",
        type=lambda text: [item for item in text.split(",") if item],
        default=[],
        metavar="DEV,DEV,...",
        help="train independent runs at once, one per device, e.g. cuda:0,cuda:1,cuda:2,cuda:3 (default on the CPU: "
        f"one run per core, at most {MAX_CPU_RUNS}; --devices cpu trains one run at a time)",
    )
    parser.add_argument("--workers", type=int, help="data-loading processes (default: 0 on CPU, 8 on GPU)")
    parser.add_argument(
        "--baseline", action="store_true", help="train in fp32, eager, contiguous (the default on the CPU)"
    )
    parser.add_argument("--precision", choices=PRECISIONS, help="forward passes in fp32 or bf16 autocast (CUDA: bf16)")
    parser.add_argument("--channels-last", action=argparse.BooleanOptionalAction, help="channels_last (CUDA: on)")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, help="torch.compile (CUDA: on)")
    parser.add_argument("--cache", type=Path, metavar="DIR", help="frame / flow cache folder (default: STORE/cache)")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a profile value, e.g. --set recipe.epochs=1 --set charades.recipe.batch_size=2",
    )
    parser.add_argument(
        "--checkpoint",
        action="append",
        default=[],
        metavar="[TABLE:]RUN=FILE[,FILE]",
        help="load a spec run from weight files (one per model; ours, torchvision's or the original TSM/MML code's)",
    )
    parser.add_argument("--dry-run", action="store_true", help="list the runs as done / partial / missing and stop")
    parser.add_argument("--force", action="store_true", help="retrain every run the tables need")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def reproduce(args: argparse.Namespace) -> None:
    """Plan, train what is missing, and write the tables (on every rank under torchrun)."""
    device = distributed.init(args.device)
    try:
        with pinned_cpu_threads():  # messages of ranks other than 0 are filtered by mml.logs
            _reproduce(args, device)
    finally:
        distributed.shutdown()


def _reproduce(args: argparse.Namespace, device: str) -> None:
    started = time.monotonic()
    names = args.tables
    paths = table_paths(args.specs, names)
    tables = with_checkpoints([load_table(path) for path in paths], args.checkpoint)
    profile = load_profile(args.specs / "profiles.toml", args.profile, args.set)
    store = Store(args.store, args.cache)
    progress = not args.no_progress and distributed.rank() == 0
    work = []  # per setup (sthv2, charades, long): its profile, tables, dataset, plan and pretrained weight file
    for setup in SETUPS:
        chosen = [table for table in tables if table.setup == setup]
        if chosen:
            scale = profile.setup(setup)
            charades = setup == "charades"
            data, pretrained = (args.charades_data, args.kinetics) if charades else (args.data, args.imagenet)
            dataset = distributed.rank0_first(
                functools.partial(open_dataset, scale.dataset, data, store.root / "data", progress)
            )
            work.append((scale, chosen, dataset, plan_tables(chosen, scale, dataset, pretrained), pretrained))
    if args.dry_run:
        for _, _, _, plan, _ in work:
            for rid in plan.order():
                config = plan.runs[rid]
                models = " + ".join(f"{m.modality} from {m.init}" for m in config.models)
                logger.info(f"{store.status(rid):8} {rid}  {config.method}: {models}  [{', '.join(plan.names[rid])}]")
        return
    cpus = os.cpu_count() or 1
    devices = args.devices or default_devices(device, cpus)
    workers = args.workers if args.workers is not None else (8 if device.startswith("cuda") else 0)
    run = Execution.for_device(
        device,
        fast=False if args.baseline else None,
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        workers=workers,
        prepare_workers=cpus,
        progress=progress,
    )
    command = args.command_line
    setups = [Setup(plan, scale.views, dataset, pretrained) for scale, _, dataset, plan, pretrained in work]
    summary = execute(setups, store, run, args.force, devices)
    needed, trained = summary.needed, len(summary.trained)
    written, reports = [], {}
    for scale, chosen, _, plan, _ in work if distributed.rank() == 0 else []:
        for table in chosen:
            results = StoredResults(store, plan, scale, table)
            reports[table.id], paths = write_outputs(results, command, args.out / profile.name)
            written += paths
    if ALL_GROUP in names and distributed.rank() == 0:  # every table of the invocation on one page
        written.append(write_summary([reports[table.id] for table in tables], args.out / profile.name))
    minutes = (time.monotonic() - started) / 60
    done = f"{needed} runs needed, {trained} trained or loaded, {needed - trained} reused from {store.root}"
    logger.info(f"Done in {minutes:.1f} min: {done}.")
    logger.info("Tables: " + ", ".join(str(p) for p in written))


def default_devices(device: str, cpus: int) -> list[str]:
    """Where runs train without `--devices`: on a CPU of several cores, one run per core at once (at most
    `MAX_CPU_RUNS`), since each run trains on `CPU_THREADS` threads whatever the machine, so running them side by
    side changes no result and uses the cores one run alone cannot; elsewhere (a GPU, torchrun) one run at a time."""
    if device != "cpu" or distributed.active() or cpus < 2:
        return []
    return ["cpu"] * min(cpus, MAX_CPU_RUNS)


def _prepare_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "prepare", help="decode a dataset's videos into the frame cache and extract TV-L1 flow, resumably"
    )
    parser.add_argument("setup", choices=SETUPS, help="which dataset of the profile: sthv2, charades or long")
    parser.add_argument("--data", type=Path, required=True, metavar="DIR", help="the dataset folder")
    parser.add_argument("--profile", default="paper", help="profile whose dataset and short side to use (paper)")
    parser.add_argument(
        "--specs", type=Path, default=default_specs(), metavar="DIR", help="folder of specs and profiles"
    )
    parser.add_argument(
        "--store", type=Path, default=_HOME / "store", metavar="DIR", help="run store folder (default: ./store)"
    )
    parser.add_argument("--cache", type=Path, metavar="DIR", help="frame / flow cache folder (default: STORE/cache)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="processes (default: all cores)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a profile value")
    parser.add_argument("--no-flow", action="store_true", help="frames only, no optical flow")
    parser.add_argument(
        "--flow",
        choices=FLOW_BACKENDS,
        default="opencv",
        help="TV-L1 implementation: OpenCV on the CPU (the reference, default) or our batched PyTorch port",
    )
    parser.add_argument("--flow-device", default="cpu", help="device of --flow torch: cpu (default), cuda, cuda:1")
    parser.add_argument("--flow-batch", type=int, default=32, help="frame pairs per call of --flow torch (32)")
    parser.add_argument(
        "--flow-compile", action="store_true", help="--flow torch through torch.compile (fused kernels; compiles first)"
    )
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def prepare(args: argparse.Namespace) -> None:
    """Validate the annotations against the videos, fill the frame (and flow) cache, write the report."""
    scale = load_profile(args.specs / "profiles.toml", args.profile, args.set).setup(args.setup)
    flow_backend = FlowBackend(args.flow, args.flow_device, args.flow_batch, args.flow_compile)
    store = Store(args.store, args.cache)
    dataset = open_dataset(scale.dataset, args.data, store.root / "data", not args.no_progress)
    modalities = [name for name in MODALITIES if not (args.no_flow and name == "Flow")]
    needed = frames_needed(modalities, scale.recipe.segments)
    prepare_frames(
        dataset,
        store.cache_dir(),
        scale.recipe.short_side,
        not args.no_flow,
        needed,
        args.workers,
        not args.no_progress,
        flow_backend,
    )


def with_checkpoints(tables: list[TableSpec], options: Sequence[str]) -> list[TableSpec]:
    """The tables with the runs named by `--checkpoint [TABLE:]RUN=FILE[,FILE]` loaded from those files (a RUN
    without TABLE: in every chosen table that has it)."""
    for option in options:
        target, equals, files = option.partition("=")
        table_id, _, run = target.rpartition(":")
        if not equals or not run or not files:
            raise MMLError(f"--checkpoint {option!r}: expected [TABLE:]RUN=FILE[,FILE]")
        chosen = [t for t in tables if run in t.runs and (not table_id or t.id == table_path(Path(), table_id).stem)]
        if not chosen:
            raise MMLError(f"--checkpoint {option!r}: no chosen table has a run {run!r}")
        paths = [Path(name) for name in files.split(",")]
        tables = [
            dataclasses.replace(t, runs={**t.runs, run: t.runs[run].loaded_from(paths)}) if t in chosen else t
            for t in tables
        ]
    return tables


def recorded_command(program: Sequence[str], parser: argparse.ArgumentParser, argv: Sequence[str]) -> str:
    """The command line a table records: how mml was started (`program`: `python -m mml` or `mml`), then the
    arguments of `parser`'s command as given, overrides included, shell-quoted.

    Only where files are is left out: the value of a path option (`--store /tmp/xyz`) is written as its placeholder
    (`--store DIR`), and so are the files of `--checkpoint RUN=FILE`. A location changes no result (data and weight
    files enter the run ids by their content, the store holds runs by id), and keeping it would make the same table
    differ byte for byte between machines and stores. The interpreter is written `python`, not its path, for the
    same reason."""
    placeholders = {  # every path option has a metavar (DIR, FILE)
        option: str(action.metavar)
        for action in parser._actions
        if action.type is Path
        for option in action.option_strings
    }
    placeholders["--checkpoint"] = "FILE"

    def hidden(option: str, value: str) -> str:
        if option == "--checkpoint":
            target, equals, files = value.partition("=")
            return f"{target}{equals}{','.join('FILE' for _ in files.split(','))}" if equals else value
        return placeholders[option]

    words, option = list(program), None
    for word in argv:
        name, equals, value = word.partition("=")
        if option is not None:
            words.append(hidden(option, word))
            option = None
        elif word in placeholders:
            words.append(word)
            option = word
        elif equals and name in placeholders:
            words.append(f"{name}={hidden(name, value)}")
        else:
            words.append(word)
    return shlex.join(words)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mml` command; bad input ends with a one-line error and exit status 2."""
    parser = argparse.ArgumentParser(prog="mml", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _reproduce_parser(commands)
    _prepare_parser(commands)
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    args.command_line = recorded_command(_program(argv is None), commands.choices[args.command], arguments)
    logs.configure()
    with logs.routed_warnings():
        try:
            {"reproduce": reproduce, "prepare": prepare}[args.command](args)
        except distributed.PeerFailed:
            return 2  # rank 0 reports its error
        except MMLError as err:
            logger.error("%s", err)
            return 2
    return 0


def _program(from_command_line: bool) -> list[str]:
    """How mml was started: `python -m mml` (also under torchrun -m mml) when this process runs mml/__main__.py,
    else `mml`, the command whose arguments `main` takes (the console script, or a call of `main(argv)`)."""
    return ["python", "-m", "mml"] if from_command_line and Path(sys.argv[0]).name == "__main__.py" else ["mml"]
