"""The suite's first CUDA run in one command: the CUDA-only tests, training throughput, the torch TV-L1 against
OpenCV, and `mml reproduce table7 --device cuda` on the smoke data (default settings and `--baseline`).

Each step runs as its own process under its own timeout, capped by what is left of the total budget, so a step
that fails, hangs or crashes loses only its own figures; the steps' processes (and what they started) are killed at
their timeout. After every step the report is written again under `--out`:

- `gpu_check.json`: the environment, each step's status and seconds, and every figure the steps produced;
- `gpu_check.md`: the same as tables, with the issue's targets marked met / missed;
- `gpu_check.log`: every step's command and output.

    bash benchmark/gpu_check.sh "$OUT"                        # on the GPU machine: see that script's header
    python benchmark/gpu_check.py --out DIR --tiny --table7-specs SPECS --table7-profile micro   # CPU smoke run
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARK = ROOT / "benchmark"

# The tests that only run on a GPU (each skips without one): compiled equals eager, bf16 losses, the temporal shift
# in channels_last, tensor inputs built on the device, the torch TV-L1 on the device.
CUDA_TESTS = (
    "tests/test_execution.py::test_compiled_step_equals_eager",
    "tests/test_modalities.py::test_tensor_source_matches_numpy[cuda]",
    "tests/test_cuda.py",
)

ENVIRONMENT = """
import json, os, platform
import cv2, numpy, torch, torchvision
try:
    import av
    pyav = av.__version__
except ImportError as error:
    pyav = f"missing ({error})"
