"""The SLURM launcher's parts that need no cluster: its options (flags over a `[slurm]` table), the arguments its
jobs repeat, the batch scripts it writes, the requeue limit and the states SLURM reports."""

import argparse
import os
import signal
from pathlib import Path

import pytest

from mml.errors import MMLError
from mml.slurm import commands, requeue
from mml.slurm.executor import SlurmOptions, add_slurm_arguments, batch_script, job_arguments, slurm_options


def parsed(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_slurm_arguments(parser)
    return parser.parse_args(list(argv))


def test_flags_override_the_slurm_table_of_a_config_file(tmp_path: Path) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text('[slurm]\npartition = "gpu"\ngpus_per_run = 4\nextra = ["--qos=high"]\nmax_failures = 5\n')
    options = slurm_options(parsed("--slurm-config", str(config), "--gpus-per-run", "8", "--account", "lab"))
    assert options == SlurmOptions(
        partition="gpu", account="lab", gpus_per_run=8, extra=("--qos=high",), max_failures=5
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[slurm]\npartitoin = "gpu"\n', "unknown keys partitoin"),
        ("[slurm]\ngpus_per_run = -1\n", "gpus_per_run: expected a positive integer"),
        ("[slurm\n", "cannot read the SLURM options"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_it(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "cluster.toml"
    config.write_text(text)
    with pytest.raises(MMLError, match=message) as error:
        slurm_options(parsed("--slurm-config", str(config)))
    assert "\n" not in str(error.value) and str(error.value).startswith(str(config))


def test_jobs_repeat_the_command_without_the_launcher_options() -> None:
    given = ["table7", "--profile", "paper", "--launcher", "slurm", "--partition=gpu", "--time", "1:00:00"]
    given += ["--devices", "cuda:0,cuda:1", "--sbatch-option", "--qos=high", "--seeds", "0,1,2"]
    assert job_arguments(given) == ["table7", "--profile", "paper", "--seeds", "0,1,2"]
    for refused in ("--force", "--dry-run"):
        with pytest.raises(MMLError, match=f"{refused} with --launcher slurm"):
            job_arguments(["table7", refused])


def test_a_run_over_several_gpus_starts_torchrun_and_one_process_execs_itself() -> None:
    options = SlurmOptions(partition="gpu", time="24:00:00", gpus_per_run=8, nodes_per_run=2, extra=("--qos=high",))
    command = ["-m", "mml", "reproduce", "table7", "--run", "abc"]
    script = batch_script(
        options, "abc", Path("/s/slurm/logs/abc-%j.out"), "/venv/python", command, Path("/w"), requeue=True
    )
    lines = script.splitlines()
    for line in ("#SBATCH --nodes=2", "#SBATCH --gpus-per-node=8", "#SBATCH --time=24:00:00", "#SBATCH --requeue"):
        assert line in lines
    assert "#SBATCH --qos=high" in lines and "#SBATCH --signal=USR2@120" in lines
    assert lines[-1].startswith("exec srun --kill-on-bad-exit=1 /venv/python -m torch.distributed.run")
    assert "--nproc-per-node=8" in lines[-1] and lines[-1].endswith("-m mml reproduce table7 --run abc")

    single = batch_script(
        SlurmOptions(gpus_per_run=1), "abc", Path("log"), "/venv/python", command, Path("/w"), requeue=True
    )
    assert "#SBATCH --signal=B:USR2@120" in single  # the batch shell is our process: exec
    assert single.splitlines()[-1] == "exec /venv/python -m mml reproduce table7 --run abc"
    data = batch_script(SlurmOptions(time="24:00:00"), "prep", Path("log"), "/p", ["-m", "mml"], Path("/w"), 0, 1)
    assert "--gpus-per-node" not in data and "--time" not in data and "--requeue" not in data


def test_a_job_requeues_itself_on_the_signal_and_fails_past_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[str] = []
    monkeypatch.setattr(commands, "requeue", asked.append)
    with requeue.requeued_on_signal({"SLURM_JOB_ID": "42", "SLURM_RESTART_COUNT": "1", "MML_MAX_REQUEUES": "3"}):
        os.kill(os.getpid(), signal.SIGUSR2)
    assert asked == ["42"]
    assert signal.getsignal(signal.SIGUSR2) is not requeue._stop  # the handler is gone after the block

    with pytest.raises(MMLError, match="after 3 requeues"):
        with requeue.requeued_on_signal({"SLURM_JOB_ID": "42", "SLURM_RESTART_COUNT": "3", "MML_MAX_REQUEUES": "3"}):
            os.kill(os.getpid(), signal.SIGUSR2)
    assert asked == ["42"]

    with requeue.requeued_on_signal({}):  # outside SLURM: nothing installed
        assert signal.getsignal(signal.SIGUSR2) is not requeue._stop


def test_elapsed_times_and_states_as_slurm_writes_them() -> None:
    assert [commands._seconds(t) for t in ("0:07", "1:02:03", "2-00:00:01", "INVALID")] == [7, 3723, 172801, 0]
    assert commands.JobState("REQUEUED").active and commands.JobState("PENDING").active
    assert not any(commands.JobState(s).active for s in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "GONE"))
    environment = commands.submission_environment({"SLURM_JOB_ID": "1", "SLURM_CONF": "/c", "PATH": "/bin"})
    assert environment == {"SLURM_CONF": "/c", "PATH": "/bin"}  # a job submitted from a job does not inherit it
