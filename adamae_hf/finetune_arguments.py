"""The arguments of `run_finetune.py`: `HfArgumentParser` dataclasses and the parse that fills them.

- `ModelArguments`: the start checkpoint and the classifier's knobs;
- `DataArguments`: where the videos come from (`data.sources.DataSourceArguments`, the same flags as
  run_pretrain.py's), the class list, the test views, the predictions file and the model card's names of the data;
- `RecipeArguments`: the recipe's knobs that `TrainingArguments` has no field for (lr scaling, layer decay, mixup);
- `FinetuningClipConfig`: the data pipeline's `VideoClipConfig` with the fine-tuning recipe's defaults;
- `FinetuningTrainingArguments`: `TrainingArguments` with the recipe's defaults.

`parse_finetuning_args` reads them with `adamae_hf.arguments` (flags over a YAML or JSON file), below which come the
clip settings saved beside the start model (`clip_config.json`), so evaluating a fine-tuned folder samples clips as
its training did.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from transformers import TrainingArguments

from .arguments import ArgumentParser, flag_names_in
from .data import CLIP_CONFIG_NAME, VideoClipConfig, load_clip_geometry
from .data.sources import DataSourceArguments
from .errors import UserError
from .hub import HUB_ID_PATTERN, VIDEOMAE_EXPORT_FOLDER


logger = logging.getLogger(__name__)

# transformers' example scripts take a `datasets` name as --dataset_name; here every split's flag takes one.
DATASET_NAME_FLAG = "dataset_name"
DATASET_NAME_MESSAGE = (
    "--dataset_name is not a flag of run_finetune.py: give a datasets name or path as --train_index / "
    "--validation_index / --test_index (with --dataset_config_name, --streaming); the model card's name of the data "
    "is --dataset_card_name."
)


@dataclass
class ModelArguments:
    """Which checkpoint fine-tuning starts from, and the classifier's architecture knobs."""

    model_name_or_path: str = field(
        metadata={
            "help": "The start checkpoint: an AdaMAE folder or Hub id (pretraining or fine-tuned), an authors' "
            ".pth file (converted on the fly; frames and size from --num_frames / --crop_size), or a transformers "
            "VideoMAE folder or Hub id (its encoder is used)."
        }
    )
    ignore_mismatched_sizes: bool = field(
        default=False,
        metadata={
            "help": "Re-initialise a fine-tuned checkpoint's classification head whose class count differs from the "
            "data's (otherwise that is an error, as in transformers)."
        },
    )
    drop_path_rate: float = field(default=0.1, metadata={"help": "Stochastic depth of the encoder (the recipe: 0.1)."})
    head_init_scale: float | None = field(
        default=None,
        metadata={"help": "Scale of a new head's initial weights (default: the config's, 0.001 as the reference)."},
    )
    attn_implementation: str | None = field(
        default=None, metadata={"help": "Attention implementation: 'eager' or 'sdpa' (default: transformers' choice)."}
    )
    cache_dir: str | None = field(default=None, metadata={"help": "Where Hub downloads are stored."})
    model_revision: str = field(default="main", metadata={"help": "Branch, tag or commit of a Hub checkpoint."})
    token: str | None = field(default=None, metadata={"help": "Hub token for private checkpoints."})
    export_videomae: bool = field(
        default=False,
        metadata={
            "help": f"Also write the fine-tuned model as a stock transformers VideoMAEForVideoClassification (no "
            f"remote code, equal logits) with its processor into <output_dir>/{VIDEOMAE_EXPORT_FOLDER}."
        },
    )


