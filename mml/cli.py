"""The `mml` command: `mml reproduce table7 [--profile smoke] [--store DIR] [--data DIR] ...`."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from mml.data.datasets import open_dataset
from mml.errors import MMLError
from mml.report.build import write_outputs, write_summary
from mml.report.results import StoredResults
from mml.runner import execute, plan_tables
from mml.runs import Store
from mml.spec import SETUPS, all_table_paths, load_profile, load_table, table_path
from mml.train import Execution

# Defaults point into the project checkout when mml runs from one (editable install), else the working directory.
_PROJECT = Path(__file__).resolve().parent.parent
_HOME = _PROJECT if (_PROJECT / "reproductions").is_dir() else Path.cwd()


def _reproduce_parser(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser("reproduce", help="train what paper tables need and write them")
    parser.add_argument("tables", nargs="+", help="table ids (table7, 07, 7) or 'all'")
    parser.add_argument("--profile", default="smoke", help="scale profile from profiles.toml (default: smoke)")
    parser.add_argument("--store", type=Path, default=_HOME / "store", help="run store folder (default: ./store)")
    parser.add_argument("--data", type=Path, help="dataset folder (real datasets; synthetic ones are generated here)")
    parser.add_argument("--charades-data", type=Path, help="Charades folder for the charades setup (Tab. 6)")
    parser.add_argument("--imagenet", type=Path, help="ImageNet weights file instead of torchvision's download")
    parser.add_argument("--specs", type=Path, default=_HOME / "reproductions", help="folder of specs and profiles")
    parser.add_argument("--out", type=Path, default=_HOME / "tables", help="output folder (default: ./tables)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--workers", type=int, help="data-loading processes (default: 0 on CPU, 8 on GPU)")
    parser.add_argument("--dry-run", action="store_true", help="list the runs as done / partial / missing and stop")
    parser.add_argument("--force", action="store_true", help="retrain every run the tables need")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def reproduce(args: argparse.Namespace) -> None:
    """Plan, train what is missing, and write the tables."""
    started = time.monotonic()
    names = args.tables
    paths = all_table_paths(args.specs) if names == ["all"] else [table_path(args.specs, n) for n in names]
    tables = [load_table(path) for path in paths]
    profile = load_profile(args.specs / "profiles.toml", args.profile)
    store = Store(args.store)
    progress = not args.no_progress
    work = []  # per setup (sthv2, charades): its profile, tables, dataset and plan
    for setup in SETUPS:
        chosen = [table for table in tables if table.setup == setup]
        if chosen:
            scale = profile.setup(setup)
            data = args.data if setup == "sthv2" else args.charades_data
            dataset = open_dataset(scale.dataset, data, store.root / "data", progress)
            work.append((scale, chosen, dataset, plan_tables(chosen, scale, dataset, args.imagenet)))
    if args.dry_run:
        for _, _, _, plan in work:
            for rid in plan.order():
                config = plan.runs[rid]
                models = " + ".join(f"{m.modality} from {m.init}" for m in config.models)
                print(f"{store.status(rid):8} {rid}  {config.method}: {models}  [{', '.join(plan.names[rid])}]")
        return
    cpus = os.cpu_count() or 1
    workers = args.workers if args.workers is not None else (8 if args.device.startswith("cuda") else 0)
    run = Execution(device=args.device, workers=workers, prepare_workers=cpus, progress=progress)
    command = f"nox -s reproduce -- {' '.join(names)} --profile {profile.name}"
    needed = trained = 0
    written, reports = [], {}
    for scale, chosen, dataset, plan in work:
        summary = execute(plan, scale.views, dataset, store, run, args.imagenet, args.force)
        needed, trained = needed + summary.needed, trained + len(summary.trained)
        for table in chosen:
            results = StoredResults(store, plan, scale, table)
            reports[table.id], paths = write_outputs(results, command, args.out / profile.name)
            written += paths
    if names == ["all"]:
        written.append(write_summary([reports[table.id] for table in tables], args.out / profile.name))
    minutes = (time.monotonic() - started) / 60
    reused = needed - trained
    print(f"Done in {minutes:.1f} min: {needed} runs needed, {trained} trained, {reused} reused from {store.root}.")
    print("Tables: " + ", ".join(str(p) for p in written))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `mml` command; bad input ends with a one-line error and exit status 2."""
    parser = argparse.ArgumentParser(prog="mml", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    _reproduce_parser(commands)
    args = parser.parse_args(argv)
    try:
        reproduce(args)
    except MMLError as err:
        print(f"mml: error: {err}", file=sys.stderr)
        return 2
    return 0