cuda = torch.cuda.is_available()
print(json.dumps({
    "python": platform.python_version(),
    "torch": torch.__version__,
    "torchvision": torchvision.__version__,
    "numpy": numpy.__version__,
    "opencv": cv2.__version__ + (" with contrib" if hasattr(cv2, "optflow") else " without contrib (no cv2.optflow)"),
    "pyav": pyav,
    "device": torch.cuda.get_device_name() if cuda else "cpu",
    "cuda": torch.version.cuda if cuda else None,
    "cpus": os.cpu_count(),
}))
"""


@dataclass(frozen=True)
class Step:
    """One command of the check: which part of the issue it serves, its command line and its own timeout."""

    name: str
    part: str
    command: list[str]
    timeout: float
    figures: Path | None = None  # the file the command writes its figures to: JSON, or pytest's JUnit XML
    table: Path | None = None  # the Markdown table the command writes


@dataclass
class Outcome:
    """How a step ended: passed / failed / timed out / not run, its seconds, the last lines of its output, and
    what it measured."""

    status: str
    seconds: float
    tail: list[str] = field(default_factory=list)
    figures: dict | None = None
    table: str | None = None


def plan(args: argparse.Namespace, work: Path) -> list[Step]:
    """The steps in the order they run: the tests and a user's first command in its plain form (fp32 eager) first,
    then the two measurements, and last the most expensive step, Table 7 in the default (compiled) settings."""
    python, device = sys.executable, "cpu" if args.tiny else "cuda"
    tests = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={work / 'tests.xml'}", *CUDA_TESTS]
    flow = [python, str(BENCHMARK / "flow_throughput.py"), "--device", device, "--profile"]
    flow += ["--json", str(work / "flow.json")]
    if args.flow_reference:
        flow += ["--reference", str(args.flow_reference)]
    throughput = [python, str(BENCHMARK / "gpu_throughput.py"), "--device", device]
    throughput += ["--json", str(work / "throughput.json")]
    if args.tiny:
        flow += ["--pairs", "1", "--batch", "1", "--modes", "eager", "--threads", "1"]
        flow += ["--height", "32", "--width", "40"]
        throughput += ["--tiny", "--settings", "fp32-eager,bf16-cl-eager", "--groups", "pair"]
        throughput += ["--warmup", "0", "--steps", "1", "--workers", "0"]
    else:
        flow += ["--pairs", "128", "--batch", "64", "--modes", "eager,compiled", "--threads", "2"]
        throughput += ["--settings", "fp32-eager,bf16-cl-compile", "--warmup", "3", "--steps", "10"]
        throughput += ["--workers", "14", "--videos-per-class", "2"]
    mml = [python, "-m", "mml"]
    shared = ["--profile", args.table7_profile, "--specs", str(args.table7_specs), "--no-progress"]
    shared += ["--data", str(work / "data"), "--cache", str(work / "cache")]  # one data set and cache for all three
    prepare = [*mml, "prepare", "sthv2", *shared, "--store", str(work / "store-prepare"), "--flow", "torch"]
    prepare += ["--flow-device", device, "--workers", "1" if args.tiny else "8"]
    extra = [f"--set={item}" for item in args.table7_set]
    # The CUDA default is bf16 + channels_last + compile; the CPU run takes the first two (compiling takes minutes).
    default = ["--precision", "bf16", "--channels-last"] if args.tiny else []

    def reproduce(name: str, *flags: str) -> Step:
        folders = ["--store", str(work / f"store-{name}"), "--out", str(work / f"tables-{name}")]
        command = [*mml, "reproduce", "table7", *shared, *folders, "--device", device, *extra, *flags]
        table = work / f"tables-{name}" / args.table7_profile / "table07.md"
        return Step(f"table7-{name}", TABLE7, command, args.timeouts[f"table7-{name}"], table=table)

    return [
        Step("tests", "1. CUDA-only tests", tests, args.timeouts["tests"], figures=work / "tests.xml"),
        Step("table7-prepare", TABLE7, prepare, args.timeouts["table7-prepare"]),
        reproduce("baseline", "--baseline"),
        Step("flow", "3. TV-L1", flow, args.timeouts["flow"], figures=work / "flow.json"),
        Step("throughput", "2. training throughput", throughput, args.timeouts["throughput"], work / "throughput.json"),
        reproduce("default", *default),
    ]


TABLE7 = "4. Table 7"
TIMEOUTS = {  # seconds, each capped by what is left of --budget
    "tests": 100,
    "table7-prepare": 60,
    "table7-baseline": 100,
    "flow": 100,
    "throughput": 240,  # compiling TSM-R50 (RGB, Flow) and ResNet-50 dominates
    "table7-default": 150,
}


def run_step(step: Step, timeout: float, log: Path, environment: dict[str, str]) -> Outcome:
    """Run `step` for at most `timeout` seconds, its output appended to `log`; at the timeout its whole process
    group is killed (DataLoader workers and preparation processes included)."""
    with log.open("a") as handle:
        handle.write(f"\n=== {step.name} (timeout {timeout:.0f} s): {' '.join(step.command)}\n")
        handle.flush()
        started = time.monotonic()
        process = subprocess.Popen(
            step.command, cwd=ROOT, stdout=handle, stderr=subprocess.STDOUT, env=environment, start_new_session=True
        )
        try:
            code = process.wait(timeout=timeout)
            status = "passed" if code == 0 else f"failed (exit {code})"
        except subprocess.TimeoutExpired:
            status = f"timed out after {timeout:.0f} s"
        _kill_group(process)
        seconds = time.monotonic() - started
        handle.write(f"=== {step.name}: {status} in {seconds:.1f} s\n")
    return Outcome(status, seconds)


def _kill_group(process: subprocess.Popen) -> None:
    """Kill what is left of the step's process group (its own processes only: the group is the step's session)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def step_output(log: Path, name: str) -> list[str]:
    """The output lines of step `name` in the log."""
    lines = log.read_text(errors="replace").splitlines()
    start = max(i for i, line in enumerate(lines) if line.startswith(f"=== {name} (timeout"))
    return lines[start + 1 : -1]


