"""run_cli: a user's mistake is one line and exit status 1; --debug (or DEBUG logging) adds the traceback; bugs keep
their traceback."""

import logging

import pytest
import yaml

from adamae_hf.data import VideoDecodeError
from adamae_hf.errors import ArgumentParser, UserError, check_model_source, one_line, run_cli, split_debug_flag


def failing_main(error):
    def main(argv):
        raise error

    return main


@pytest.mark.parametrize(
    "error, expected",
    [
        (UserError("expected a folder, got /nope"), "error: expected a folder, got /nope"),
        (ValueError("crop_size must be <= 4096,\n  got 10**9"), "error: crop_size must be <= 4096, got 10**9"),
        (FileNotFoundError(2, "No such file", "train.csv"), "error: No such file or directory: train.csv"),
        (VideoDecodeError("a.mp4", "no video stream"), "error: a.mp4: no video stream"),
        (yaml.YAMLError("bad indentation"), "error: bad indentation"),
    ],
)
def test_user_mistake_is_one_line_without_traceback(capsys, error, expected):
    assert run_cli(failing_main(error), []) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith(expected)
    assert "Traceback" not in err


def test_debug_flag_shows_traceback_and_is_not_passed_on(capsys):
    seen = []

    def main(argv):
        seen.append(argv)
        raise UserError("expected X, got Y")

    assert run_cli(main, ["--demo", "--debug"]) == 1
    assert seen == [["--demo"]]
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().endswith("error: expected X, got Y")


def test_debug_log_level_shows_traceback(capsys):
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    try:
        assert run_cli(failing_main(ValueError("bad")), []) == 1
    finally:
        root.setLevel(level)
    assert "Traceback" in capsys.readouterr().err


def test_bugs_keep_their_traceback_and_success_returns_zero():
    with pytest.raises(ZeroDivisionError):
        run_cli(failing_main(ZeroDivisionError("bug")), [])
    with pytest.raises(SystemExit):  # argparse's usage errors keep argparse's message and status
        run_cli(failing_main(SystemExit(2)), [])
    assert run_cli(lambda argv: None, ["--x"]) == 0


def test_one_line_names_the_type_of_an_empty_message():
    assert one_line(ValueError()) == "ValueError"


def test_check_model_source_names_a_missing_folder(tmp_path):
    check_model_source(str(tmp_path))  # an existing folder
    check_model_source("user/adamae-vit-b")  # a Hub id: left to the Hub
    with pytest.raises(UserError, match=r"--config_name: expected a model folder or a Hub id .*'/no/such/folder'"):
        check_model_source("/no/such/folder", "--config_name")


@pytest.mark.parametrize(
    "argv, debug, rest",
    [
        (["--debug"], True, []),
        (["--debug", "--demo"], True, ["--demo"]),
        (["--debug", "true", "--demo"], True, ["--demo"]),
        (["--debug", "False"], False, []),
        (["--debug=yes"], True, []),
        (["--debug", "underflow_overflow"], False, ["--debug", "underflow_overflow"]),  # TrainingArguments' own
        (["--log_steps", "3"], False, ["--log_steps", "3"]),
    ],
)
def test_the_debug_flag_takes_a_boolean_and_leaves_other_values_to_the_script(argv, debug, rest):
    assert split_debug_flag(argv) == (debug, rest)


def test_a_bad_flag_value_is_one_line_not_the_usage_text(capsys):
    from dataclasses import dataclass

    @dataclass
    class Arguments:
        log_steps: int = 1

    def main(argv):
        ArgumentParser(Arguments, prog="tool.py").parse_args_into_dataclasses(argv)

    assert run_cli(main, ["--log_steps", "abc"]) == 1
    captured = capsys.readouterr()
    assert captured.err.strip() == (
        "error: argument --log_steps/--log-steps: invalid int value: 'abc' (tool.py --help lists the arguments)"
    )
    assert "usage:" not in captured.out + captured.err
