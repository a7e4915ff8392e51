"""Crash-safe checkpoints: atomic folders, `latest`, rotation, resolution, and a SIGKILL in the middle of a write."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from pretrain_helpers import REPO_ROOT, state_dict_of
from safetensors.torch import load_file
from tiny_configs import tiny_config

from adamae_hf.checkpoint import (
    LATEST_FILE,
    TRAINING_STATE_FILE,
    latest_checkpoint,
    list_checkpoints,
    read_training_state,
    resolve_checkpoint,
    save_checkpoint,
)
from adamae_hf.optim import build_adamw, warmup_cosine_schedule
from adamae_hf.training import build_accelerator, reset_accelerate_state
from modeling_adamae import AdaMaeForPreTraining


@pytest.fixture
def prepared(tmp_path):
    """An Accelerator with a tiny model, its optimizer and scheduler, prepared."""
    reset_accelerate_state()
    accelerator = build_accelerator(tmp_path / "run", report_to="none", use_cpu=True)
    torch.manual_seed(0)
    model = AdaMaeForPreTraining(tiny_config())
    optimizer = build_adamw(model, lr=1e-3, weight_decay=0.05, betas=(0.9, 0.95))
    scheduler = warmup_cosine_schedule(optimizer, 1, 10, 1e-3)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    yield accelerator, model, optimizer, scheduler
    reset_accelerate_state()


def make_checkpoint_folder(folder, complete=True):
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"weights")
    if complete:
        (folder / TRAINING_STATE_FILE).write_text(json.dumps({"step": 0}))


def test_save_writes_complete_folders_points_latest_and_rotates(prepared, tmp_path):
    accelerator = prepared[0]
    output_dir = tmp_path / "run"
    for step in (1, 2, 3):
        path = save_checkpoint(accelerator, output_dir, step, {"seed": 0, "global_batch_size": 2}, save_total_limit=2)
        assert path == output_dir / f"checkpoint-{step}"
    assert [path.name for path in list_checkpoints(output_dir)] == ["checkpoint-2", "checkpoint-3"]
    assert (output_dir / LATEST_FILE).read_text().strip() == "checkpoint-3"
    assert sorted(os.listdir(output_dir)) == ["checkpoint-2", "checkpoint-3", LATEST_FILE]  # nothing temporary left
    assert read_training_state(output_dir / "checkpoint-3") == {"seed": 0, "global_batch_size": 2, "step": 3}
    files = set(os.listdir(output_dir / "checkpoint-3"))
    assert {"model.safetensors", "optimizer.bin", "scheduler.bin", "random_states_0.pkl", TRAINING_STATE_FILE} <= files


def test_resaving_a_step_replaces_the_old_folder(prepared, tmp_path):
    accelerator, model = prepared[0], prepared[1]
    output_dir = tmp_path / "run"
    save_checkpoint(accelerator, output_dir, 4, {"run": "first"})
    with torch.no_grad():
        next(model.parameters()).add_(1.0)
    save_checkpoint(accelerator, output_dir, 4, {"run": "second"})
    assert read_training_state(output_dir / "checkpoint-4")["run"] == "second"
    assert sorted(os.listdir(output_dir)) == ["checkpoint-4", LATEST_FILE]


def test_a_crash_while_deleting_the_replaced_folder_keeps_the_new_checkpoint(prepared, tmp_path, monkeypatch):
    accelerator = prepared[0]
    output_dir = tmp_path / "run"
    save_checkpoint(accelerator, output_dir, 4, {"run": "first"})

    def crash(path, *args, **kwargs):
        raise KeyboardInterrupt(f"killed while deleting {path}")

    monkeypatch.setattr("adamae_hf.checkpoint.shutil.rmtree", crash)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(accelerator, output_dir, 4, {"run": "second"})
    monkeypatch.undo()
    assert read_training_state(latest_checkpoint(output_dir))["run"] == "second"
    assert {p.name for p in list_checkpoints(output_dir)} == {"checkpoint-4"}


def test_only_complete_checkpoint_folders_count(tmp_path):
    make_checkpoint_folder(tmp_path / "checkpoint-3")
    make_checkpoint_folder(tmp_path / "checkpoint-7", complete=False)  # no training_state.json: not complete
    make_checkpoint_folder(tmp_path / ".tmp-checkpoint-9")  # an interrupted write
    make_checkpoint_folder(tmp_path / ".deleting-checkpoint-1")  # an interrupted removal
    make_checkpoint_folder(tmp_path / "checkpoint-final")
    assert list_checkpoints(tmp_path) == [tmp_path / "checkpoint-3"]
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-3"
    assert resolve_checkpoint("latest", tmp_path) == tmp_path / "checkpoint-3"
    assert resolve_checkpoint(str(tmp_path), tmp_path / "elsewhere") == tmp_path / "checkpoint-3"  # a run folder
    with pytest.raises(ValueError, match="incomplete checkpoint"):
        resolve_checkpoint(str(tmp_path / ".tmp-checkpoint-9"), tmp_path)
    with pytest.raises(ValueError, match="not a complete checkpoint"):
        resolve_checkpoint(str(tmp_path / "checkpoint-7"), tmp_path)
    with pytest.raises(ValueError, match="not a folder"):
        resolve_checkpoint(str(tmp_path / "checkpoint-99"), tmp_path)


def test_latest_follows_the_pointer_and_falls_back_when_it_is_stale(tmp_path):
    assert resolve_checkpoint("latest", tmp_path) is None  # nothing yet: a fresh start
    make_checkpoint_folder(tmp_path / "checkpoint-2")
    make_checkpoint_folder(tmp_path / "checkpoint-5")
    (tmp_path / LATEST_FILE).write_text("checkpoint-2\n")  # a run resumed from step 2 re-wrote it
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-2"
    (tmp_path / LATEST_FILE).write_text("checkpoint-8\n")  # names a folder that is gone
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoint-5"


def test_sigkill_during_a_checkpoint_write_leaves_the_previous_one_loadable(tmp_path, prepared):
    output_dir = tmp_path / "killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT)}
    process = subprocess.Popen(
        [sys.executable, str(REPO_ROOT / "tests" / "pretrain_helpers.py"), "write-checkpoints", str(output_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    paused = output_dir / ".paused-checkpoint-2"
    deadline = time.monotonic() + 180
    while not paused.exists():
        if process.poll() is not None:
            pytest.fail(f"the writer exited before pausing:\n{process.stdout.read().decode()}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the writer never reached the pause in checkpoint-2's write")
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGKILL)
    process.wait(timeout=30)
    process.stdout.close()

    # checkpoint-2 was fully written under its temporary name, but never published.
    assert (output_dir / ".tmp-checkpoint-2" / TRAINING_STATE_FILE).exists()
    assert not (output_dir / "checkpoint-2").exists()
    assert (output_dir / LATEST_FILE).read_text().strip() == "checkpoint-1"
    assert resolve_checkpoint("latest", output_dir) == output_dir / "checkpoint-1"

    # The previous checkpoint loads, with the weights it was written with.
    accelerator, model = prepared[0], prepared[1]
    accelerator.load_state(str(output_dir / "checkpoint-1"))
    expected = load_file(str(tmp_path / "weights-step1.safetensors"))
    loaded = state_dict_of(accelerator.unwrap_model(model))
    assert expected.keys() == loaded.keys()
    assert all(torch.equal(expected[name], loaded[name]) for name in expected)

    # The next save clears the leftover and publishes its own step.
    save_checkpoint(accelerator, output_dir, 2, {"seed": 0})
    assert not (output_dir / ".tmp-checkpoint-2").exists()
    assert latest_checkpoint(output_dir) == output_dir / "checkpoint-2"
