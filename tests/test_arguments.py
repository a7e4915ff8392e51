"""The scripts' argument system: flags over a --config file over presets over defaults, aliases, checked file values."""

import json
from dataclasses import dataclass, field

import pytest
from transformers import TrainingArguments

from adamae_hf.arguments import ArgumentParser, config_path_in
from adamae_hf.errors import UserError


@dataclass
class Sizes:
    model_name: str  # required
    width: int = 8
    depth: int | None = None
    tags: list[str] | None = None
    mode: str = field(default="a", metadata={"choices": ["a", "b"]})
    logging_steps: int = field(default=1, metadata={"aliases": ["--log_steps"]})
    demo: bool = False


def parse(argv, presets=None):
    return ArgumentParser(Sizes, prog="tool.py").parse(argv, presets=presets)[0]


def write(path, text):
    path.write_text(text)
    return str(path)


def test_flags_override_the_file_which_overrides_presets_which_override_defaults(tmp_path):
    config = write(tmp_path / "run.yaml", "model_name: from-file\nwidth: 16\ntags: [x, y]\n")
    presets = {"width": 4, "depth": 3, "mode": "b"}
    sizes = parse(["--config", config, "--mode", "a"], presets)
    assert (sizes.model_name, sizes.width, sizes.depth, sizes.tags, sizes.mode) == (
        "from-file",
        16,
        3,
        ["x", "y"],
        "a",
    )
    assert parse([f"--config={config}", "--width", "2"]).width == 2
    assert parse([config]).model_name == "from-file"  # a lone file argument is --config FILE
    assert config_path_in(["--config", "a.yaml", "--config", "b.json"]) == "b.json"


def test_presets_may_depend_on_what_the_flags_and_the_file_gave(tmp_path):
    config = write(tmp_path / "run.json", json.dumps({"model_name": "m", "demo": True}))
    seen = []

    def demo_presets(given):
        seen.append((given.model_name, given.demo))
        return {"width": 99} if given.demo else {}

    assert parse(["--config", config], demo_presets).width == 99
    assert parse(["--config", config, "--demo", "false"], demo_presets).width == 8
    assert seen == [("m", True), ("m", False)]


def test_an_old_name_is_an_alias_in_flags_and_files_but_not_twice_in_one_place(tmp_path):
    assert parse(["--model_name", "m", "--log_steps", "5"]).logging_steps == 5
    assert parse([write(tmp_path / "a.yaml", "model_name: m\nlog_steps: 7\n")]).logging_steps == 7
    with pytest.raises(ValueError, match="the command line: give either --logging_steps or --log_steps, not both"):
        parse(["--model_name", "m", "--logging_steps", "5", "--log_steps", "6"])
    with pytest.raises(ValueError, match="b.yaml: give either --logging_steps or --log_steps"):
        parse([write(tmp_path / "b.yaml", "model_name: m\nlog_steps: 7\nlogging_steps: 8\n")])
    # a flag may override the file's spelling of the same argument
    assert parse(["--config", str(tmp_path / "a.yaml"), "--logging_steps", "2"]).logging_steps == 2


def test_file_values_are_checked_and_named_like_the_flags(tmp_path):
    for text, message in (
        ("model_name: m\nwidth: wide\n", r"bad.yaml: width expects int, got 'wide'\."),
        ("model_name: m\nwidth: 2.5\n", r"width expects int, got 2\.5"),
        ("model_name: m\nmode: c\n", r"mode must be one of \['a', 'b'\], got 'c'"),
    ):
        with pytest.raises(UserError, match=message):
            parse([write(tmp_path / "bad.yaml", text)])
    with pytest.raises(ValueError, match=r"unknown argument\(s\) widht"):
        parse([write(tmp_path / "bad.yaml", "model_name: m\nwidht: 2\n")])
    with pytest.raises(UserError, match="the following arguments are required: --model_name"):
        parse(["--width", "2"])
    with pytest.raises(ValueError, match=r"not used by the HfArgumentParser: \['--wid', '2'\]"):  # no abbreviations
        parse(["--model_name", "m", "--wid", "2"])


def test_a_file_with_a_byte_order_mark_and_nulls_reads_as_written(tmp_path):
    path = tmp_path / "bom.yaml"
    path.write_bytes("\ufeffmodel_name: m\ndepth: null\n".encode())
    sizes = parse(["--config", str(path), "--depth", "1"])
    assert (sizes.model_name, sizes.depth) == ("m", 1)
    assert parse(["--config", str(path)]).depth is None


def test_training_arguments_take_objects_from_a_file(tmp_path):
    config = write(
        tmp_path / "t.yaml",
        "output_dir: o\nreport_to: [tensorboard]\nlr_scheduler_type: cosine_with_min_lr\n"
        "lr_scheduler_kwargs: {min_lr: 1.0e-6}\nwarmup_steps: 3\n",
    )
    (arguments,) = ArgumentParser(TrainingArguments, prog="t.py").parse(["--config", config])
    assert (arguments.report_to, arguments.lr_scheduler_kwargs, arguments.warmup_steps) == (
        ["tensorboard"],
        {"min_lr": 1e-6},
        3,
    )
    assert arguments.lr_scheduler_type.value == "cosine_with_min_lr"
