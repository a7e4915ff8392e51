"""AdaMAE pretraining with Accelerate: the arguments, the loop and the end of a run, behind `run_pretrain.py`.

`run_pretraining(model_args, data_args, clip_config, training_args)` runs a whole job:

1. an `Accelerator` (DDP on one or many machines, FSDP or DeepSpeed from an accelerate config file, bf16/fp16,
   gradient accumulation), the output folder, and the checkpoint to resume from;
2. the clip dataset (`adamae_hf.data`), shuffled per epoch by `EpochShuffleSampler`, every item's augmentation
   seeded by (seed, epoch, index), and the masking noise of each step seeded by (seed, step): the batches and masks of
   a run do not depend on the number of processes, workers or accumulation steps, and a resumed run continues
   exactly;
3. `AdaMaeForPreTraining`, AdamW with the recipe's weight-decay exemptions, warmup + per-step cosine schedule;
4. the loop (`train_loop`): non-finite losses skip the update, scalars and sampler diagnostics every `log_steps`,
   crash-safe checkpoints every `save_steps`;
5. `finish_pretraining`: `save_pretrained` (safetensors, config, Hub code files), the processor config, the model
   card, and the upload with `--push_to_hub`.

With `--demo` (what `python run_pretrain.py` runs with no arguments) the defaults become `DEMO_ARGUMENTS`: a tiny
AdaMAE on sample videos generated into the output folder, about a minute on a laptop CPU.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import logging
import math
import shutil
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import DistributedType, set_seed
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from configuration_adamae import MASK_TYPES, AdaMaeConfig
from modeling_adamae import AdaMaeForPreTraining

from .checkpoint import (
    LATEST_FILE,
    check_random_states,
    list_checkpoints,
    read_training_state,
    remove_stale_folders,
    resolve_checkpoint,
    save_checkpoint,
)
from .data import (
    VideoClipConfig,
    VideoClipDataset,
    VideoDecodeError,
    collate_clips,
    generate_sample_videos,
    index_from_file,
    index_from_folder,
    normalize,
    save_video_processor,
    videos_per_batch,
)
from .diagnostics import averaged_sampler_diagnostics
from .arguments import ArgumentParser
from .errors import UserError, check_model_source
from .hub import build_model_card, check_hub_access, push_folder_to_hub, save_model_card
from .optim import build_adamw, warmup_cosine_schedule
from .training import (
    EpochSeededDataset,
    EpochShuffleSampler,
    NonFiniteLossGuard,
    ScalarLog,
    TrainingSchedule,
    build_accelerator,
    compute_schedule,
    skips_updates_on_device,
    step_noise,
    on_every_process,
    step_unless,
    warn_about_launch_mismatch,
)
from .visualize import visualize


logger = logging.getLogger(__name__)

SCALAR_LOG = Path("logs") / "scalars.jsonl"
RUN_ARGUMENTS_FILE = "run_arguments.json"
# Devices with torch's fused AdamW kernel (CUDA, and the CPU since torch 2.4).
FUSED_ADAMW_DEVICES = ("cuda", "cpu")


# ---------------------------------------------------------------------------------------------------------------------
# Arguments


@dataclass
class ModelArguments:
    """Which model to pretrain. Without `model_name_or_path` / `config_name`, the paper's ViT-B/16 (AdaMaeConfig's
    defaults); frames and frame size always come from the data arguments (`--num_frames`, `--crop_size`)."""

    _argument_group_name = "model (defaults: the paper's ViT-B/16 AdaMAE)"

    model_name_or_path: str | None = field(
        default=None,
        metadata={"help": "Start from the weights of this AdaMAE folder (e.g. one written by adamae-convert)."},
    )
    config_name: str | None = field(
        default=None, metadata={"help": "Start from this AdaMAE config (a config.json or a folder holding one)."}
    )
    config_overrides: str | None = field(
        default=None,
        metadata={
            "help": "Comma-separated AdaMaeConfig fields to change, e.g. "
            "'hidden_size=384,num_hidden_layers=12,num_attention_heads=6' (ViT-S)."
        },
    )
    mask_type: str | None = field(
        default=None,
        metadata={
            "help": "'adaptive' (the paper; the default) or a baseline: 'tube', 'random', 'frame'.",
            "choices": list(MASK_TYPES),
        },
    )
    mask_ratio: float | None = field(
        default=None, metadata={"help": "Fraction of tokens masked (default 0.95, the paper's adaptive setting)."}
    )
    decoder_num_hidden_layers: int | None = field(default=None, metadata={"help": "Decoder depth (default 4)."})
    norm_pix_loss: bool | None = field(
        default=None, metadata={"help": "Reconstruct per-patch normalised pixels (default true, the paper)."}
    )
    sampling_loss_weight: float | None = field(
        default=None, metadata={"help": "Weight lambda of the sampler's REINFORCE loss (default 1e-4)."}
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "'sdpa' (transformers' default), 'eager', 'flash_attention_2', ..."}
    )

    def __post_init__(self):
        if self.mask_ratio is not None and not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be in (0, 1), got {self.mask_ratio}.")
        if self.mask_type is not None and self.mask_type not in MASK_TYPES:
            raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {self.mask_type!r}.")


@dataclass
class DataArguments:
    """Where the training videos are. Clip sampling and augmentation are `VideoClipConfig`'s flags (--num_frames,
    --sampling_rate, --crop_size, --train_crop, ...)."""

    _argument_group_name = "training videos"

    train_index_file: str | None = field(
        default=None,
        metadata={"help": "CSV (header 'path[,label]') or JSON-lines index of the training videos."},
    )
    train_folder: str | None = field(
        default=None, metadata={"help": "Folder of training videos laid out as <class>/<video> (labels unused)."}
    )
    data_root: str | None = field(
        default=None, metadata={"help": "Folder that the index's relative paths start from (default: the index's)."}
    )
    max_train_videos: int | None = field(
        default=None, metadata={"help": "Use only the first N videos of the index (quick experiments)."}
    )
    dataset_ids: list[str] | None = field(
        default=None, metadata={"help": "Hub dataset ids to list in the model card's metadata, e.g. kinetics400."}
    )
    visualization_video: str | None = field(
        default=None,
        metadata={"help": "Video for the mask figure (masks.gif / masks.png; default: the first training video)."},
    )
    normalize_on_device: bool = field(
        default=True,
        metadata={
            "help": "The data workers send uint8 clips and each batch is normalised on the training device: a "
            "quarter of the bytes through shared memory, pinned memory and the copy to the GPU. Same values."
        },
    )

    def __post_init__(self):
        if self.train_index_file and self.train_folder:
            raise ValueError("Give either --train_index_file or --train_folder, not both.")
        if self.max_train_videos is not None and self.max_train_videos < 1:
            raise ValueError(f"max_train_videos must be >= 1, got {self.max_train_videos}.")


@dataclass
class PretrainingArguments:
    """How to train. Defaults are the paper's recipe (AdamW betas (0.9, 0.95), weight decay 0.05, lr 1.5e-4 x
    global batch / 256, 40 warmup epochs, cosine to min lr, 800 epochs)."""

    _argument_group_name = "training (defaults: the paper's recipe)"

    demo: bool = field(
        default=False,
        metadata={"help": "Use the demo's defaults: a tiny AdaMAE on generated sample videos (what no arguments run)."},
    )
    output_dir: str | None = field(
        default=None, metadata={"help": "Folder for checkpoints, logs and the final model (required)."}
    )
    overwrite_output_dir: bool = field(
        default=False,
        metadata={"help": "Start over in an output folder that already has checkpoints (they are deleted)."},
    )
    resume_from_checkpoint: str | None = field(
        default=None,
        metadata={
            "help": "'latest' (the newest complete checkpoint in output_dir; starts fresh when there is none), a "
            "checkpoint-<step> folder, or a run folder."
        },
    )
    seed: int = field(default=0, metadata={"help": "Seed of the initialisation, data order, augmentation and masks."})
    per_device_train_batch_size: int = field(default=32, metadata={"help": "Clips per device per forward pass."})
    gradient_accumulation_steps: int = field(default=1, metadata={"help": "Forward passes per optimizer step."})
    num_train_epochs: float = field(default=800, metadata={"help": "Epochs (passes over the videos)."})
    max_steps: int = field(default=-1, metadata={"help": "Optimizer steps; overrides num_train_epochs when > 0."})
    base_learning_rate: float = field(
        default=1.5e-4, metadata={"help": "Peak lr for a global batch of 256; scaled by global batch / 256."}
    )
    learning_rate: float | None = field(
        default=None,
        metadata={"help": "Peak lr as is (no scaling; --warmup_lr and --min_lr are then not scaled either)."},
    )
    warmup_lr: float = field(default=1e-6, metadata={"help": "lr at the first warmup step (scaled like the lr)."})
    min_lr: float = field(default=1e-5, metadata={"help": "lr at the end of the cosine (scaled like the lr)."})
    warmup_epochs: float = field(default=40, metadata={"help": "Linear warmup length in epochs."})
    warmup_steps: int | None = field(
        default=None, metadata={"help": "Warmup length in steps; overrides warmup_epochs."}
    )
    weight_decay: float = field(
        default=0.05, metadata={"help": "AdamW weight decay (biases, norms, position embeddings, mask token exempt)."}
    )
    adam_beta1: float = field(default=0.9, metadata={"help": "AdamW beta1."})
    adam_beta2: float = field(default=0.95, metadata={"help": "AdamW beta2."})
    adam_epsilon: float = field(default=1e-8, metadata={"help": "AdamW epsilon."})
    max_grad_norm: float | None = field(
        default=None, metadata={"help": "Clip the gradient norm to this (off by default, as the reference)."}
    )
    mixed_precision: str | None = field(
        default=None,
        metadata={
            "help": "'no', 'fp16' or 'bf16' (default: accelerate launch's setting). bf16 is recommended on GPUs.",
            "choices": ["no", "fp16", "bf16"],
        },
    )
    torch_compile: bool = field(default=False, metadata={"help": "Compile the model with torch.compile."})
    torch_compile_mode: str | None = field(
        default=None,
        metadata={"help": "torch.compile mode with --torch_compile: 'default', 'reduce-overhead' (CUDA graphs), "
                  "'max-autotune', ... (default: torch's)."},
    )  # fmt: skip
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in the backward pass to save memory."}
    )
    dataloader_num_workers: int = field(default=8, metadata={"help": "Video decoding processes per device."})
    logging_steps: int = field(
        default=20,
        metadata={"help": "Log losses, lr, throughput and sampler diagnostics every N steps.",
                  "aliases": ["--log_steps"]},
    )
    diagnostic_batches: int = field(
        default=4,
        metadata={
            "help": "Micro-batches per process that each logging step's sampler diagnostics average over: the last "
            "ones trained on, run again in eval mode (no sampler dropout), pooled over all processes."
        },
    )
    visualize: bool = field(
        default=True,
        metadata={"help": "Write the five-panel mask figure (masks.gif, masks.png) into output_dir at the end."},
    )
    visualize_steps: int = field(
        default=0,
        metadata={"help": "Also write it every N steps into output_dir/visualizations (0: only at the end)."},
    )
    save_steps: int = field(default=1000, metadata={"help": "Write a checkpoint every N steps."})
    save_total_limit: int | None = field(default=3, metadata={"help": "Keep the newest N checkpoints (0: keep all)."})
    max_nonfinite_steps: int = field(
        default=10, metadata={"help": "Stop after this many consecutive steps with a non-finite loss."}
    )
    report_to: str = field(
        default="auto",
        metadata={
            "help": "Trackers: 'auto' (tensorboard when installed), 'none', 'all', or names separated by commas."
        },
    )
    push_to_hub: bool = field(default=False, metadata={"help": "Upload the final model folder to --hub_model_id."})
    hub_model_id: str | None = field(default=None, metadata={"help": "Hub repository, e.g. 'user/adamae-vit-b-k400'."})
    hub_private_repo: bool | None = field(default=None, metadata={"help": "Create the Hub repository as private."})
    hub_token: str | None = field(default=None, metadata={"help": "Hub token (default: the logged-in one)."})
    use_cpu: bool = field(default=False, metadata={"help": "Train on CPU even when a GPU is available."})
    debug: bool = field(
        default=False,
        metadata={"help": "Show the traceback of an error; a user's mistake is otherwise one line (run_pretrain.py)."},
    )

    def __post_init__(self):
        for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "logging_steps", "save_steps",
                     "max_nonfinite_steps", "diagnostic_batches"):  # fmt: skip
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if self.visualize_steps < 0:
            raise ValueError(f"visualize_steps must be >= 0, got {self.visualize_steps}.")
        if self.dataloader_num_workers < 0:
            raise ValueError(f"dataloader_num_workers must be >= 0, got {self.dataloader_num_workers}.")
        if self.mixed_precision not in (None, "no", "fp16", "bf16"):
            raise ValueError(f"mixed_precision must be 'no', 'fp16' or 'bf16', got {self.mixed_precision!r}.")
        if self.push_to_hub and not self.hub_model_id:
            raise ValueError("--push_to_hub needs --hub_model_id (e.g. 'user/adamae-vit-b-k400').")
        if self.max_steps <= 0 and self.num_train_epochs <= 0:
            raise ValueError("Set num_train_epochs > 0 or max_steps > 0.")


class ClipArguments(VideoClipConfig):
    """`VideoClipConfig` under its own heading in `--help` (the same fields; a `VideoClipConfig` everywhere else)."""

    _argument_group_name = "clips: sampling and augmentation (defaults: K400-style; use --sampling_rate 2 for SSv2)"


PRETRAINING_ARGUMENT_CLASSES = (ModelArguments, DataArguments, ClipArguments, PretrainingArguments)

# The demo: a tiny AdaMAE (1.4M parameters, 64 tokens: 8 frames of 64x64, patch 16, tubelet 2) on generated videos of
# objects moving over textured backgrounds, on the CPU in about a minute. Any flag still overrides these.
# Two departures from the paper's recipe make learning visible within a minute: the loss is on raw pixels (with
# norm_pix_loss a model this small stays at the trivial loss of 1.0 for hundreds of steps), and the sampler's loss
# weight is 1e-2 rather than the paper's 1e-4. The weight is not what makes the sampler learn: under AdamW each
# parameter's step is normalised by its own gradient's scale, so lambda changes the sampler's steps far less than
# 100x. Measured on this demo (seeds 0, 1, 2; mean Spearman correlation of p with the tokens' motion and with the
# masked tokens' reconstruction error), at the end of the run (training log, steps 260-300) and on 48 held-out
# generated videos (adamae-evaluate-sampler, eval mode):
#   lambda   p~motion log / held-out   p~error log / held-out   reconstruction loss
#   1e-2     0.36 / 0.35               0.49 / 0.46              0.0158
#   1e-4     0.29 / 0.27               0.27 / 0.23              0.0158
#   0        -0.03 / 0.03 (seed 0)     -0.06 / 0.02             0.0159
# Both weights learn where the motion is; 1e-2 learns more of it within 300 steps, and its p follows the
# reconstruction error (what the sampler's loss rewards) about twice as closely. Reconstruction is unaffected.
DEMO_ARGUMENTS: dict[str, Any] = {
    "output_dir": "outputs/demo",
    "overwrite_output_dir": True,
    "config_overrides": (
        "patch_size=16,hidden_size=128,num_hidden_layers=4,num_attention_heads=4,intermediate_size=512,"
        "decoder_hidden_size=64,decoder_num_hidden_layers=2,decoder_num_attention_heads=4,"
        "decoder_intermediate_size=256,sampler_num_attention_heads=4"
    ),
    "mask_ratio": 0.75,
    "norm_pix_loss": False,
    "sampling_loss_weight": 1e-2,
    "num_frames": 8,
    "sampling_rate": 2,
    "crop_size": 64,
    "num_sample": 2,  # two augmented clips per decoded video: halves the decoding
    "per_device_train_batch_size": 8,
    "max_steps": 300,
    "warmup_steps": 15,
    "learning_rate": 1e-3,
    "warmup_lr": 1e-5,
    "min_lr": 1e-4,
    "dataloader_num_workers": 1,
    "logging_steps": 10,
    "save_steps": 100,
    "save_total_limit": 1,
}
# The demo's generated videos (written to <output_dir>/videos with an index.csv).
DEMO_VIDEOS: dict[str, Any] = {"num_videos": 24, "num_frames": 16, "height": 72, "width": 88, "seed": 0}


PARSER_DESCRIPTION = """Pretrain AdaMAE with Accelerate; the defaults are the paper's recipe (ViT-B/16, adaptive, 0.95).

