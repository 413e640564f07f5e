"""The command's messages: information on stdout, warnings and errors on stderr, one line each, rank 0 only."""

import logging
import warnings

import pytest

from mml import logs

logger = logging.getLogger("mml.test")


def test_information_goes_to_stdout_and_problems_to_stderr(capsys: pytest.CaptureFixture) -> None:
    logs.configure(rank=0)
    logger.info("3 runs needed")
    logger.warning("skipping video 7: no frames")
    logger.error("specs/table07.toml: runs.B: bad")
    captured = capsys.readouterr()
    assert captured.out == "3 runs needed\n"
    assert captured.err == "mml: warning: skipping video 7: no frames\nmml: error: specs/table07.toml: runs.B: bad\n"


def test_other_ranks_print_errors_only(capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "2")  # as torchrun sets it
    logs.configure()
    logger.info("3 runs needed")
    logger.warning("skipping video 7")
    logger.error("out of memory")
    assert capsys.readouterr() == ("", "mml: error: out of memory\n")
    logs.configure(rank=0)


def test_configuring_again_replaces_the_handler(capsys: pytest.CaptureFixture) -> None:
    logs.configure(rank=0)
    logs.configure(rank=0)
    logger.info("once")
    assert capsys.readouterr().out == "once\n"


def test_warnings_are_logged_in_one_line_each_time(capsys: pytest.CaptureFixture) -> None:
    logs.configure(rank=0)
    with logs.routed_warnings():
        for _ in range(2):
            warnings.warn("annotations.json: skipping entry 901: missing template", stacklevel=1)
    assert capsys.readouterr().err == "mml: warning: annotations.json: skipping entry 901: missing template\n" * 2
