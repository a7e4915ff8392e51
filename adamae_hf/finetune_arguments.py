"""The arguments of `run_finetune.py`: `HfArgumentParser` dataclasses and the parse that fills them.

- `ModelArguments`: the start checkpoint and the classifier's knobs;
- `DataArguments`: the test views, the class list, the predictions file and the model card's data names;
- `RecipeArguments`: the recipe's knobs that `TrainingArguments` has no field for (lr scaling, layer decay, mixup);
- `FinetuningClipConfig`: the data pipeline's `VideoClipConfig` with the fine-tuning recipe's defaults;
- `FinetuningTrainingArguments`: `TrainingArguments` with the recipe's defaults.

`parse_finetuning_args` reads them from flags and / or a YAML or JSON file, below which come the clip settings saved
beside the start model (`clip_config.json`), so evaluating a fine-tuned folder samples clips as its training did.
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

from .data import CLIP_CONFIG_NAME, VideoClipConfig, load_clip_geometry
from .errors import ArgumentParser
from .hub import HUB_ID_PATTERN, VIDEOMAE_EXPORT_FOLDER
from .training import config_file_from_argv, load_config_file, parse_args_with_config_file


logger = logging.getLogger(__name__)


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
class DataArguments:
    """Which videos to train, validate and test on, and how the test views and outputs are made."""

    train_index: str | None = field(
        default=None,
        metadata={
            "help": "Training videos: a .csv (header 'path,label') or .jsonl index, or a folder of class folders "
            "(class_name/video.mp4). Its classes (sorted) become the model's id2label unless --class_names is given."
        },
    )
    validation_index: str | None = field(
        default=None, metadata={"help": "Validation videos (same formats), evaluated with one view per video."}
    )
    test_index: str | None = field(
        default=None,
        metadata={
            "help": "Test videos for --do_predict (default: the validation index), evaluated with --test_num_clips x "
            "--test_num_crops views per video. Labels are optional."
        },
    )
    data_root: str | None = field(
        default=None,
        metadata={"help": "Folder that relative paths in index files are relative to (default: the file's)."},
    )
    class_names: list[str] | None = field(
        default=None,
        metadata={
            "help": "Class names in id order (the model's id2label). Default: the training index's classes, or, "
            "without one, the fine-tuned checkpoint's id2label. (TrainingArguments' --label_names is another thing: "
            "the batch keys that hold labels.)"
        },
    )
    test_num_clips: int = field(
        default=5, metadata={"help": "Temporal views per test video (the recipe: 5 on K400, 2 on SSv2)."}
    )
    test_num_crops: int = field(default=3, metadata={"help": "Spatial views per test clip: 1 (centre) or 3."})
    max_train_videos: int | None = field(default=None, metadata={"help": "Use only the first N training videos."})
    max_eval_videos: int | None = field(
        default=None, metadata={"help": "Use only the first N validation and test videos."}
    )
    predictions_file: str = field(
        default="predictions.jsonl",
        metadata={"help": "--do_predict writes one JSON line per test video here (relative to --output_dir)."},
    )
    dataset_name: str | None = field(
        default=None, metadata={"help": "Readable name of the data for the model card, e.g. 'Kinetics-400'."}
    )
    dataset_ids: list[str] | None = field(
        default=None, metadata={"help": "Hub dataset ids for the model card's `datasets` metadata."}
    )

    def __post_init__(self):
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
                f"with --test_num_clips / --test_num_crops, got num_clips={self.num_clips}, num_crops={self.num_crops}."
            )


@dataclass
class FinetuningTrainingArguments(TrainingArguments):
    """`TrainingArguments` with the fine-tuning recipe's defaults. `per_device_train_batch_size` and
    `per_device_eval_batch_size` count videos: each gives `num_sample` clips in training and
    `test_num_clips x test_num_crops` views in testing."""

    learning_rate: float | None = field(
        default=None,
        metadata={"help": "Peak learning rate as is, with --warmup_lr and --min_lr as given (default: from "
                  "--base_learning_rate, scaled by the batch)."},
    )  # fmt: skip
    weight_decay: float = field(
        default=0.05, metadata={"help": "AdamW weight decay (biases, norms and position tables are exempt)."}
    )
    label_smoothing_factor: float = field(
        default=0.1, metadata={"help": "Label smoothing, folded into the (mixup / cutmix) soft targets."}
    )
    lr_scheduler_type: str = field(
        default="cosine",
        metadata={"help": "'cosine': the recipe's per-step linear warmup from warmup_lr, then cosine to min_lr "
                  "(adamae_hf.optim, as the reference); any other transformers schedule is used as given."},
    )  # fmt: skip
    remove_unused_columns: bool = field(
        default=False,
        metadata={"help": "Must stay False: batches carry `video_index`, which groups views per video."},
    )
    dataloader_pin_memory: bool = field(
        default=torch.accelerator.is_available(),
        metadata={"help": "Pin the batches' memory for the copy to the accelerator (default: where there is one; "
                  "without one, pinning only makes torch warn on every run)."},
    )  # fmt: skip


ARGUMENT_CLASSES = (ModelArguments, DataArguments, RecipeArguments, FinetuningClipConfig, FinetuningTrainingArguments)
FinetuningArguments = tuple[ModelArguments, DataArguments, RecipeArguments, FinetuningClipConfig,
                            FinetuningTrainingArguments]  # fmt: skip
MODEL_SOURCE_FIELDS = ("model_name_or_path", "cache_dir", "model_revision", "token")


def parse_finetuning_args(
    argv: list[str] | None = None, description: str | None = None
) -> tuple[FinetuningArguments, dict[str, Any]]:
    """The five argument dataclasses from flags and / or a YAML or JSON file (`--config FILE`, flag names as keys;
    flags override it; a lone file argument is read as `--config FILE`), and the clip geometry read from the start
    model's `clip_config.json` (empty without one).

    That geometry (frames, sampling rate and mode, crop and resize sizes, normalisation) replaces the defaults, below
    the file and the flags, so evaluating a fine-tuned folder samples clips as its training did."""
    parser = ArgumentParser(ARGUMENT_CLASSES, prog="run_finetune.py", description=description)
    parser.add_argument("--config", help="YAML or JSON file of arguments (flag names as keys); flags override it.")
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        argv = ["--config", argv[0]]
    source = model_source_from(argv)
    presets = saved_clip_geometry(**source)
    try:
        arguments = parse_args_with_config_file(parser, argv, presets)[: len(ARGUMENT_CLASSES)]  # without `config`
        return arguments, presets
    except ValueError as error:
        if not presets:
            raise
        raise ValueError(
            f"{error} (the clip settings that no flag or --config file gave came from "
            f"{source['model_name_or_path']}'s {CLIP_CONFIG_NAME}: "
            + ", ".join(f"{name}={value}" for name, value in presets.items()) + ")"
        ) from error


def model_source_from(argv: list[str]) -> dict[str, str | None]:
    """`--model_name_or_path` and how to fetch it (`--cache_dir`, `--model_revision`, `--token`), from the flags or,
    failing that, from the `--config` file: what the clip presets are read from before the arguments are parsed."""
    pre_parser = argparse.ArgumentParser(add_help=False)
    for name in MODEL_SOURCE_FIELDS:
        pre_parser.add_argument(f"--{name}", default=None)
    values = vars(pre_parser.parse_known_args(argv)[0])
    config_path = config_file_from_argv(argv)
    file_values = load_config_file(config_path) if config_path else {}
    return {name: values[name] if values[name] is not None else file_values.get(name) for name in MODEL_SOURCE_FIELDS}


def saved_clip_geometry(
    model_name_or_path: str | None, cache_dir: str | None = None, model_revision: str | None = None,
    token: str | None = None,
) -> dict[str, Any]:  # fmt: skip
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
        path = hf_hub_download(model_name_or_path, CLIP_CONFIG_NAME, revision=model_revision, cache_dir=cache_dir,
                               token=token)  # fmt: skip
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
