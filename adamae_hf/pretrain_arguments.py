"""`run_pretrain.py`'s arguments: the dataclasses (model, training videos, clips, training), the demo's presets and
the parser (`adamae_hf.arguments`: flags over a `--config` file over presets over defaults).

Names follow `transformers.TrainingArguments` where the meaning is the same (`learning_rate`, `warmup_steps`,
`per_device_train_batch_size`, `logging_steps`, `save_steps`, `report_to`, `push_to_hub`, ...); the recipe's own
settings keep theirs (`base_learning_rate`, the peak lr for a global batch of 256; `warmup_epochs`; `warmup_lr`;
`min_lr`).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from configuration_adamae import MASK_TYPES

from .arguments import ArgumentParser
from .data import VideoClipConfig
from .data.sources import DataSourceArguments


RUN_ARGUMENTS_FILE = "run_arguments.json"


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
class DataArguments(DataSourceArguments):
    """Where the training videos are: the source flags `run_finetune.py` shares (`DataSourceArguments`), of which
    pretraining reads the training split. Clip sampling and augmentation are `VideoClipConfig`'s flags
    (--num_frames, --sampling_rate, --crop_size, --train_crop, ...)."""

    _argument_group_name = "training videos (labels, if any, are unused)"

    train_index: str | None = field(
        default=None,
        metadata={
            "help": "Training videos: a .csv/.jsonl index, a folder of <class>/<video> folders, tar shards (a "
            "folder, glob or URL of .tar files), a save_to_disk folder, or a datasets name/path.",
            "aliases": ["--train_index_file", "--train_folder"],  # the names before run_finetune.py's were shared
        },
    )
    # The evaluation splits' flags of the shared family: not listed in --help (pretraining has no evaluation split;
    # __post_init__ refuses the index flags in one line).
    validation_index: str | None = field(default=None, metadata={"help": argparse.SUPPRESS})
    test_index: str | None = field(default=None, metadata={"help": argparse.SUPPRESS})
    validation_split: str = field(default="validation", metadata={"help": argparse.SUPPRESS})
    test_split: str = field(default="test", metadata={"help": argparse.SUPPRESS})
    max_eval_videos: int | None = field(default=None, metadata={"help": argparse.SUPPRESS})
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
        super().__post_init__()
        for split in ("validation", "test"):
            if getattr(self, f"{split}_index"):
                raise ValueError(
                    f"--{split}_index: pretraining reads only --train_index (it has no {split} split); "
                    "evaluate a pretrained model with run_finetune.py or adamae-evaluate-sampler."
                )


@dataclass
class PretrainingArguments:
    """How to train. Defaults are the paper's recipe (AdamW betas (0.9, 0.95), weight decay 0.05, lr 1.5e-4 x
    global batch / 256, 40 warmup epochs, cosine to min lr, 800 epochs)."""

    # the recipe, every number, in docs/method.md
    _argument_group_name = "training (defaults: the paper's recipe)"

    demo: bool = field(
        default=False,
        metadata={
            "help": "Use the demo's defaults: a tiny AdaMAE on generated sample videos (what no arguments run)."
        },
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
        metadata={
            "help": "torch.compile mode with --torch_compile: 'default', 'reduce-overhead' (CUDA graphs), "
            "'max-autotune', ... (default: torch's)."
        },
    )
    gradient_checkpointing: bool = field(
        default=False, metadata={"help": "Recompute activations in the backward pass to save memory."}
    )
    dataloader_num_workers: int = field(default=8, metadata={"help": "Video decoding processes per device."})
    logging_steps: int = field(
        default=20,
        metadata={
            "help": "Log losses, lr, throughput and sampler diagnostics every N steps.",
            "aliases": ["--log_steps"],
        },
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
        for name in (
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "logging_steps",
            "save_steps",
            "max_nonfinite_steps",
            "diagnostic_batches",
        ):
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
  accelerate launch run_pretrain.py --config configs/pretrain_k400_vit_base.yaml --train_index train.csv
  accelerate launch run_pretrain.py --config configs/pretrain_ssv2_vit_base.yaml --train_index train.csv
  ... --resume_from_checkpoint latest          continue a run exactly where its newest checkpoint left it
  ... --mask_type tube --mask_ratio 0.9        the paper's baselines: tube, random, frame

Values come from flags, then the --config file (YAML/JSON, flag names as keys), then the defaults below."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Show defaults and keep the description's line breaks."""


def pretraining_argument_parser() -> ArgumentParser:
    return ArgumentParser(
        PRETRAINING_ARGUMENT_CLASSES,
        prog="run_pretrain.py",
        description=PARSER_DESCRIPTION,
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


def save_run_arguments(output_dir: Path, *argument_objects) -> None:
    """All arguments of the run as JSON, for the record (the Hub token left out)."""
    record = {}
    for arguments in argument_objects:
        record.update(dataclasses.asdict(arguments))
    record.pop("hub_token", None)
    (output_dir / RUN_ARGUMENTS_FILE).write_text(json.dumps(record, indent=2, sort_keys=True, default=str) + "\n")


__all__ = [
    "DEMO_ARGUMENTS",
    "DEMO_VIDEOS",
    "ClipArguments",
    "DataArguments",
    "ModelArguments",
    "PRETRAINING_ARGUMENT_CLASSES",
    "PretrainingArguments",
    "parse_pretraining_args",
    "pretraining_argument_parser",
    "save_run_arguments",
]