@dataclass
class DataArguments(DataSourceArguments):
    """Where the videos come from (`DataSourceArguments`: the same flags as run_pretrain.py's, e.g. --train_index,
    --validation_index, --test_index, --streaming), and fine-tuning's own: the classes, the test views, the
    predictions file and the model card's names of the data.

    --do_predict tests --test_index, or without one the validation videos, with --test_num_clips x --test_num_crops
    views per video (labels optional); validation takes one view per video."""

    class_names: list[str] | None = field(
        default=None,
        metadata={
            "help": "Class names in id order (the model's id2label). Default: the training videos' classes, or, "
            "without them, the fine-tuned checkpoint's id2label. Needed to train on a stream whose labels are class "
            "names. (TrainingArguments' --label_names is another thing: the batch keys that hold labels.)"
        },
    )
    test_num_clips: int = field(
        default=5, metadata={"help": "Temporal views per test video (the recipe: 5 on K400, 2 on SSv2)."}
    )
    test_num_crops: int = field(default=3, metadata={"help": "Spatial views per test clip: 1 (centre) or 3."})
    predictions_file: str = field(
        default="predictions.jsonl",
        metadata={"help": "--do_predict writes one JSON line per test video here (relative to --output_dir)."},
    )
    dataset_card_name: str | None = field(
        default=None,
        metadata={
            "help": "Readable name of the data for the model card, e.g. 'Kinetics-400' (default: the first "
            "of --dataset_ids)."
        },
    )
    dataset_ids: list[str] | None = field(
        default=None,
        metadata={
            "help": "Hub dataset ids for the model card's `datasets` metadata (default: the Hub datasets "
            "among --train_index / --validation_index / --test_index)."
        },
    )

    def __post_init__(self):
        super().__post_init__()
        for name in ("test_num_clips", "max_train_videos", "max_eval_videos"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if self.test_num_crops not in (1, 3):
            raise ValueError(f"test_num_crops must be 1 or 3, got {self.test_num_crops!r}.")
        if self.class_names is not None:
            duplicates = sorted({name for name in self.class_names if self.class_names.count(name) > 1})
            if not self.class_names:
                raise ValueError("class_names must name at least one class, got none.")
            if duplicates:
                raise ValueError(f"class_names must be distinct class names, got duplicates {duplicates}.")


@dataclass
class RecipeArguments:
    """The fine-tuning recipe's knobs that `TrainingArguments` has no field for."""

    base_learning_rate: float = field(
        default=1e-3,
        metadata={
            "help": "Peak lr for 256 clips per optimizer step; the run's lr is base_learning_rate x (clips per "
            "optimizer step, all devices) / 256 (--learning_rate sets it as is instead)."
        },
    )
    warmup_lr: float = field(
        default=1e-6, metadata={"help": "lr at the first warmup step, for 256 clips per step (scaled like the lr)."}
    )
    min_lr: float = field(
        default=1e-6, metadata={"help": "lr at the end of the cosine, for 256 clips per step (scaled like the lr)."}
    )
    layer_decay: float = field(
        default=0.75,
        metadata={"help": "Layer-wise lr decay: layer i of L gets lr x layer_decay^(L + 1 - i) (1 turns it off)."},
    )
    mixup_alpha: float = field(default=0.8, metadata={"help": "Mixup Beta(alpha, alpha) parameter; 0 turns it off."})
    cutmix_alpha: float = field(default=1.0, metadata={"help": "Cutmix Beta(alpha, alpha) parameter; 0 turns it off."})
    mixup_prob: float = field(default=1.0, metadata={"help": "Probability of mixing a batch at all."})
    mixup_switch_prob: float = field(
        default=0.5, metadata={"help": "With both on, probability that a mixed batch uses cutmix rather than mixup."}
    )
    warmup_epochs: float = field(
        default=5, metadata={"help": "Warmup length in epochs; --warmup_steps > 0 overrides it."}
    )

    def __post_init__(self):
        if not 0 < self.layer_decay <= 1:
            raise ValueError(f"layer_decay must be in (0, 1], got {self.layer_decay}.")
        for name in ("mixup_alpha", "cutmix_alpha"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        for name in ("mixup_prob", "mixup_switch_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}.")
        for name in ("base_learning_rate", "warmup_lr", "min_lr"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}.")
        if self.warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be >= 0, got {self.warmup_epochs}.")


@dataclass
class FinetuningClipConfig(VideoClipConfig):
    """`VideoClipConfig` with the fine-tuning recipe's defaults: random resized crops, RandAugment
    'rand-m7-n4-mstd0.5-inc1', random erasing 0.25. Validation always uses one view per video and the test views come
    from --test_num_clips / --test_num_crops, so `num_clips` / `num_crops` must stay 1."""

    train_crop: str = field(
        default="random_resized",
        metadata={"help": "Training crop: 'random_resized' (fine-tuning) or 'multiscale' (VideoMAE pretraining)."},
    )
    rand_augment: str | None = field(
        default="rand-m7-n4-mstd0.5-inc1",
        metadata={"help": "RandAugment spec in timm syntax (the recipe: 'rand-m7-n4-mstd0.5-inc1')."},
    )
    random_erasing_prob: float = field(
        default=0.25, metadata={"help": "Probability of random erasing per frame (the recipe: 0.25)."}
    )
    num_clips: int = field(default=1, metadata={"help": "Not used by fine-tuning: see --test_num_clips."})
    num_crops: int = field(default=1, metadata={"help": "Not used by fine-tuning: see --test_num_crops."})

    def __post_init__(self):
        super().__post_init__()
        if self.num_clips != 1 or self.num_crops != 1:
            raise ValueError(
                "num_clips and num_crops must be 1 in fine-tuning (validation is single-view); set the test views "
                f"with --test_num_clips / --test_num_crops, got num_clips={self.num_clips}, "
                f"num_crops={self.num_crops}."
            )


@dataclass
class FinetuningTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the fine-tuning recipe's defaults. `per_device_train_batch_size` and
    `per_device_eval_batch_size` count videos: each gives `num_sample` clips in training and
    `test_num_clips x test_num_crops` views in testing."""

    learning_rate: float | None = field(
        default=None,
        metadata={
            "help": "Peak learning rate as is, with --warmup_lr and --min_lr as given (default: from "
            "--base_learning_rate, scaled by the batch)."
        },
    )
    weight_decay: float = field(
        default=0.05, metadata={"help": "AdamW weight decay (biases, norms and position tables are exempt)."}
    )
    label_smoothing_factor: float = field(
        default=0.1, metadata={"help": "Label smoothing, folded into the (mixup / cutmix) soft targets."}
    )
    lr_scheduler_type: str = field(
        default="cosine",
        metadata={
            "help": "'cosine': the recipe's per-step linear warmup from warmup_lr, then cosine to min_lr "
            "(adamae_hf.optim, as the reference); any other transformers schedule is used as given."
        },
    )
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Must stay False: batches carry `video_index`, which groups views per video."},
    )
    dataloader_pin_memory: bool = field(
        default=torch.accelerator.is_available(),
        metadata={
            "help": "Pin the batches' memory for the copy to the accelerator (default: where there is one; "
            "without one, pinning only makes torch warn on every run)."
        },
    )


ARGUMENT_CLASSES = (ModelArguments, DataArguments, RecipeArguments, FinetuningClipConfig, FinetuningTrainingArguments)
FinetuningArguments = tuple[
    ModelArguments, DataArguments, RecipeArguments, FinetuningClipConfig, FinetuningTrainingArguments
]


def parse_finetuning_args(
    argv: list[str] | None = None, description: str | None = None
) -> tuple[FinetuningArguments, dict[str, Any]]:
    """The five argument dataclasses from flags and / or a YAML or JSON file (`adamae_hf.arguments`: `--config FILE`
    or a lone file argument, flag names as keys; flags override it), and the clip geometry read from the start
    model's `clip_config.json` (empty without one).

    That geometry (frames, sampling rate and mode, crop and resize sizes, normalisation) replaces the defaults, below
    the file and the flags, so evaluating a fine-tuned folder samples clips as its training did."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if DATASET_NAME_FLAG in flag_names_in(argv):
        raise UserError(DATASET_NAME_MESSAGE)
    parser = ArgumentParser(ARGUMENT_CLASSES, prog="run_finetune.py", description=description)
    saved: dict[str, Any] = {}  # the start model's clip geometry, once the flags and the file have named the model
    model = {}

    def clip_presets(given: argparse.Namespace) -> dict[str, Any]:
        model["name"] = given.model_name_or_path
        saved.update(saved_clip_geometry(given.model_name_or_path, given.cache_dir, given.model_revision, given.token))
        return saved

    try:
        return parser.parse(argv, presets=clip_presets), saved
    except ValueError as error:
        if not saved:
            raise
        raise ValueError(
            f"{error} (the clip settings that no flag or --config file gave came from "
            f"{model['name']}'s {CLIP_CONFIG_NAME}: "
            + ", ".join(f"{name}={value}" for name, value in saved.items())
            + ")"
        ) from error


def saved_clip_geometry(
    model_name_or_path: str | None,
    cache_dir: str | None = None,
    model_revision: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:
    """The clip geometry saved beside a model (`clip_config.json`, in every model folder and checkpoint this project
    writes, and so in its Hub uploads), or nothing where there is none (authors' checkpoints, converted or older
    folders, other Hub repos, no network)."""
    if not model_name_or_path:
        return {}
    if os.path.isdir(model_name_or_path):
        return load_clip_geometry(model_name_or_path) or {}
    if os.path.exists(model_name_or_path) or not HUB_ID_PATTERN.fullmatch(model_name_or_path):
        return {}  # a checkpoint file
    try:
        path = hf_hub_download(
            model_name_or_path, CLIP_CONFIG_NAME, revision=model_revision, cache_dir=cache_dir, token=token
        )
    except (EntryNotFoundError, HfHubHTTPError, OSError) as error:
        logger.debug(f"No {CLIP_CONFIG_NAME} from {model_name_or_path}: {error}")
        return {}
    return load_clip_geometry(Path(path).parent) or {}


__all__ = [
    "ARGUMENT_CLASSES",
    "DataArguments",
    "FinetuningArguments",
    "FinetuningClipConfig",
    "FinetuningTrainingArguments",
    "ModelArguments",
    "RecipeArguments",
    "parse_finetuning_args",
    "saved_clip_geometry",
]
