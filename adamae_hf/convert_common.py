"""What every checkpoint converter shares: the conversion errors, the strict load, progress lines, and the inference
files (`clip_config.json`, video processor) written beside a converted model."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from configuration_adamae import AdaMaeConfig

from .data import VideoClipConfig, save_video_processor
from .errors import UserError


class ConversionError(UserError, ValueError):
    """A checkpoint does not match the layout it is converted from (a user's mistake: the command line shows it as one
    line)."""


class UnknownHeadCountError(ConversionError):
    """The checkpoint does not tell its attention head count, and its width has no standard one."""


def report_progress(message: str, verbose: bool):
    """One progress line on stderr (the command line's `[i/n] ...` steps)."""
    if verbose:
        print(message, file=sys.stderr, flush=True)


def strict_load(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str, unused: list[str]):
    """Load a complete state dict; raise listing every unused source key and every target weight left unfilled."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(state_dict) & set(expected)
        if state_dict[key].shape != expected[key].shape
    )
    problems = []
    if unused:
        problems.append(f"keys of {source} that no rule maps: {sorted(unused)}")
    if unexpected:
        problems.append(f"mapped keys the model does not have: {unexpected}")
    if missing:
        problems.append(f"model weights the checkpoint does not provide: {missing}")
    if mismatched:
        problems.append(f"shape mismatches: {mismatched}")
    if problems:
        raise ConversionError(f"Cannot convert {source}:\n  " + "\n  ".join(problems))
    model.load_state_dict(state_dict, strict=True)


def save_inference_files(
    output_dir: str | Path, config: AdaMaeConfig, clip_settings: dict | None = None, verbose: bool = False
):
    """Write `clip_config.json` and the video processor beside a converted model (after its `save_pretrained`), so
    that the folder runs in `pipeline("video-classification")` and `run_finetune.py` with the model's clip: frames,
    frame size and normalisation from `config`, other clip settings (frame stride, evaluation views) from
    `clip_settings`, else `VideoClipConfig`'s defaults. A model with non-square frames gets none (the evaluation crop
    is square)."""
    height, width = config.frame_size
    if height != width:
        report_progress(f"No video processor: frames are {height}x{width}, the evaluation crop is square", verbose)
        return
    settings = {**(clip_settings or {}), "num_frames": config.num_frames, "crop_size": height}
    settings.update(image_mean=list(config.image_mean), image_std=list(config.image_std))
    if (settings.get("short_side_size") or height) < height:  # the crop is cut from frames of that short side
        del settings["short_side_size"]
    if settings.get("num_crops") not in (None, 1, 3):
        del settings["num_crops"]
    save_video_processor(output_dir, VideoClipConfig(**settings))
