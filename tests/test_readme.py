"""The README's commands and code are true."""

import math
import re
from pathlib import Path

import torch


README = Path(__file__).resolve().parents[1] / "README.md"


def python_block_after(marker: str) -> str:
    text = README.read_text()
    start = text.index(marker)
    match = re.search(r"```python\n(.*?)```", text[start:], flags=re.S)
    return match.group(1)


def test_quick_start_runs_as_written(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = python_block_after("<!-- quick-start")
    exec(compile(code, "README quick start", "exec"), {})
    printed = capsys.readouterr().out
    assert "tensor([1490])" in printed
    assert "torch.Size([1, 1568])" in printed
    assert "torch.Size([1, 174])" in printed
    assert (tmp_path / "adamae-vit-base" / "model.safetensors").exists()


def test_readme_has_exactly_the_two_set_up_commands():
    text = README.read_text()
    set_up = text[text.index("## Set up") : text.index("## Quick start")]
    commands = re.findall(r"```bash\n(.*?)```", set_up, flags=re.S)
    assert [c.strip() for c in commands] == [
        "pip install torch==2.13.0 && pip install -e . && python run_pretrain.py",
        'pip install torch==2.13.0 && pip install -e ".[test]" && python -m pytest',
    ]
    ci = (README.parent / ".ci" / "run").read_text()
    assert "torch==2.13.0" in ci and '-e ".[test]"' in ci and "python -m pytest" in ci


def test_the_plain_trainer_example_trains_and_evaluates(tmp_path, monkeypatch):
    # The dataset and collate_clips in a plain transformers.Trainer with its default remove_unused_columns=True,
    # which drops every item's video_index (the model's forward does not take it).
    import tempfile

    monkeypatch.setattr(tempfile, "mkdtemp", lambda *args, **kwargs: str(tmp_path))
    namespace = {}
    exec(compile(python_block_after("<!-- plain-trainer"), "README plain Trainer", "exec"), namespace)
    trainer = namespace["trainer"]

    assert trainer.args.remove_unused_columns  # the Trainer's default, untouched
    assert math.isfinite(trainer.state.log_history[-1]["eval_loss"])
    assert math.isfinite(trainer.state.log_history[-2]["train_loss"])
    batch = next(iter(trainer.get_eval_dataloader()))
    assert set(batch) == {"pixel_values", "labels"}  # video_index was removed before collating
    assert batch["pixel_values"].shape == (6, 8, 3, 32, 32) and batch["labels"].dtype == torch.long


def test_the_readme_names_the_ruff_version_ci_checks_with():
    pinned = re.search(r"^RUFF_VERSION=(\S+)$", (README.parent / ".ci" / "run").read_text(), flags=re.M).group(1)
    assert f"pip install ruff=={pinned} && ruff check . && ruff format --check ." in README.read_text()
