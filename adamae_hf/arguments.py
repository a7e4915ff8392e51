"""The scripts' one argument system: `HfArgumentParser` dataclasses from flags, a YAML/JSON file and presets.

    parser = ArgumentParser((ModelArguments, TrainingArguments), prog="run_x.py")
    model_args, training_args = parser.parse(argv, presets=lambda given: DEMO if given.demo else {})

Values come from, lowest precedence first: the dataclass defaults, the presets, the file named by `--config FILE`
(keys are flag names without the dashes, or their aliases; a lone `FILE.yaml`/`FILE.json` argument means the same),
and the flags. The file is read once. Its values are checked as the flags are, and a bad one is one line naming the
file and the key; they then reach argparse as flags placed before the command line's (transformers' own "args file"
rule: the last occurrence of a flag wins), so a file can give a required argument too. `presets` may be a callable of
what the flags and the file gave (a namespace), for defaults that depend on them: the demo's with `--demo`, the clip
geometry saved beside `--model_name_or_path`.

A field's `metadata={"aliases": ["--old_name"]}` (an `HfArgumentParser` feature) keeps an old spelling working, in
the file too; giving two spellings of one argument in the same place is an error rather than a silent choice.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import types
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Union

import yaml
from transformers.hf_argparser import string_to_bool

from .errors import ArgumentParser as OneLineErrorParser
from .errors import UserError


CONFIG_FLAG = "--config"
CONFIG_FILE_SUFFIXES = (".yaml", ".yml", ".json")
Presets = dict[str, Any] | Callable[[argparse.Namespace], dict[str, Any]] | None


def load_config_file(path: str | os.PathLike) -> dict[str, Any]:
    """A flat mapping of argument names to values from a `.yaml`/`.yml` or `.json` file."""
    path = str(path)
    if not os.path.isfile(path):
        raise UserError(f"{CONFIG_FLAG}: expected a YAML or JSON file of arguments, got {path!r}: no such file.")
    if not path.endswith(CONFIG_FILE_SUFFIXES):
        raise ValueError(f"{CONFIG_FLAG} must be a .yaml, .yml or .json file, got {path!r}.")
    with open(path, encoding="utf-8-sig") as handle:  # -sig: a file saved with a BOM reads the same
        values = json.load(handle) if path.endswith(".json") else yaml.safe_load(handle)
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a mapping of argument names to values, got a {type(values).__name__}.")
    return values


def config_path_in(argv: Sequence[str]) -> str | None:
    """The file `argv` names with `--config FILE` / `--config=FILE` (the last one), or as its lone argument."""
    if len(argv) == 1 and argv[0].endswith(CONFIG_FILE_SUFFIXES) and not argv[0].startswith("-"):
        return argv[0]
    path = None
    for index, argument in enumerate(argv):
        if argument == CONFIG_FLAG and index + 1 < len(argv):
            path = argv[index + 1]
        elif argument.startswith(CONFIG_FLAG + "="):
            path = argument.partition("=")[2]
    return path


# ---------------------------------------------------------------------------------------------------------------------
# What each flag takes, from the dataclass fields (as HfArgumentParser reads them)


@dataclass(frozen=True)
class Flag:
    """One dataclass field as a flag: its spellings, and how a value from a file is checked."""

    name: str
    spellings: tuple[str, ...]  # "--name", then the aliases
    value_type: Any  # int, float, str, bool, an Enum, or None: taken as it is
    choices: tuple | None
    multiple: bool  # a list field: nargs="+"

    def check(self, value: Any, source: str) -> Any:
        """`value` converted as the flag's own parser converts a flag's text; a `UserError` naming `source` and the
        key when it does not fit."""
        items = value if self.multiple and isinstance(value, list) else [value]
        converted = [self._check_item(item, value, source) for item in items]
        return converted if items is value else converted[0]

    def _check_item(self, item: Any, value: Any, source: str) -> Any:
        try:
            if self.value_type is int and isinstance(item, float) and not item.is_integer():
                raise ValueError("int() would truncate it")
            if self.value_type is bool:
                item = item if isinstance(item, bool) else string_to_bool(str(item))
            elif self.value_type is not None and item is not None:
                item = self.value_type(item)
        except (TypeError, ValueError, argparse.ArgumentTypeError):
            expected = getattr(self.value_type, "__name__", "a valid value")
            raise UserError(f"{source}: {self.name} expects {expected}, got {value!r}.") from None
        if isinstance(item, Enum):
            item = item.value
        if self.choices is not None and item not in self.choices:
            raise UserError(f"{source}: {self.name} must be one of {list(self.choices)}, got {value!r}.")
        return item

    def tokens(self, value: Any) -> list[str] | None:
        """`value` (checked) as command-line tokens, or None when no flag text can say it (None, an empty list, a
        dict or a list for a single-valued flag: those become parser defaults, as objects)."""
        if value is None or isinstance(value, dict) or (isinstance(value, list) and (not self.multiple or not value)):
            return None
        if self.multiple:
            return [self.spellings[0], *(_text(item) for item in value)]
        return [f"{self.spellings[0]}={_text(value)}"]


def _text(value: Any) -> str:
    return ("true" if value else "false") if isinstance(value, bool) else str(value)


def field_flag(field: dataclasses.Field, hint: Any) -> Flag:
    """The `Flag` of a dataclass field with the resolved type `hint`."""
    metadata = dict(field.metadata)
    aliases = metadata.get("aliases", [])
    aliases = [aliases] if isinstance(aliases, str) else list(aliases)
    if typing.get_origin(hint) in (Union, types.UnionType):
        options = [option for option in typing.get_args(hint) if option is not type(None)]
        hint = options[0] if len(options) == 1 else None  # several types (str | list[str]): taken as it is
    multiple = isinstance(typing.get_origin(hint), type) and issubclass(typing.get_origin(hint), list)
    if multiple:
        hint = typing.get_args(hint)[0] if typing.get_args(hint) else None
    choices = metadata.get("choices")
    if typing.get_origin(hint) is typing.Literal:
        hint, choices = None, typing.get_args(hint)
    elif isinstance(hint, type) and issubclass(hint, Enum):
        choices = [member.value for member in hint]
    if hint is not None and not isinstance(hint, type):
        hint = None
    return Flag(field.name, (f"--{field.name}", *aliases), hint, tuple(choices) if choices else None, multiple)


def dataclass_flags(dataclass_types: Iterable[type]) -> dict[str, Flag]:
    """Every init field of `dataclass_types` as a `Flag`, keyed by its name and by each alias (without dashes)."""
    flags = {}
    for dataclass_type in dataclass_types:
        hints = typing.get_type_hints(dataclass_type)
        for field in dataclasses.fields(dataclass_type):
            if field.init:
                flag = field_flag(field, hints[field.name])
                flags.update({spelling.lstrip("-"): flag for spelling in flag.spellings})
    return flags


def check_one_spelling(flags: dict[str, Flag], given: Iterable[str], source: str) -> None:
    """A `ValueError` when `given` (flag names without dashes, from one place) holds two spellings of one argument."""
    given = set(given)
    for flag in {flag.name: flag for flag in flags.values()}.values():
        used = [spelling for spelling in flag.spellings if spelling.lstrip("-") in given]
        if len(used) == 2:
            raise ValueError(f"{source}: give either {used[0]} or {used[1]}, not both (they are the same argument).")
        if len(used) > 2:
            raise ValueError(f"{source}: give only one of {', '.join(used)} (they are the same argument).")


def flag_names_in(argv: Sequence[str]) -> list[str]:
    """The flag names (without dashes, before any `=`) among `argv`'s tokens."""
    return [argument[2:].partition("=")[0] for argument in argv if argument.startswith("--")]


