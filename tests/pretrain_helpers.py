"""Helpers for the pretraining tests: tiny argument sets, in-memory clip datasets, Accelerate state resets, and the
programs that the multi-process and crash tests run in subprocesses (`python tests/pretrain_helpers.py <command>`)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import Dataset


REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:  # run as a script from a subprocess
    sys.path.insert(0, str(REPO_ROOT))
if str(REPO_ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(REPO_ROOT / "tests"))

from tiny_configs import TINY  # noqa: E402


# The tiny test model as --config_overrides (frames, frame size and mask ratio have their own flags).
TINY_OVERRIDES = ",".join(
    f"{key}={value}" for key, value in TINY.items() if key not in ("image_size", "num_frames", "mask_ratio")
)


def tiny_argv(output_dir, index_file=None, max_steps=3, **flags) -> list[str]:
    """Flags of a tiny pretraining run: the tiny test model on 8 frames of 32x32, 2 clips per step, CPU, no trackers.
    Keyword arguments add or replace flags (`name=value`; `None` removes one)."""
    values = {
        "output_dir": str(output_dir),
        "train_index": str(index_file) if index_file else None,
        "config_overrides": TINY_OVERRIDES,
        "mask_ratio": 0.75,
        "num_frames": 8,
        "sampling_rate": 2,
        "crop_size": 32,
        "per_device_train_batch_size": 2,
        "max_steps": max_steps,
        "warmup_steps": 1,
        "learning_rate": 1e-3,
        "dataloader_num_workers": 0,
        "logging_steps": 1,
        "save_steps": 1000,
        "report_to": "none",
        "use_cpu": True,
    }
    values.update(flags)
    argv = []
    for name, value in values.items():
        if value is not None:
            argv += [f"--{name}", str(value)]
    return argv


class RandomClipDataset(Dataset):
    """`num_videos` items of one normalised random clip `(1, 8, 3, 32, 32)` each (the tiny model's input); the items
    whose index is in `nan_items` are NaN, and with `nan_after_calls` every item fetched after that many fetches is NaN.
    Items draw from torch's global generator, as `VideoClipDataset` does."""

    def __init__(self, num_videos: int = 8, nan_items=(), nan_after_calls: int | None = None):
        self.num_videos = num_videos
        self.nan_items = set(nan_items)
        self.nan_after_calls = nan_after_calls
        self.calls = 0

    def __len__(self) -> int:
        return self.num_videos

    def __getitem__(self, index):
        self.calls += 1
        pixel_values = torch.randn(1, 8, 3, 32, 32)
        if index in self.nan_items or (self.nan_after_calls is not None and self.calls > self.nan_after_calls):
            pixel_values = torch.full_like(pixel_values, float("nan"))
        return {"pixel_values": pixel_values, "video_index": torch.tensor([index])}


def state_dict_of(model) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone().contiguous() for name, tensor in model.state_dict().items()}


# ---------------------------------------------------------------------------------------------------------------------
# Subprocess programs


def ddp_train(argv: list[str]) -> None:
    """`ddp-train PARAMS_DIR FLAGS...`: run pretraining on every process, then save each rank's final parameters as
    PARAMS_DIR/rank{r}.safetensors."""
    from safetensors.torch import save_file

    from adamae_hf.pretrain_arguments import parse_pretraining_args
    from adamae_hf.pretrain_run import run_pretraining

    params_dir, flags = Path(argv[0]), argv[1:]
    result = run_pretraining(*parse_pretraining_args(flags))
    params_dir.mkdir(parents=True, exist_ok=True)
    rank = int(os.environ.get("RANK", "0"))
    save_file(state_dict_of(result.model), str(params_dir / f"rank{rank}.safetensors"))


def write_checkpoints(argv: list[str]) -> None:
    """`write-checkpoints OUTPUT_DIR`: checkpoint-1 of a tiny model after one optimizer step (its weights also saved as
    OUTPUT_DIR/../weights-step1.safetensors), one more step, then checkpoint-2, whose write pauses once its temporary
    folder is complete on disk and before it takes its name: the process announces it with the file
    OUTPUT_DIR/.paused-checkpoint-2 and waits there until the crash test kills it."""
    from safetensors.torch import save_file

    from adamae_hf import checkpoint
    from adamae_hf.checkpoint import save_checkpoint

    fsync_tree = checkpoint._fsync_tree

    def fsync_then_pause_before_checkpoint_2(folder):
        fsync_tree(folder)
        if folder.name == ".tmp-checkpoint-2":  # the last step before the rename that publishes it
            (folder.parent / ".paused-checkpoint-2").touch()
            while True:
                time.sleep(1.0)

    checkpoint._fsync_tree = fsync_then_pause_before_checkpoint_2
    from tiny_configs import tiny_config

    from adamae_hf.optim import build_adamw, warmup_cosine_schedule
    from adamae_hf.training import build_accelerator
    from modeling_adamae import AdaMaeForPreTraining

    output_dir = Path(argv[0])
    accelerator = build_accelerator(output_dir, report_to="none", use_cpu=True)
    torch.manual_seed(0)
    model = AdaMaeForPreTraining(tiny_config())
    optimizer = build_adamw(model, lr=1e-3, weight_decay=0.05, betas=(0.9, 0.95))
    scheduler = warmup_cosine_schedule(optimizer, 1, 10, 1e-3)
    model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    for step in (1, 2):
        model(torch.randn(2, 8, 3, 32, 32)).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        scheduler.step()
        if step == 1:
            save_file(state_dict_of(model), str(output_dir.parent / "weights-step1.safetensors"))
        save_checkpoint(accelerator, output_dir, step, {"global_batch_size": 2, "steps_per_epoch": 10, "seed": 0})


if __name__ == "__main__":
    command, arguments = sys.argv[1], sys.argv[2:]
    {"ddp-train": ddp_train, "write-checkpoints": write_checkpoints}[command](arguments)