examples:
  python run_pretrain.py                       the demo: a tiny AdaMAE on generated videos, CPU, about a minute
  accelerate launch run_pretrain.py --config configs/pretrain_k400_vit_base.yaml --train_index_file train.csv
  accelerate launch run_pretrain.py --config configs/pretrain_ssv2_vit_base.yaml --train_index_file train.csv
  ... --resume_from_checkpoint latest          continue a run exactly where its newest checkpoint left it
  ... --mask_type tube --mask_ratio 0.9        the paper's baselines: tube, random, frame

Values come from flags, then the --config file (YAML/JSON, flag names as keys), then the defaults below."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the description's line breaks."""


def pretraining_argument_parser() -> ArgumentParser:
    return ArgumentParser(
        PRETRAINING_ARGUMENT_CLASSES, prog="run_pretrain.py", description=PARSER_DESCRIPTION,
        formatter_class=_HelpFormatter,
    )


def parse_pretraining_args(
    argv: list[str] | None = None,
) -> tuple[ModelArguments, DataArguments, VideoClipConfig, PretrainingArguments]:
    """Parse flags (and `--config FILE`) into the four argument dataclasses. No arguments at all means `--demo`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    model_args, data_args, clip_config, training_args = pretraining_argument_parser().parse(
        argv or ["--demo"], presets=lambda given: DEMO_ARGUMENTS if given.demo else None
    )
    if training_args.output_dir is None:
        raise ValueError("--output_dir is required (or run the demo: python run_pretrain.py --demo).")
    return model_args, data_args, clip_config, training_args


# ---------------------------------------------------------------------------------------------------------------------
# Model


def parse_config_overrides(overrides: str | None) -> dict[str, Any]:
    """'hidden_size=384,mask_ratio=0.9,qkv_bias=false' -> {"hidden_size": 384, "mask_ratio": 0.9, "qkv_bias": False}.

    Values are read as JSON (numbers, true/false, null, lists) and otherwise kept as strings. Keys must be AdaMaeConfig
    arguments other than the frame geometry, which the data arguments set.
    """
    if not overrides:
        return {}
    known = set(inspect.signature(AdaMaeConfig.__init__).parameters) - {"self", "kwargs"}
    values = {}
    for item in overrides.split(","):
        key, separator, text = item.partition("=")
        key = key.strip()
        if not separator or not key:
            raise ValueError(f"config_overrides must look like 'name=value,name=value', got the item {item!r}.")
        if key in ("num_frames", "image_size"):
            flag = "num_frames" if key == "num_frames" else "crop_size"
            raise ValueError(f"Set {key} with --{flag}, not config_overrides.")
        if key not in known:
            raise ValueError(
                f"config_overrides: {key!r} is not an AdaMaeConfig argument; expected one of {sorted(known)}."
            )
        text = text.strip()
        if text.lower() in ("true", "false", "null"):  # Python spellings (True, False) too
            text = text.lower()
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values


def build_model_config(model_args: ModelArguments, clip_config: VideoClipConfig) -> AdaMaeConfig:
    """The config to pretrain: base (paper defaults, `--config_name` or `--model_name_or_path`), then
    `--config_overrides`, then the explicit model flags, with frames and frame size from the data arguments."""
    changes = parse_config_overrides(model_args.config_overrides)
    for name in ("mask_type", "mask_ratio", "decoder_num_hidden_layers", "norm_pix_loss", "sampling_loss_weight"):
        if getattr(model_args, name) is not None:
            changes[name] = getattr(model_args, name)
    # The data fix the clip's geometry and normalisation, which the model's position tables and targets follow.
    geometry = {
        "num_frames": clip_config.num_frames,
        "image_size": clip_config.crop_size,
        "image_mean": list(clip_config.image_mean),
        "image_std": list(clip_config.image_std),
    }
    base_name = model_args.model_name_or_path or model_args.config_name
    if base_name is None:
        return AdaMaeConfig(**changes, **geometry)
    check_model_source(base_name, "--model_name_or_path" if model_args.model_name_or_path else "--config_name")

    base = AdaMaeConfig.from_pretrained(base_name)
    data_geometry = (clip_config.num_frames, (clip_config.crop_size, clip_config.crop_size))
    if model_args.model_name_or_path and (base.num_frames, base.frame_size) != data_geometry:
        raise ValueError(
            f"{model_args.model_name_or_path} was trained on {base.num_frames} frames of {base.frame_size}; the data "
            f"arguments give {clip_config.num_frames} frames of {clip_config.crop_size}x{clip_config.crop_size}. Set "
            "--num_frames and --crop_size to match (its position tables have that size)."
        )
    values = base.to_dict()
    # Widths derived from hidden_size follow a changed hidden_size unless they were set on their own.
    sampler_follows = base.sampler_hidden_size == base.hidden_size and "sampler_hidden_size" not in changes
    if "hidden_size" in changes and sampler_follows:
        values["sampler_hidden_size"] = None
        mlp_follows = base.sampler_intermediate_size == 4 * base.sampler_hidden_size
        if mlp_follows and "sampler_intermediate_size" not in changes:
            values["sampler_intermediate_size"] = None
    values.update(changes)
    values.update(geometry)
    return AdaMaeConfig.from_dict(values)


def build_model(model_args: ModelArguments, clip_config: VideoClipConfig) -> AdaMaeForPreTraining:
    config = build_model_config(model_args, clip_config)
    kwargs = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
    if model_args.model_name_or_path:
        return AdaMaeForPreTraining.from_pretrained(model_args.model_name_or_path, config=config, **kwargs)
    return AdaMaeForPreTraining._from_config(config, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Data


def build_train_dataset(
    data_args: DataArguments, clip_config: VideoClipConfig, training_args: PretrainingArguments, accelerator
) -> VideoClipDataset:
    """The training clips. In the demo without data arguments, the main process first generates the sample videos
    into `<output_dir>/videos`."""
    index_file, folder = data_args.train_index_file, data_args.train_folder
    if training_args.demo and not (index_file or folder):
        video_dir = Path(training_args.output_dir) / "videos"
        if accelerator.is_main_process:
            generate_sample_videos(video_dir, index_file="index.csv", **DEMO_VIDEOS)
        accelerator.wait_for_everyone()
        index_file = str(video_dir / "index.csv")
    if index_file:
        if not Path(index_file).is_file():
            raise UserError(
                f"--train_index_file: expected a CSV or JSON-lines index, got {index_file!r}: no such file."
            )
        index = index_from_file(index_file, data_root=data_args.data_root)
    elif folder:
        if not Path(folder).is_dir():
            raise UserError(f"--train_folder: expected a folder of <class>/<video> files, got {folder!r}: no such "
                            "folder.")  # fmt: skip
        index = index_from_folder(folder)
    else:
        raise ValueError(
            "Expected the training videos: --train_index_file (CSV/JSON-lines index) or --train_folder "
            "(<class>/<video> folders); or run the demo: python run_pretrain.py --demo."
        )
    if data_args.max_train_videos is not None:
        index = index.select(range(min(data_args.max_train_videos, len(index))))
    normalize_on_device = data_args.normalize_on_device
    if normalize_on_device and clip_config.random_erasing_prob > 0:
        logger.info("Random erasing works on normalised clips: the data workers normalise them (as with "
                    "--normalize_on_device false).")  # fmt: skip
        normalize_on_device = False
    return VideoClipDataset(index, clip_config, train=True, normalize=not normalize_on_device)


# ---------------------------------------------------------------------------------------------------------------------
# Output folder


def prepare_output_dir(accelerator, training_args: PretrainingArguments) -> Path | None:
    """Create the output folder and find the checkpoint to resume from (None: start fresh).

    A folder that already has checkpoints is only reused with `--resume_from_checkpoint` (which wins) or
    `--overwrite_output_dir` (its checkpoints, `latest` and scalar log are deleted first).
    """
    output_dir = Path(training_args.output_dir)
    checkpoint = None
    if training_args.resume_from_checkpoint:
        checkpoint = resolve_checkpoint(training_args.resume_from_checkpoint, output_dir)
        if checkpoint is None:
            logger.info(f"No checkpoint in {output_dir} yet; starting from scratch.")
    existing = list_checkpoints(output_dir)
    if checkpoint is None and existing and not training_args.overwrite_output_dir:
        raise ValueError(
            f"Output folder {output_dir} already has checkpoints ({existing[-1].name}). Continue with "
            "--resume_from_checkpoint latest, or start over with --overwrite_output_dir (deletes them)."
        )
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_folders(output_dir)
        if checkpoint is None and existing:
            for path in existing:
                shutil.rmtree(path)
            (output_dir / LATEST_FILE).unlink(missing_ok=True)
    accelerator.wait_for_everyone()
    return checkpoint


def run_settings(
    model_config: AdaMaeConfig,
    clip_config: VideoClipConfig,
    training_args: PretrainingArguments,
    schedule: TrainingSchedule,
    num_processes: int,
    mixed_precision: str,
) -> dict[str, Any]:
    """The settings that define a run: for the trackers, the model card and `training_state.json` checks."""
    return {
        "mask_type": model_config.mask_type,
        "mask_ratio": model_config.mask_ratio,
        "frames": f"{clip_config.num_frames} x {clip_config.crop_size}x{clip_config.crop_size}",
        "sampling_rate": clip_config.sampling_rate,
        "train_crop": clip_config.train_crop,
        "global_batch_size": schedule.global_batch_size,
        "processes": num_processes,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "epochs": round(schedule.num_epochs, 3),
        "steps": schedule.total_steps,
        "warmup_steps": schedule.warmup_steps,
        "learning_rate": schedule.learning_rate,
        "warmup_lr": schedule.warmup_lr,
        "min_lr": schedule.min_lr,
        "weight_decay": training_args.weight_decay,
        "adam_betas": f"({training_args.adam_beta1}, {training_args.adam_beta2})",
        "max_grad_norm": training_args.max_grad_norm if training_args.max_grad_norm else "none",
        "mixed_precision": mixed_precision,
        "seed": training_args.seed,
    }


def save_run_arguments(output_dir: Path, *argument_objects) -> None:
    """All arguments of the run as JSON, for the record (the Hub token left out)."""
    record = {}
    for arguments in argument_objects:
        record.update(dataclasses.asdict(arguments))
    record.pop("hub_token", None)
    (output_dir / RUN_ARGUMENTS_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


# ---------------------------------------------------------------------------------------------------------------------
# The run


@dataclass
class PretrainingResult:
    """What `run_pretraining` returns."""

    output_dir: Path
    model: AdaMaeForPreTraining  # unwrapped; on every process
    step: int
    results: dict[str, float]  # the final logged scalars
    nonfinite_steps: int
    last_checkpoint: str | None


def run_pretraining(
    model_args: ModelArguments,
    data_args: DataArguments,
    clip_config: VideoClipConfig,
    training_args: PretrainingArguments,
    train_dataset: Dataset | None = None,
    hub_api=None,
) -> PretrainingResult:
    """Pretrain AdaMAE as the arguments say (see the module docstring); every process calls it.

    Args:
        train_dataset: use these items (dicts with `pixel_values` `(V, T, C, H, W)`, normalised float or uint8)
            instead of building the clip dataset from `data_args`.
        hub_api: a `huggingface_hub.HfApi` for the upload (default: a new one with `--hub_token`).
    """
    output_dir = Path(training_args.output_dir)
    accelerator = build_accelerator(
        output_dir,
        mixed_precision=training_args.mixed_precision,
        gradient_accumulation_steps=training_args.gradient_accumulation_steps,
        report_to=training_args.report_to,
        use_cpu=training_args.use_cpu,
    )
    logger.info(
        f"Processes: {accelerator.num_processes} ({accelerator.distributed_type}), device {accelerator.device}, "
        f"mixed precision {accelerator.mixed_precision}"
    )
    warn_about_launch_mismatch(accelerator)
    repo_id = None
    if training_args.push_to_hub:
        # Before any training: no token, a refused one, a read-only repo or an endpoint that does not answer stops
        # the run now (every process) rather than after it. The full "user/name" id is what the card's usage code
        # loads.
        repo_id = on_every_process(accelerator, lambda: check_hub_access(
            training_args.hub_model_id, token=training_args.hub_token,
            private=bool(training_args.hub_private_repo), api=hub_api,
        ) if accelerator.is_main_process else None)  # fmt: skip
    set_seed(training_args.seed)
    checkpoint = prepare_output_dir(accelerator, training_args)

    if train_dataset is None:
        train_dataset = build_train_dataset(data_args, clip_config, training_args, accelerator)
    clips_per_video = getattr(train_dataset, "views_per_video", clip_config.num_sample)
    figure_video = data_args.visualization_video or next(iter(getattr(train_dataset, "paths", [])), None)
    model = build_model(model_args, clip_config)
    if training_args.gradient_checkpointing:
        # transformers renamed it (the old name warns from 5.2x on); both exist for the versions we support
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()

    schedule = compute_schedule(
        num_videos=len(train_dataset),
        clips_per_device_batch=training_args.per_device_train_batch_size,
        clips_per_video=clips_per_video,
        num_processes=accelerator.num_processes,
        gradient_accumulation_steps=training_args.gradient_accumulation_steps,
        num_train_epochs=training_args.num_train_epochs,
        max_steps=training_args.max_steps,
        warmup_epochs=training_args.warmup_epochs,
        warmup_steps=training_args.warmup_steps,
        base_learning_rate=training_args.base_learning_rate,
        learning_rate=training_args.learning_rate,
        warmup_lr=training_args.warmup_lr,
        min_lr=training_args.min_lr,
    )
    sampler = EpochShuffleSampler(len(train_dataset), schedule.videos_per_step, training_args.seed)
    num_workers = training_args.dataloader_num_workers
    train_loader = DataLoader(
        EpochSeededDataset(train_dataset, training_args.seed),
        batch_size=videos_per_batch(training_args.per_device_train_batch_size, clips_per_video),
        sampler=sampler,
        drop_last=True,
        collate_fn=collate_clips,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.accelerator.is_available() and not training_args.use_cpu,  # on a CPU it only warns
        # Worker seeds come from this generator, not the global one, so starting an epoch (or a resumed one) never
        # moves the random stream that dropout uses; the items are seeded by EpochSeededDataset anyway.
        generator=torch.Generator().manual_seed(training_args.seed),
    )
    optimizer = build_adamw(
        model,
        lr=schedule.learning_rate,
        weight_decay=training_args.weight_decay,
        betas=(training_args.adam_beta1, training_args.adam_beta2),
        eps=training_args.adam_epsilon,
        # one kernel for all parameters, and it can skip a non-finite step on the device (see train_loop)
        fused=accelerator.device.type in FUSED_ADAMW_DEVICES,
    )
    scheduler = warmup_cosine_schedule(
        optimizer,
        warmup_steps=schedule.warmup_steps,
        total_steps=schedule.total_steps,
        base_lr=schedule.learning_rate,
        warmup_lr=schedule.warmup_lr,
        min_lr=schedule.min_lr,
    )
    model, optimizer, train_loader, scheduler = accelerator.prepare(model, optimizer, train_loader, scheduler)
    if training_args.torch_compile:
        # in place: parameter names, hence checkpoints, stay those of the eager model
        model.compile(**({"mode": training_args.torch_compile_mode} if training_args.torch_compile_mode else {}))
    model_config = accelerator.unwrap_model(model).config

    guard = NonFiniteLossGuard(training_args.max_nonfinite_steps)
    start_step = 0
    if checkpoint is not None:
        start_step = resume_from(accelerator, checkpoint, schedule, training_args, guard)

    settings = run_settings(model_config, clip_config, training_args, schedule, accelerator.num_processes,
                            accelerator.mixed_precision)  # fmt: skip
    if accelerator.is_main_process:
        save_run_arguments(output_dir, model_args, data_args, clip_config, training_args)
    accelerator.init_trackers("adamae_pretraining", config=settings)
    scalar_log = ScalarLog(accelerator, output_dir / SCALAR_LOG, resume_step=start_step if checkpoint else None)
    logger.info(
        f"{len(train_dataset)} videos, {schedule.steps_per_epoch} steps per epoch, {schedule.total_steps} steps "
        f"(from step {start_step}), global batch {schedule.global_batch_size} clips, "
        f"peak lr {schedule.learning_rate:.3g}"
    )
    try:
        results = train_loop(
            accelerator, model, optimizer, scheduler, train_loader, sampler, schedule, training_args, clip_config,
            guard, scalar_log, start_step, skipped_videos=getattr(train_dataset, "skipped", None),
            figure_video=figure_video,
        )  # fmt: skip
        finish_pretraining(
            accelerator, model, clip_config, training_args, settings, results,
            datasets=data_args.dataset_ids, hub_api=hub_api, figure_video=figure_video, repo_id=repo_id,
        )  # fmt: skip
    finally:
        accelerator.end_training()
    return PretrainingResult(
        output_dir=output_dir,
        model=accelerator.unwrap_model(model),
        step=int(results["step"]),
        results=results,
        nonfinite_steps=guard.total,
        last_checkpoint=guard.last_checkpoint,
    )


def resume_from(accelerator, checkpoint: Path, schedule: TrainingSchedule, training_args, guard) -> int:
    """Load a checkpoint (model, optimizer, scheduler, grad scaler, RNG states) and return its step.

    The data position follows from the step, provided the global batch and the dataset are those the checkpoint was
    written with; a different geometry is an error, since it would silently change which videos come next.
    """
    state = read_training_state(checkpoint)
    for name in ("global_batch_size", "steps_per_epoch"):
        if state.get(name) != getattr(schedule, name):
            raise ValueError(
                f"{checkpoint} was written with {name}={state.get(name)}, this run has {getattr(schedule, name)}. "
                "Resume with the same dataset and global batch (per-device batch x processes x accumulation steps)."
            )
    if state.get("seed") != training_args.seed:
        logger.warning(
            f"{checkpoint} was written with seed {state.get('seed')}, this run uses {training_args.seed}: the data "
            "order and masks after the resume point differ from the interrupted run's."
        )
    # load_state would skip a broken file silently; a broken one on any process stops them all
    on_every_process(accelerator, lambda: check_random_states(checkpoint, accelerator.process_index))
    accelerator.load_state(str(checkpoint))
    guard.load_state_dict(state)
    guard.last_checkpoint = str(checkpoint)
    logger.info(f"Resumed from {checkpoint} at step {state['step']}.")
    return int(state["step"])


def train_loop(
    accelerator,
    model,
    optimizer,
    scheduler,
    train_loader,
    sampler: EpochShuffleSampler,
    schedule: TrainingSchedule,
    training_args: PretrainingArguments,
    clip_config: VideoClipConfig,
    guard: NonFiniteLossGuard,
    scalar_log: ScalarLog,
    start_step: int,
    skipped_videos=None,
    figure_video: str | None = None,
) -> dict[str, float]:
    """Optimizer steps `start_step + 1 ... schedule.total_steps`; returns the last logged scalars (with "step").

    A step reads nothing back to the host, so the CPU can queue the next step's kernels while the GPU runs this one:
    with fused AdamW the update of a step with a non-finite loss is skipped on the device (`step_unless`), and the
    losses and verdicts stay there until a logging or save step (or `--max_nonfinite_steps` verdicts are pending).
    Otherwise (fp16's loss scaler, parameters offloaded to the CPU) the verdict is read back once per step. Under
    DeepSpeed the engine steps inside `backward`, so the skip does not apply there (its fp16 scaler skips overflows).
    """
    device = accelerator.device
    world_size, rank = accelerator.num_processes, accelerator.process_index
    clips_per_batch = training_args.per_device_train_batch_size
    accumulation = training_args.gradient_accumulation_steps
    unwrapped = accelerator.unwrap_model(model)
    skip_on_device = skips_updates_on_device(optimizer, device)
    num_patches = unwrapped.config.num_patches
    adaptive = unwrapped.config.mask_type == "adaptive"
    noise_generator = torch.Generator(device=device)
    # The sampler diagnostics' forward passes: through the wrapper only where the in-memory model is sharded (a
    # compiled model would otherwise compile a second, eval-mode graph).
    sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
    diagnostic_model = model if sharded else accelerator.unwrap_model(model, keep_torch_compile=False)
    diagnostic_steps = math.ceil(training_args.diagnostic_batches / accumulation)
    recent_batches: deque[torch.Tensor] = deque(maxlen=training_args.diagnostic_batches)
    draw_figures = bool(training_args.visualize_steps and figure_video and accelerator.is_main_process)
    if draw_figures and sharded:
        # The in-memory model is sharded: only the end of the run, from the saved folder, can draw it.
        logger.warning("--visualize_steps is skipped under FSDP/DeepSpeed; masks.gif is still written at the end.")
        draw_figures = False

    # Device-side sums over a logging interval: loss, reconstruction loss, sampling loss, finite forward passes.
    interval_sums = torch.zeros(4, device=device, dtype=torch.float64)
    interval_batches, interval_start = 0, time.perf_counter()
    grad_norm = None
    last_logged: dict[str, float] = {"step": start_step}
    step = start_step
    save_due = False
    # A progress bar in a terminal; in a log file (a cluster job's output) one plain line per logging step instead.
    interactive = sys.stderr.isatty()
    progress = tqdm(total=schedule.total_steps, initial=start_step, desc="pretraining", unit="step",
                    disable=not (accelerator.is_local_main_process and interactive), dynamic_ncols=True)  # fmt: skip
    model.train()
    try:
        while step < schedule.total_steps:
            epoch, step_in_epoch = divmod(step, schedule.steps_per_epoch)
            sampler.set_epoch(epoch)
            epoch_loader = train_loader
            if step_in_epoch:  # resuming mid-epoch: skip the batches (not the videos' decoding) already trained on
                epoch_loader = accelerator.skip_first_batches(train_loader, step_in_epoch * accumulation)
            epoch_loader.set_epoch(epoch)
            batch_in_step = 0
            step_nonfinite = torch.zeros((), dtype=torch.bool, device=device)
            for batch in epoch_loader:
                if batch_in_step == 0:
                    noise = step_noise(training_args.seed, step, schedule.global_batch_size, num_patches,
                                       noise_generator, device)  # fmt: skip
                # Accelerate gives process r the batches r, r + world_size, ... of the global order.
                first_row = (batch_in_step * world_size + rank) * clips_per_batch
                pixel_values = batch["pixel_values"]
                if pixel_values.dtype == torch.uint8:  # --normalize_on_device
                    pixel_values = normalize(pixel_values, clip_config.image_mean, clip_config.image_std)
                with accelerator.accumulate(model):
                    outputs = model(pixel_values=pixel_values, noise=noise[first_row : first_row + clips_per_batch])
                    loss = outputs.loss
                    finite = torch.isfinite(loss.detach())
                    step_nonfinite |= ~finite
                    sampling_loss = outputs.sampling_loss if adaptive else torch.zeros((), device=device)
                    losses = torch.stack([loss.detach(), outputs.reconstruction_loss.detach(), sampling_loss.detach()])
                    interval_sums[:3] += torch.where(finite, losses.double(), 0.0)
                    interval_sums[3] += finite.double()
                    accelerator.backward(loss)
                    if accelerator.sync_gradients:
                        grad_norm = update_unless_nonfinite(accelerator, model, optimizer, guard, step_nonfinite,
                                                            step + 1, training_args.max_grad_norm, skip_on_device,
                                                            grad_norm)  # fmt: skip
                if collects_diagnostic_batch(step + 1, diagnostic_steps, start_step, schedule.total_steps,
                                             training_args.logging_steps):  # fmt: skip
                    # kept only for the few steps before a log step, as they came (uint8 under --normalize_on_device:
                    # a quarter of the memory of the normalised clips)
                    recent_batches.append(batch["pixel_values"])
                interval_batches += 1
                batch_in_step += 1
                if not accelerator.sync_gradients:
                    continue

                # An optimizer step (or a skipped one) is complete.
                learning_rate = scheduler.get_last_lr()[0]
                scheduler.step()  # per step, skipped or not: lr stays a function of the step alone
                step += 1
                batch_in_step = 0
                step_nonfinite = torch.zeros((), dtype=torch.bool, device=device)
                progress.update(1)

                if step % training_args.logging_steps == 0 or step == schedule.total_steps or step == start_step + 1:
                    guard.flush()
                    values = reduce_interval(accelerator, interval_sums, skipped_videos)
                    # the interval ends here, so the logging below counts into the next one: clips/s is wall-clock
                    now = time.perf_counter()
                    elapsed, interval_start = now - interval_start, now
                    record = {
                        "epoch": step / schedule.steps_per_epoch,
                        "loss": values["loss"],
                        "reconstruction_loss": values["reconstruction_loss"],
                        "lr": learning_rate,
                        "clips_per_second": interval_batches * clips_per_batch * world_size / max(elapsed, 1e-9),
                        "nonfinite_steps": guard.total,
                        "skipped_videos": values["skipped_videos"],
                    }
                    if adaptive:
                        record["sampling_loss"] = values["sampling_loss"]
                    if grad_norm is not None:
                        record["grad_norm"] = float(grad_norm)
                    # every process runs its recent micro-batches again and the values pool over all of them
                    normalized = (normalize(clips, clip_config.image_mean, clip_config.image_std)
                                  if clips.dtype == torch.uint8 else clips for clips in recent_batches)  # fmt: skip
                    record.update(averaged_sampler_diagnostics(diagnostic_model, normalized, accelerator, step))
                    recent_batches.clear()
                    scalar_log.log(record, step=step)
                    if interactive:
                        progress.set_postfix(
                            loss=f"{record['loss']:.4f}", rec=f"{record['reconstruction_loss']:.4f}",
                            samp=f"{record.get('sampling_loss', 0.0):.2e}", lr=f"{learning_rate:.2e}",
                            clips_s=f"{record['clips_per_second']:.1f}", refresh=False,
                        )  # fmt: skip
                    elif accelerator.is_main_process:
                        logger.info(log_line(step, schedule.total_steps, record))
                    last_logged = {"step": step, **record}
                    interval_sums.zero_()
                    interval_batches = 0

                # A checkpoint only after a real update: during a non-finite streak `latest` stays on the last good one,
                # and a save point that falls in the streak is kept at its first finite step.
                save_due |= step % training_args.save_steps == 0 or step == schedule.total_steps
                if save_due:
                    guard.flush()
                if save_due and guard.consecutive == 0:
                    save_due = False
                    path = save_checkpoint(
                        accelerator, training_args.output_dir, step,
                        {"epoch": epoch, "steps_per_epoch": schedule.steps_per_epoch,
                         "total_steps": schedule.total_steps, "global_batch_size": schedule.global_batch_size,
                         "num_processes": world_size, "seed": training_args.seed, **guard.state_dict()},
                        save_total_limit=training_args.save_total_limit,
                    )  # fmt: skip
                    guard.last_checkpoint = str(path)
                if draw_figures and step % training_args.visualize_steps == 0:
                    figures = Path(training_args.output_dir) / "visualizations"
                    write_mask_figure(unwrapped, figure_video, figures / f"masks-step-{step}.gif", clip_config)
                if step >= schedule.total_steps:
                    break
    finally:
        progress.close()
    return last_logged


def log_line(step: int, total_steps: int, record: dict[str, float]) -> str:
    """One plain line of a logging step, for a log file: step, losses, lr, throughput (and the counters when not 0)."""
    parts = [f"loss {record['loss']:.4f}", f"reconstruction {record['reconstruction_loss']:.4f}"]
    if "sampling_loss" in record:
        parts.append(f"sampling {record['sampling_loss']:.3e}")
    parts += [f"lr {record['lr']:.3e}", f"{record['clips_per_second']:.1f} clips/s"]
    if record.get("nonfinite_steps"):
        parts.append(f"{record['nonfinite_steps']} non-finite steps")
    if record.get("skipped_videos"):
        parts.append(f"{record['skipped_videos']} skipped videos")
    return f"step {step}/{total_steps}: " + ", ".join(parts)


def collects_diagnostic_batch(upcoming_step: int, diagnostic_steps: int, start_step: int, total_steps: int,
                              log_steps: int) -> bool:
    """Whether a micro-batch of optimizer step `upcoming_step` is kept for the sampler diagnostics: it is one of the
    `diagnostic_steps` steps that end at a logging step (every `log_steps`-th, the first after `start_step`, the last)."""
    return (
        upcoming_step == start_step + 1
        or upcoming_step > total_steps - diagnostic_steps
        or -upcoming_step % log_steps < diagnostic_steps
    )


def update_unless_nonfinite(accelerator, model, optimizer, guard: NonFiniteLossGuard, nonfinite: torch.Tensor,
                            step: int, max_grad_norm: float | None, on_device: bool, grad_norm):  # fmt: skip
    """Clip and apply the optimizer update of `step`, unless `nonfinite` (a bool scalar tensor: a loss of this step was
    NaN or infinite on this process) is true on any process; then zero the gradients. Returns the gradient norm to log,
    that of the last real update.

    `on_device` (`skips_updates_on_device`): fused AdamW decides from the tensor and the guard reads it back later.
    Otherwise it is read back now, and a skipped step is not even clipped: under fp16, clipping unscales the
    gradients, which only an optimizer step resets.
    """
    if accelerator.num_processes > 1:  # every process skips if any must: the gradients are averaged over all
        nonfinite = accelerator.reduce(nonfinite.float(), reduction="sum") > 0
    if on_device:
        if max_grad_norm:
            norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
            grad_norm = norm if grad_norm is None else torch.where(nonfinite, grad_norm, norm)
        step_unless(optimizer, nonfinite)
        guard.record_later(nonfinite, step=step)
    else:
        skip = bool(nonfinite.item())
        if not skip:
            if max_grad_norm:
                grad_norm = accelerator.clip_grad_norm_(model.parameters(), max_grad_norm)
            optimizer.step()
        guard.record(finite=not skip, step=step)
    optimizer.zero_grad(set_to_none=True)
    return grad_norm


def reduce_interval(accelerator, interval_sums: torch.Tensor, skipped_videos) -> dict[str, float]:
    """Means of the interval's losses over every process's finite forward passes, and the skipped-video total."""
    skipped = skipped_videos.count if skipped_videos is not None else 0
    values = torch.cat([interval_sums, interval_sums.new_tensor([skipped])])
    if accelerator.num_processes > 1:
        values = accelerator.reduce(values, reduction="sum")
    loss_sum, reconstruction_sum, sampling_sum, count, skipped_total = values.tolist()
    nan = float("nan")
    return {
        "loss": loss_sum / count if count else nan,
        "reconstruction_loss": reconstruction_sum / count if count else nan,
        "sampling_loss": sampling_sum / count if count else nan,
        "skipped_videos": int(skipped_total),
    }


# ---------------------------------------------------------------------------------------------------------------------
# The end of a run


def write_mask_figure(model, video_path: str, output_path: Path, clip_config: VideoClipConfig) -> Path | None:
    """The five-panel figure of `adamae_hf.visualize` (GIF plus a PNG strip beside it) for `video_path`, drawn by a
    model or a saved folder. Returns the GIF's path; a video or model it cannot draw only warns: a figure never
    stops a run."""
    try:
        return visualize(model, video_path, output_path, clip_config=clip_config)[0]
    except (VideoDecodeError, ValueError, OSError) as error:
        logger.warning(f"No mask figure from {video_path}: {error}")
        return None


# What an upload of the output folder leaves out: everything in subfolders (checkpoints, logs, the demo's videos), the
# `latest` pointer and hidden files. The model folder is the top-level files: weights, config, the Hub code files, the
# processor config, the card, figures, run_arguments.json.
UPLOAD_IGNORE_PATTERNS = ["*/*", LATEST_FILE, ".*"]


def finish_pretraining(
    accelerator,
    model,
    clip_config: VideoClipConfig,
    training_args: PretrainingArguments,
    settings: dict[str, Any],
    results: dict[str, float],
    datasets: list[str] | None = None,
    hub_api=None,
    figure_video: str | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write the final model folder into `output_dir`: `save_pretrained` (safetensors, config with auto_map, the Hub
    custom-code files), the processor config (`preprocessor_config.json`), the five-panel mask figure of
    `figure_video` (`masks.gif`, `masks.png`), the model card (`README.md`: settings, final losses, the figure); with
    `--push_to_hub`, then upload it to `repo_id` (the full id `check_hub_access` returned at start-up; checked here
    when None). Every file is written before the upload starts, so a failed upload loses nothing: its `UserError`
    names the one command that retries it. Every process calls it (FSDP/DeepSpeed gather the weights)."""
    output_dir = Path(training_args.output_dir)
    state_dict = accelerator.get_state_dict(model)  # collective under FSDP / DeepSpeed ZeRO-3
    unwrapped = accelerator.unwrap_model(model)

    def write_and_upload():  # the main process's work; a failed upload then stops every process
        nonlocal repo_id
        unwrapped.save_pretrained(output_dir, state_dict=state_dict, safe_serialization=True)
        save_video_processor(output_dir, clip_config)
        figure = None
        if training_args.visualize and figure_video:
            # drawn from the folder just saved, which holds the whole model even when training sharded it
            figure = write_mask_figure(str(output_dir), figure_video, output_dir / "masks.gif", clip_config)
        if training_args.push_to_hub and repo_id is None:
            repo_id = check_hub_access(training_args.hub_model_id, token=training_args.hub_token,
                                       private=bool(training_args.hub_private_repo), api=hub_api)  # fmt: skip
        if not training_args.push_to_hub:
            repo_id = None
        card = build_model_card(
            "pretraining",
            model_id=repo_id or str(output_dir),
            config=unwrapped.config,
            settings=settings,
            results={name: value for name, value in results.items() if isinstance(value, (int, float))},
            datasets=datasets,
            visualization=figure.name if figure else None,
        )
        save_model_card(card, output_dir)
        logger.info(f"Saved the pretrained model to {output_dir}")
        if repo_id is not None:
            url = push_folder_to_hub(
                output_dir, repo_id, commit_message="AdaMAE pretraining (run_pretrain.py)",
                token=training_args.hub_token, api=hub_api, ignore_patterns=UPLOAD_IGNORE_PATTERNS,
            )  # fmt: skip
            logger.info(f"Uploaded {output_dir} to {url}")

    on_every_process(accelerator, write_and_upload if accelerator.is_main_process else lambda: None)
    accelerator.wait_for_everyone()
    return output_dir


__all__ = [
    "DEMO_ARGUMENTS",
    "DEMO_VIDEOS",
    "DataArguments",
    "ModelArguments",
    "PretrainingArguments",
    "PretrainingResult",
    "build_model",
    "build_model_config",
    "UPLOAD_IGNORE_PATTERNS",
    "build_train_dataset",
    "finish_pretraining",
    "log_line",
    "parse_config_overrides",
    "parse_pretraining_args",
    "prepare_output_dir",
    "pretraining_argument_parser",
    "run_pretraining",
    "train_loop",
]