# ---------------------------------------------------------------------------------------------------------------------
# The parser


class ArgumentParser(OneLineErrorParser):
    """`HfArgumentParser` with the config-file layer (`parse`), a `--config FILE` flag, no abbreviated flags (a
    prefix of a flag would otherwise be taken for it), and one-line errors (`adamae_hf.errors.ArgumentParser`): a bad
    or unknown flag is a `UserError`, not argparse's usage text hundreds of lines long."""

    def __init__(self, dataclass_types, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(dataclass_types, **kwargs)
        self.flags = dataclass_flags(self.dataclass_types)
        self.add_argument(
            CONFIG_FLAG, metavar="FILE", help="YAML or JSON file of arguments (flag names as keys); flags override it."
        )

    def parse(self, argv: Sequence[str] | None = None, presets: Presets = None) -> tuple[Any, ...]:
        """The dataclasses from `argv` (default: `sys.argv[1:]`), the `--config` file and `presets` (see the module
        docstring). Call it once per parser: it sets the parser's defaults."""
        argv = list(sys.argv[1:] if argv is None else argv)
        config_path = config_path_in(argv)
        if config_path is not None and argv == [config_path]:
            argv = [CONFIG_FLAG, config_path]
        check_one_spelling(self.flags, flag_names_in(argv), "the command line")
        file_tokens, file_objects = self.config_file_values(config_path) if config_path else ([], {})
        self.set_defaults(**file_objects)
        if callable(presets):
            presets = presets(self.parse_known_args(file_tokens + argv)[0])
        self.set_defaults(**{**(presets or {}), **file_objects})
        parsed = self.parse_args_into_dataclasses(args=file_tokens + argv)
        return parsed[: len(self.dataclass_types)]  # without the namespace that holds `config`

    def config_file_values(self, path: str) -> tuple[list[str], dict[str, Any]]:
        """The file's values, checked: as flag tokens, and those no flag text can say (as objects)."""
        values = load_config_file(path)
        unknown = sorted(set(values) - set(self.flags))
        if unknown:
            raise ValueError(
                f"{path}: unknown argument(s) {', '.join(unknown)}; every key must be one of the script's flags "
                "without the leading dashes (see --help)."
            )
        check_one_spelling(self.flags, values, path)
        tokens, objects = [], {}
        for key, value in values.items():
            flag = self.flags[key]
            value = flag.check(value, path)
            flag_tokens = flag.tokens(value)
            if flag_tokens is None:
                objects[flag.name] = value
            else:
                tokens += flag_tokens
        return tokens, objects


__all__ = [
    "ArgumentParser",
    "CONFIG_FLAG",
    "Flag",
    "check_one_spelling",
    "config_path_in",
    "dataclass_flags",
    "flag_names_in",
    "load_config_file",
]
