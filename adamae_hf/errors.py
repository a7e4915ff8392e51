"""User mistakes as one line, for the command-line entry points (`run_pretrain.py`, `run_finetune.py`, `adamae-*`).

    from adamae_hf.errors import UserError, run_cli

    def main(argv=None): ...                  # raises UserError("expected X, got Y") on a user mistake
    if __name__ == "__main__":
        sys.exit(run_cli(main))

`run_cli` calls `main(argv)` and turns a user mistake into one line on stderr (`error: ...`) and exit status 1. A
user mistake is a `UserError`, or one of the exceptions that validation raises for bad input (`ValueError`, `OSError`
such as a missing file or an unreachable Hub, YAML syntax errors, undecodable videos). Anything else is a bug and keeps
its traceback. `--debug` anywhere in the arguments (removed before `main` sees them), or the root logger at DEBUG,
shows the traceback of user mistakes too. `check_model_source(name_or_path, flag)` rejects a model folder that does
not exist (and is no Hub id) in those terms.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Callable, Sequence

import yaml
from huggingface_hub.errors import HFValidationError
from huggingface_hub.utils import validate_repo_id
from transformers import HfArgumentParser

from .data.decoding import VideoDecodeError


DEBUG_FLAG = "--debug"
BOOLEAN_WORDS = {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}
EXIT_USER_ERROR = 1


class UserError(Exception):
    """A mistake in the user's input (arguments, files, credentials): its message says what was expected and what came,
    and `run_cli` shows only that message."""


# What validation raises for bad input, besides UserError. A bug that raises one of these shows as one line too; the
# line ends with a pointer to --debug for that case.
USER_ERROR_TYPES: tuple[type[BaseException], ...] = (UserError, ValueError, OSError, yaml.YAMLError, VideoDecodeError)


def one_line(error: BaseException) -> str:
    """The error's message on one line (whitespace runs, newlines included, become one space); the type's name when
    the message is empty, and a missing file's name for a bare `FileNotFoundError(2, ..., name)`."""
    if isinstance(error, FileNotFoundError) and error.filename is not None:
        message = f"No such file or directory: {error.filename}"
    else:
        message = str(error)
    message = " ".join(message.split())
    return message or type(error).__name__


def check_model_source(name_or_path: str, flag: str = "--model_name_or_path") -> None:
    """Raise a `UserError` when `name_or_path` is neither an existing path nor a valid Hub id: a local folder that does
    not exist would otherwise reach huggingface_hub as a repo id and fail with "Repo id must be in the form ..."."""
    if os.path.exists(name_or_path):
        return
    try:
        validate_repo_id(name_or_path)
    except HFValidationError:
        raise UserError(
            f"{flag}: expected a model folder or a Hub id ('name' or 'user/name'), got {name_or_path!r}: no such "
            "folder, and not a valid Hub id."
        ) from None


def split_debug_flag(argv: Sequence[str]) -> tuple[bool, list[str]]:
    """(whether `--debug` asks for tracebacks, the arguments without it): `--debug`, `--debug true|false` and
    `--debug=true|false` are ours; `--debug VALUE` with another value (transformers' `TrainingArguments.debug`, e.g.
    `underflow_overflow`) is left for the script's parser."""
    debug, rest, arguments = False, [], list(argv)
    index = 0
    while index < len(arguments):
        argument = arguments[index]
        name, equals, value = argument.partition("=")
        following = arguments[index + 1].lower() if index + 1 < len(arguments) else None
        if name == DEBUG_FLAG and equals and value.lower() in BOOLEAN_WORDS:
            debug = debug or BOOLEAN_WORDS[value.lower()]
        elif argument == DEBUG_FLAG and following in BOOLEAN_WORDS:
            debug, index = debug or BOOLEAN_WORDS[following], index + 1
        elif argument == DEBUG_FLAG and (following is None or following.startswith("-")):
            debug = True
        else:
            rest.append(argument)
        index += 1
    return debug, rest


def debug_requested(argv: Sequence[str]) -> bool:
    """`--debug` among the arguments (see `split_debug_flag`), or the root logger at DEBUG."""
    return split_debug_flag(argv)[0] or logging.getLogger().isEnabledFor(logging.DEBUG)


class ArgumentParser(HfArgumentParser):
    """`HfArgumentParser` whose usage errors (a bad or unknown flag) are one-line `UserError`s: argparse would print
    a usage text hundreds of flags long before the line that matters."""

    def error(self, message: str):
        raise UserError(f"{message} ({self.prog} --help lists the arguments)")


def run_cli(main: Callable[[list[str]], object], argv: Sequence[str] | None = None) -> int:
    """Run `main(argv)` (default: `sys.argv[1:]`, without `--debug`) and return the exit status for `sys.exit`: 0, or
    1 after printing a user mistake as `error: <message>` on stderr. With `--debug` or a DEBUG root logger the
    traceback is printed too. Other exceptions propagate (with their traceback); `SystemExit` (argparse's usage
    errors, `--help`) passes through."""
    debug, arguments = split_debug_flag(sys.argv[1:] if argv is None else argv)
    try:
        main(arguments)
    except USER_ERROR_TYPES as error:
        if debug or debug_requested(()):  # also a DEBUG level that main itself set
            traceback.print_exc(file=sys.stderr)
        hint = "" if isinstance(error, UserError) or debug else f" (rerun with {DEBUG_FLAG} for the traceback)"
        print(f"error: {one_line(error)}{hint}", file=sys.stderr)
        return EXIT_USER_ERROR
    return 0


__all__ = [
    "ArgumentParser",
    "DEBUG_FLAG",
    "EXIT_USER_ERROR",
    "USER_ERROR_TYPES",
    "UserError",
    "check_model_source",
    "debug_requested",
    "one_line",
    "run_cli",
    "split_debug_flag",
]