def read_figures(step: Step, outcome: Outcome, output: list[str]) -> None:
    """What the step measured, from the files it wrote (if it got that far) and its output."""
    outcome.tail = output[-15:]
    if step.figures is not None and step.figures.is_file():
        try:
            is_xml = step.figures.suffix == ".xml"
            outcome.figures = junit_counts(step.figures) if is_xml else json.loads(step.figures.read_text())
        except (ElementTree.ParseError, json.JSONDecodeError) as error:  # a process killed while writing it
            outcome.tail.append(f"gpu_check: {step.figures.name} unreadable: {error}")
    if step.table is not None and step.table.is_file():
        outcome.table = step.table.read_text()
    if step.name.startswith("table7"):
        done = [line for line in output if line.startswith("Done in")]
        outcome.figures = {
            "done": done[-1] if done else None,
            "recompile_limit_warnings": sum("recompile_limit" in line or "cache_size_limit" in line for line in output),
        }


def junit_counts(path: Path) -> dict:
    """Passed / failed / skipped counts of a pytest JUnit XML report and each failure's first line."""
    cases = ElementTree.parse(path).getroot().iter("testcase")
    counts, failures = {"passed": 0, "failed": 0, "skipped": 0}, []
    for case in cases:
        name = f"{case.get('classname')}::{case.get('name')}"
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            counts["failed"] += 1
            message = (problem.get("message") or problem.tag).splitlines()
            failures.append(f"{name}: {message[0] if message else problem.tag}")
        elif case.find("skipped") is not None:
            counts["skipped"] += 1
        else:
            counts["passed"] += 1
    return {**counts, "failures": failures}


def environment_record(environment: dict[str, str]) -> dict:
    """Versions, device and commit, read in a child process (this one never touches the GPU)."""
    try:
        found = subprocess.run(
            [sys.executable, "-c", ENVIRONMENT], capture_output=True, text=True, env=environment, timeout=120
        )
        record = json.loads(found.stdout) if found.returncode == 0 else {"error": found.stderr.strip()[-500:]}
    except (subprocess.TimeoutExpired, json.JSONDecodeError) as error:
        record = {"error": str(error)}
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10)
        record["commit"] = commit.stdout.strip() or "unknown (no git checkout here)"
    except (OSError, subprocess.TimeoutExpired):
        record["commit"] = "unknown (no git here)"
    record["date"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="minutes")
    return record


def write_report(out: Path, record: dict, steps: list[Step], outcomes: dict[str, Outcome]) -> None:
    """`gpu_check.json` and `gpu_check.md` from what has run so far."""
    report = {
        **record,
        "steps": [
            {"name": s.name, "part": s.part, "command": " ".join(s.command), **vars(outcomes[s.name])}
            for s in steps
            if s.name in outcomes
        ],
    }
    (out / "gpu_check.json").write_text(json.dumps(report, indent=1) + "\n")
    (out / "gpu_check.md").write_text(markdown(report))


def markdown(report: dict) -> str:
    """The report as Markdown: the environment, every step, and each part's figures with the targets marked."""
    steps = {step["name"]: step for step in report["steps"]}
    env = report.get("environment", {})
    lines = [
        f"# GPU check, {report['date']}",
        "",
        f"Device {env.get('device', '?')} (CUDA {env.get('cuda')}, {env.get('cpus')} CPUs); Python "
        f"{env.get('python')}, torch {env.get('torch')}, torchvision {env.get('torchvision')}, numpy "
        f"{env.get('numpy')}, OpenCV {env.get('opencv')}, PyAV {env.get('pyav')}; commit {env.get('commit')}. "
        f"Mode: {report['mode']}; {report['spent_s']:.0f} s of the {report['budget_s']:.0f} s budget.",
        "",
        "| step | part | status | seconds |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {s['name']} | {s['part']} | {s['status']} | {s['seconds']:.1f} |" for s in report["steps"]]
    if "error" in env:
        lines += ["", f"Environment not read: {env['error']}"]
    lines += _tests_section(steps.get("tests"))
    lines += _throughput_section(steps.get("throughput"))
    lines += _flow_section(steps.get("flow"))
    lines += _table7_section([steps[name] for name in steps if name.startswith("table7")])
    failed = [s for s in report["steps"] if s["status"] != "passed"]
    for step in failed:
        lines += ["", f"### Last output of {step['name']} ({step['status']})", "", "```", *step["tail"], "```"]
    return "\n".join(lines) + "\n"


