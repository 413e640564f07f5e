"""The `mml` command, which parses its arguments and hands them to the library: `mml reproduce table7 [--profile
smoke] [--store DIR] [--data DIR] ...` trains what tables need and writes them (`mml.reproduce`; `--dry-run` prices
the plan, `--launcher slurm` submits it as SLURM jobs); `mml status table7 ...` lists its runs as done / running /
queued / failed / partial / missing; `mml prepare sthv2 --data DIR` decodes a dataset's videos and extracts their
flow beforehand (`--launcher slurm --shards N`: as a job array).

`torchrun --nproc-per-node N -m mml reproduce ...` runs `reproduce` on N ranks (see `mml.distributed`); ranks other
than 0 print nothing but errors (`mml.logs`).

Every table records the command that wrote it (`recorded_command`) and the code version (`mml.store.code_version`).
`reproduce` trains and evaluates with `mml.store.CPU_THREADS` intra-op threads, so that results do not depend on the
machine's core count.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

import mml
from mml import distributed, logs
from mml.data.datasets import open_dataset, prepare_frames
from mml.data.flow_backend import FLOW_BACKENDS, FlowBackend
from mml.data.modalities import MODALITIES, frames_needed
from mml.data.shard import Shard
from mml.errors import MMLError
from mml.execution import PRECISIONS, Execution
from mml.executors import MAX_CPU_RUNS, DevicePool, InProcess, default_device, default_devices
from mml.price import THROUGHPUT_FILE, TRAINING_SETTING
from mml.reproduce import Executor, Request, plan
from mml.reproduce import reproduce as run_reproduction
from mml.slurm.executor import SlurmExecutor, add_slurm_arguments, job_arguments, slurm_options
from mml.slurm.prepare import submit_prepare
from mml.slurm.requeue import requeued_on_signal
from mml.spec import SETUPS, load_profile
from mml.status import dry_run_lines, status_lines
from mml.store import Store, pinned_cpu_threads

logger = logging.getLogger(__name__)

# Defaults point into the project checkout when mml runs from one (editable install), else the working directory.
_PACKAGE = Path(__file__).resolve().parent
_PROJECT = _PACKAGE.parent
_HOME = _PROJECT if (_PROJECT / "reproductions").is_dir() else Path.cwd()


def default_specs(package: Path = _PACKAGE) -> Path:
    """The folder of specs and profiles: the checkout's `reproductions/` when mml runs from one, else the copy
    installed with the package (`mml/reproductions`, package data)."""
    checkout = package.parent / "reproductions"
    return checkout if checkout.is_dir() else package / "reproductions"


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(item) for item in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seeds like 0,1,2, got {text!r}") from None


def _plan_arguments(parser: argparse.ArgumentParser) -> None:
    """The options that decide the plan, shared by `reproduce` and `status`."""
    parser.add_argument(
        "tables",
        nargs="+",
        help="table ids (table7, 07, 7) or 'all'; related-method tables gblend_table4, skd_table2, methods, 'related'",
    )
    parser.add_argument("--profile", default="smoke", help="scale profile from profiles.toml (default: smoke)")
    parser.add_argument(
        "--seeds",
        type=_seeds,
        metavar="S,S,...",
        help="seeds to train instead of the profile's, e.g. 0,1,2: one seed gives no verdict, three is the least "
        "that does (docs/verdicts.md)",
    )
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
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _reproduce_parser(commands: argparse._SubParsersAction) -> None:
    # No abbreviated options: the command line a table records names every option in full (`recorded_command`).
    parser = commands.add_parser("reproduce", help="train what paper tables need and write them", allow_abbrev=False)
    _plan_arguments(parser)
    parser.add_argument("--device", help="cuda, cuda:1 or cpu (default: cuda when there is one)")
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
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="list the runs as done / partial / missing with their price (clips, FLOPs, GPU-hours, disk); stop",
    )
    parser.add_argument("--gpu", default="H100", help="the GPU whose throughput prices --dry-run (default: H100)")
    parser.add_argument(
        "--seed-sd",
        type=float,
        metavar="POINTS",
        help="the per-seed sd of a claim's paired difference that --dry-run's expected interval assumes",
    )
    parser.add_argument("--force", action="store_true", help="retrain every run the tables need")
    add_slurm_arguments(parser)


def _status_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "status", help="list every run of the plan as done / running / queued / failed / partial / missing"
    )
    _plan_arguments(parser)


def reproduce(args: argparse.Namespace) -> None:
    """`mml reproduce`: the request and executor its options describe, to `mml.reproduce.reproduce` (on every rank
    under torchrun)."""
    device = distributed.init(args.device or default_device())
    try:
        with pinned_cpu_threads():  # messages of ranks other than 0 are filtered by mml.logs
            request = _request(args)
            if args.dry_run:
                setting = "fp32-eager" if args.baseline else TRAINING_SETTING
                specs = args.specs if (args.specs / THROUGHPUT_FILE).is_file() else default_specs()
                lines = dry_run_lines(plan(request), specs, args.gpu, setting, args.seed_sd)
                for line in lines:
                    logger.info(line)
            else:
                with requeued_on_signal() if args.run else contextlib.nullcontext():
                    run_reproduction(request, _executor(args, device))
    finally:
        distributed.shutdown()


def status(args: argparse.Namespace) -> None:
    """`mml status`: every run of the plan as done / running / queued / failed / partial / missing."""
    with pinned_cpu_threads():
        for line in status_lines(plan(_request(args))):
            logger.info(line)


def _request(args: argparse.Namespace) -> Request:
    return Request(
        tables=tuple(args.tables),
        profile=args.profile,
        specs=args.specs,
        store=args.store,
        out=args.out,
        cache=args.cache,
        data=args.data,
        charades_data=args.charades_data,
        imagenet=args.imagenet,
        kinetics=args.kinetics,
        overrides=tuple(args.set),
        checkpoints=tuple(args.checkpoint),
        seeds=args.seeds,
        force=getattr(args, "force", False),  # `mml status` has no --force
        progress=not args.no_progress,
        command=args.command_line,
    )


def _executor(args: argparse.Namespace, device: str) -> Executor:
    """The executor the options name: SLURM jobs, one run's job (inside a SLURM job), a local device pool, or this
    process."""
    if args.launcher == "slurm":
        return SlurmExecutor(slurm_options(args), job_arguments(args.arguments))
    cpus = os.cpu_count() or 1
    workers = args.workers if args.workers is not None else (8 if device.startswith("cuda") else 0)
    run = Execution.for_device(
        device,
        fast=False if args.baseline else None,
        precision=args.precision,
        channels_last=args.channels_last,
        compile=args.compile,
        workers=workers,
        prepare_workers=cpus,
        progress=not args.no_progress and distributed.rank() == 0,
    )
    if args.run is not None or args.prepare_only:
        return InProcess(run, only={args.run} if args.run else None, prepare_only=args.prepare_only)
    devices = args.devices or default_devices(device, cpus)
    return DevicePool(run, devices) if devices else InProcess(run)


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
    parser.add_argument(
        "--shard",
        metavar="I/N",
        help="prepare only shard I of N (0 <= I < N; split by a hash of the video id), e.g. one task of a job array, "
        "and write its own report; a run without --shard afterwards finds them cached and writes the full report",
    )
    add_slurm_arguments(parser, runs=False)


def prepare(args: argparse.Namespace) -> None:
    """Validate the annotations against the videos, fill the frame (and flow) cache, write the report; or submit
    that as a SLURM job array of `--shards` tasks and a merge job."""
    if args.launcher == "slurm":
        submit_prepare(slurm_options(args), args.arguments, Store(args.store, args.cache), args.shards)
        return
    shard = Shard.parse(args.shard) if args.shard is not None else None
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
        shard,
    )


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
    parser.add_argument("--version", action="version", version=f"%(prog)s {mml.__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    _reproduce_parser(commands)
    _status_parser(commands)
    _prepare_parser(commands)
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(arguments)
    args.arguments = arguments[arguments.index(args.command) + 1 :]  # the jobs of a SLURM launch repeat them
    args.command_line = recorded_command(_program(argv is None), commands.choices[args.command], arguments)
    logs.configure()
    with logs.routed_warnings():
        try:
            {"reproduce": reproduce, "status": status, "prepare": prepare}[args.command](args)
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