def _tests_section(step: dict | None) -> list[str]:
    lines = ["", "## 1. CUDA-only tests", ""]
    if not step or not step["figures"]:
        return [*lines, "Not measured."]
    counts = step["figures"]
    lines.append(f"{counts['passed']} passed, {counts['failed']} failed, {counts['skipped']} skipped.")
    return lines + [f"- {failure}" for failure in counts["failures"]]


def _verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("**met**" if met else "**missed**")


def _number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _throughput_section(step: dict | None) -> list[str]:
    lines = ["", "## 2. Training throughput (`benchmark/gpu_throughput.py`)", ""]
    if not step or not step["figures"]:
        return [*lines, "Not measured."]
    figures = step["figures"]
    scale = figures["scale"]
    lines += [
        f"{scale['arch']} {scale['segments']}x{scale['size']}, batch {scale['batch']}, {figures['warmup']} warm-up "
        f"and {figures['steps']} timed steps, {figures['workers']} loader workers, on {figures['device']}.",
        "",
        "| group | setting | input | clips/s (pairs/s) | peak GiB | GFLOP/clip | TFLOP/s |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in figures["rows"]:
        lines.append(
            f"| {row['group']} | {row['setting']} | {row['input']} | {row['clips_per_second']:.2f} | "
            f"{_number(row['peak_gib'], 1)} | {row['gflop_per_clip']:.3g} | {row['tflops']:.3g} |"
        )
    ceiling = figures["resnet50"]
    if ceiling is None:
        lines += ["", "Ceiling: not measured."]
    else:
        lines += [
            "",
            f"Ceiling: torchvision ResNet-50 image training, {ceiling['setting']}, {ceiling['images']} images of "
            f"{ceiling['size']} px: {ceiling['images_per_second']:.1f} images/s = "
            f"{ceiling['clip_equivalents_per_second']:.2f} clip equivalents/s.",
        ]
    lines += [
        "",
        "| target | ratio | at least | verdict |",
        "| --- | --- | --- | --- |",
    ]
    lines += [
        f"| {r['name']} | {_number(r['ratio'])} | {r['at_least']:g} | {_verdict(r['met'])} |" for r in figures["ratios"]
    ]
    return lines


def _flow_section(step: dict | None) -> list[str]:
    lines = ["", "## 3. TV-L1 (`benchmark/flow_throughput.py`)", ""]
    if not step or not step["figures"]:
        return [*lines, "Not measured."]
    figures = step["figures"]
    opencv = figures["opencv"]
    lines += [
        f"{figures['size']} pairs; OpenCV DualTVL1 on the CPU, {opencv['threads']} threads, {opencv['opencv']}: "
        f"{opencv['pairs_per_second']:.2f} pairs/s over {opencv['pairs']} pairs ({opencv['origin']}). Torch on "
        f"{figures['device']}: {figures['timed_pairs']} pairs in batches of {figures['batch']}.",
        "",
        "| mode | pairs/s | speed-up | mean EPE px | worst pair px | >= 100x at EPE <= 0.3 px |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for mode, result in figures["modes"].items():
        lines.append(
            f"| {mode} | {result['pairs_per_second']:.2f} | {result['speedup']:.2f}x | {result['epe_mean']:.4f} | "
            f"{result['epe_worst_pair']:.4f} | {_verdict(result['target']['met'])} |"
        )
    profiled = {mode: result["profile"] for mode, result in figures["modes"].items() if "profile" in result}
    if profiled:
        lines += [
            "",
            "One warp at the finest scale of one warm batch, under torch.profiler:",
            "",
            "| mode | pairs | wall s | device kernel s | kernel launches | scalar reads | stream syncs |",
            "| --- | --- | --- | --- | --- | --- | --- |",
        ]
        lines += [
            f"| {mode} | {p['pairs']} | {p['wall_s']:.3f} | {p['device_kernel_s']:.3f} | {p['kernel_launches']} | "
            f"{p['scalar_reads']} | {p['stream_syncs']} |"
            for mode, p in profiled.items()
        ]
        for mode, record in profiled.items():
            operators = [
                f"{op['name']} x{op['calls']} ({op['self_device_ms']:.1f} ms device, {op['self_cpu_ms']:.1f} ms host)"
                for op in record["top"][:6]
            ]
            lines += ["", f"Top operators, {mode}: {'; '.join(operators)}."]
    return lines


def _table7_section(steps: list[dict]) -> list[str]:
    lines = ["", "## 4. `mml reproduce table7` on the smoke data", ""]
    if not steps:
        return [*lines, "Not run."]
    lines += [
        "| step | status | seconds | runner's summary | recompile-limit warnings |",
        "| --- | --- | --- | --- | --- |",
    ]
    for step in steps:
        figures = step["figures"] or {}
        lines.append(
            f"| {step['name']} | {step['status']} | {step['seconds']:.1f} | {figures.get('done') or ''} | "
            f"{figures.get('recompile_limit_warnings', '')} |"
        )
    for step in steps:
        if step["table"]:
            lines += ["", f"### The table of {step['name']}", "", step["table"].strip()]
    return lines


def _timeouts(text: str) -> dict[str, float]:
    """`--timeouts name=seconds,...` over the defaults."""
    chosen = dict(TIMEOUTS)
    for item in filter(None, text.split(",")):
        name, _, seconds = item.partition("=")
        if name not in TIMEOUTS or not seconds.replace(".", "", 1).isdigit():
            raise argparse.ArgumentTypeError(f"expected NAME=SECONDS with NAME one of {', '.join(TIMEOUTS)}: {item!r}")
        chosen[name] = float(seconds)
    return chosen


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, required=True, help="where the report goes ($OUT on the device)")
    parser.add_argument("--tiny", action="store_true", help="every step on the CPU at toy sizes (the test suite's run)")
    parser.add_argument("--budget", type=float, default=420, help="seconds for all steps together (default 420)")
    parser.add_argument("--timeouts", type=_timeouts, default=dict(TIMEOUTS), help="NAME=SECONDS,... per step")
    parser.add_argument("--only", help="comma-separated step names to run, in the usual order (default: all)")
    parser.add_argument("--flow-reference", type=Path, help="OpenCV reference of flow_throughput --save-reference")
    parser.add_argument("--table7-specs", type=Path, default=ROOT / "reproductions", help="specs and profiles.toml")
    parser.add_argument("--table7-profile", default="smoke", help="profile of the Table 7 steps (default smoke)")
    parser.add_argument("--table7-set", action="append", default=[], metavar="KEY=VALUE", help="profile override")
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed at the end)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    environment["PYTHONUNBUFFERED"] = "1"
    log = args.out / "gpu_check.log"
    log.write_text("")
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu-check-") as temporary:
        work = args.work or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        steps = plan(args, work)
        if args.only:
            chosen = set(args.only.split(","))
            if unknown := chosen - {s.name for s in steps}:
                parser.error(f"--only: unknown step {', '.join(sorted(unknown))}")
            if chosen & {"table7-baseline", "table7-default"}:
                chosen.add("table7-prepare")  # they read the cache it fills (the scratch folder is new each run)
            steps = [s for s in steps if s.name in chosen]
        record = {
            "mode": "tiny (CPU)" if args.tiny else "full (CUDA)",
            "budget_s": args.budget,
            "environment": environment_record(environment),
        }
        record["date"] = record["environment"]["date"]
        outcomes: dict[str, Outcome] = {}
        for step in steps:
            left = args.budget - (time.monotonic() - started)
            if left < 5:
                outcomes[step.name] = Outcome("not run: budget spent", 0.0)
            else:
                outcomes[step.name] = run_step(step, min(step.timeout, left), log, environment)
                read_figures(step, outcomes[step.name], step_output(log, step.name))
            record["spent_s"] = time.monotonic() - started
            write_report(args.out, record, steps, outcomes)
            print(f"{step.name}: {outcomes[step.name].status} ({outcomes[step.name].seconds:.1f} s)", flush=True)
    print((args.out / "gpu_check.md").read_text())
    return 0 if all(outcome.status == "passed" for outcome in outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
