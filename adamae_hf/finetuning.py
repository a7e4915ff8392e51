"""Fine-tuning AdaMAE for video classification with `transformers.Trainer` (the paper's recipe).

The pieces `run_finetune.py` puts together:

- argument dataclasses for `HfArgumentParser`: `ModelArguments`, `DataArguments`, `RecipeArguments`,
  `FinetuningClipConfig` (the data pipeline's `VideoClipConfig` with fine-tuning defaults) and
  `FinetuningTrainingArguments` (`TrainingArguments` with the recipe's defaults);
- labels: `resolve_label_names` picks the class list (given, from the training index, or from a fine-tuned
  checkpoint) and `load_video_index` checks every row against it, naming the label and the file line of an unknown one;
- `build_model`: an `AdaMaeForVideoClassification` from an AdaMAE folder / Hub id, an authors' `.pth` or a VideoMAE
  checkpoint;
- `MixupCutmix`: batch-level mixup / cutmix with label smoothing folded into soft targets (timm's semantics);
- `VideoClassificationTrainer`: AdamW with layer-wise lr decay, mixup in the training step, `video_index` carried
  through evaluation so that views are grouped per video;
- `aggregate_views`, `build_compute_metrics`, `write_predictions`: multi-view testing and per-video predictions;
- `check_run_is_possible` and `prepare_hub_upload`: the start-up checks (something to do; with --push_to_hub, a token
  and a repo it may write) before anything is trained or written;
- `publish`: processor, model card, optional stock-VideoMAE export, all written locally, then the upload.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import torch
from huggingface_hub import hf_hub_download
from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError
from transformers import EvalPrediction, PretrainedConfig, SchedulerType, Trainer, TrainingArguments

from configuration_adamae import AdaMaeConfig
from modeling_adamae import AdaMaeForVideoClassification

from .convert import (
    UnknownHeadCountError,
    convert_authors_checkpoint,
    convert_videomae_to_adamae,
    export_to_videomae,
)
from .errors import UserError, check_model_source
from .data import (
    CLIP_CONFIG_NAME,
    UnknownLabelError,
    VideoClipConfig,
    VideoClipDataset,
    index_from_file,
    index_from_folder,
    label_maps,
    load_clip_geometry,
    save_video_processor,
)
from .hub import (
    FINETUNING_UPLOAD_IGNORE,
    build_model_card,
    check_hub_access,
    push_folder_to_hub,
    save_model_card,
)
from .metrics import load_video_accuracy
from .optim import build_adamw, scaled_learning_rate, warmup_cosine_factor, warmup_cosine_schedule
from .training import config_file_from_argv, load_config_file


logger = logging.getLogger(__name__)

AUTHORS_CHECKPOINT_SUFFIXES = (".pth", ".pt")
PREDICTIONS_TOP_K = 5
VIDEOMAE_EXPORT_FOLDER = "videomae"


# ---------------------------------------------------------------------------------------------------------------------
# Arguments


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


# ---------------------------------------------------------------------------------------------------------------------
# Labels and indexes


def load_video_index(
    source: str,
    data_root: str | None = None,
    label_names: Sequence[str] | None = None,
    label_source: str = "--class_names",
    require_labels: bool = True,
) -> datasets.Dataset:
    """A video index (`path`, ClassLabel `label`) from a .csv / .jsonl file or a folder of class folders.

    With `label_names`, ids follow them and an unknown label raises naming it and its file line (or class folder);
    without, the classes are the index's own, sorted.
    """
    if not os.path.exists(source):
        raise UserError(f"expected a video index (a .csv or .jsonl file, or a folder of class folders), got {source!r}: "
                        "no such file or folder.")  # fmt: skip
    try:
        if os.path.isdir(source):
            index = index_from_folder(source, label_names=label_names)
        else:
            index = index_from_file(source, data_root=data_root, label_names=label_names)
    except UnknownLabelError as error:
        raise UnknownLabelError(f"{error}; the model's classes come from {label_source}.") from None
    if require_labels and "label" not in index.column_names:
        raise ValueError(f"{source}: the index has no 'label' column, but this split needs labels.")
    return index


def index_class_names(source: str, data_root: str | None = None, flag: str = "index") -> list[str]:
    """The classes of an index, in the ids `index_from_file` / `index_from_folder` give them; a `UserError` naming
    `flag` (the option that gave the index) when it cannot be read."""
    try:
        id2label, _ = label_maps(load_video_index(source, data_root))
    except (UserError, ValueError) as error:
        raise UserError(f"{flag}: {error}") from error
    return [id2label[i] for i in range(len(id2label))]


def checkpoint_label_names(config_dict: dict | None) -> list[str] | None:
    """The class names of a fine-tuned AdaMAE checkpoint's head, or None (not a classifier, or only the generic
    'LABEL_i' names)."""
    if not config_dict or config_dict.get("model_type") != AdaMaeConfig.model_type:
        return None
    if not any(name.endswith("ForVideoClassification") for name in config_dict.get("architectures") or []):
        return None
    id2label = config_dict.get("id2label") or {}
    names = [id2label[key] for key in sorted(id2label, key=int)]
    if not names or all(re.fullmatch(r"LABEL_\d+", name) for name in names):
        return None
    return names


def resolve_label_names(data_args: DataArguments, checkpoint_labels: list[str] | None) -> tuple[list[str], str]:
    """The classes the model is fine-tuned (or evaluated) on, and where they came from.

    In order: `--class_names`; the training index's classes (in the checkpoint's order when a fine-tuned checkpoint
    has exactly those classes, so its head keeps its meaning); the checkpoint's classes; the validation or test
    index's classes.
    """
    if data_args.class_names:
        return list(data_args.class_names), "--class_names"
    if data_args.train_index:
        names = index_class_names(data_args.train_index, data_args.data_root, "--train_index")
        if checkpoint_labels is not None and sorted(checkpoint_labels) == sorted(names):
            return list(checkpoint_labels), "the checkpoint's id2label (the same classes as the training index)"
        return names, f"the training index {data_args.train_index}"
    if checkpoint_labels is not None:
        return list(checkpoint_labels), "the checkpoint's id2label"
    for flag, source in (("--validation_index", data_args.validation_index), ("--test_index", data_args.test_index)):
        if source:
            return index_class_names(source, data_args.data_root, flag), f"the index {source}"
    raise ValueError("No classes to fine-tune on: give --train_index, --class_names, or a fine-tuned checkpoint.")


def evaluation_clip_config(clip_config: VideoClipConfig, num_clips: int = 1, num_crops: int = 1) -> VideoClipConfig:
    """The clip settings of an evaluation with `num_clips x num_crops` views per video (a plain `VideoClipConfig`:
    `FinetuningClipConfig` admits only one view)."""
    settings = {item.name: getattr(clip_config, item.name) for item in dataclasses.fields(VideoClipConfig)}
    return VideoClipConfig(**{**settings, "num_sample": 1, "num_clips": num_clips, "num_crops": num_crops})


@dataclass
class VideoDatasets:
    """The datasets of one run (None where a split is not used) and the classes."""

    label_names: list[str]
    label_source: str
    train: VideoClipDataset | None = None
    validation: VideoClipDataset | None = None
    test: VideoClipDataset | None = None


def build_video_datasets(
    data_args: DataArguments,
    clip_config: VideoClipConfig,
    label_names: list[str],
    label_source: str,
    do_train: bool,
    do_eval: bool,
    do_predict: bool,
) -> VideoDatasets:
    """Training clips (augmented, `num_sample` per video), single-view validation clips, and multi-view test clips."""
    result = VideoDatasets(label_names=label_names, label_source=label_source)

    def load(task: str, flag: str, source: str | None, config: VideoClipConfig, limit: int | None) -> VideoClipDataset:
        if not source:
            raise UserError(f"--do_{task} needs {flag}" + (" (or --validation_index)" if task == "predict" else "")
                            + ", got none.")  # fmt: skip
        try:
            index = load_video_index(source, data_args.data_root, label_names, label_source, task != "predict")
            index = index.select(range(min(limit, len(index)))) if limit else index
            return VideoClipDataset(index, config, train=task == "train")  # checks that some video decodes
        except (UserError, ValueError) as error:  # a problem of the index itself: say which flag gave it
            raise UserError(f"{flag}: {error}") from error

    if do_train:
        result.train = load("train", "--train_index", data_args.train_index, clip_config, data_args.max_train_videos)
    if do_eval:
        result.validation = load("eval", "--validation_index", data_args.validation_index,
                                 evaluation_clip_config(clip_config), data_args.max_eval_videos)  # fmt: skip
    if do_predict:
        test_config = evaluation_clip_config(clip_config, data_args.test_num_clips, data_args.test_num_crops)
        flag = "--validation_index" if data_args.validation_index and not data_args.test_index else "--test_index"
        result.test = load("predict", flag, data_args.test_index or data_args.validation_index, test_config,
                           data_args.max_eval_videos)  # fmt: skip
    return result


# ---------------------------------------------------------------------------------------------------------------------
# Model


MODEL_SOURCE_FIELDS = ("model_name_or_path", "cache_dir", "model_revision", "token")
HUB_ID_PATTERN = re.compile(r"[\w.-]+/[\w.-]+")


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


def read_checkpoint_config(model_args: ModelArguments) -> dict | None:
    """The start checkpoint's config.json as a dict (None for an authors' .pth file).

    Raises:
        UserError: a checkpoint file or local folder that does not exist, or a name that is no Hub id.
    """
    source = model_args.model_name_or_path
    if source.endswith(AUTHORS_CHECKPOINT_SUFFIXES):
        if not os.path.isfile(source):
            raise UserError(f"--model_name_or_path: expected an authors' checkpoint file, got {source!r}: no such "
                            "file.")  # fmt: skip
        return None
    check_model_source(source)
    config_dict, _ = PretrainedConfig.get_config_dict(
        model_args.model_name_or_path,
        cache_dir=model_args.cache_dir,
        revision=model_args.model_revision,
        token=model_args.token,
    )
    return config_dict


def _head_size(config_dict: dict | None) -> int | None:
    """Classes of a classifier checkpoint's head, None when the checkpoint has no head."""
    if not config_dict or not any(
        name.endswith("ForVideoClassification") for name in config_dict.get("architectures") or []
    ):
        return None
    return len(config_dict.get("id2label") or {}) or config_dict.get("num_labels")


def build_model(
    model_args: ModelArguments,
    label_names: Sequence[str],
    clip_config: VideoClipConfig,
    checkpoint_config: dict | None = None,
) -> AdaMaeForVideoClassification:
    """`AdaMaeForVideoClassification` with `label_names` as id2label, from any of the three kinds of start checkpoint.

    - an AdaMAE folder or Hub id: a pretraining checkpoint keeps its encoder and gets a new head; a fine-tuned one
      keeps its head if the class count matches (else `ignore_mismatched_sizes` re-initialises it, one log line);
    - an authors' .pth (pretraining or fine-tuned), converted in memory with the clip's frames and size;
    - a transformers VideoMAE checkpoint: its encoder (the sampler and decoder are not needed for classification).

    Raises:
        ValueError: the checkpoint's head has a different class count and `ignore_mismatched_sizes` is off, or the
            model's input size differs from the clip's.
    """
    source = model_args.model_name_or_path
    id2label = dict(enumerate(label_names))
    overrides: dict[str, Any] = {
        "id2label": id2label,
        "label2id": {name: i for i, name in id2label.items()},
        # Soft targets (mixup, label smoothing) must give the soft cross-entropy, never the multi-label loss that
        # transformers infers for float labels when problem_type is unset.
        "problem_type": "single_label_classification",
        "drop_path_rate": model_args.drop_path_rate,
    }
    if model_args.head_init_scale is not None:
        overrides["head_init_scale"] = model_args.head_init_scale
    if model_args.attn_implementation is not None:
        overrides["attn_implementation"] = model_args.attn_implementation
    hub_kwargs = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token}
    if checkpoint_config is None and not source.endswith(AUTHORS_CHECKPOINT_SUFFIXES):
        checkpoint_config = read_checkpoint_config(model_args)
    with tempfile.TemporaryDirectory() as converted_folder:
        if source.endswith(AUTHORS_CHECKPOINT_SUFFIXES):
            # The .pth has no config: the clip settings give its frames and size.
            try:
                converted = convert_authors_checkpoint(
                    source, num_frames=clip_config.num_frames, image_size=clip_config.crop_size
                )
            except UnknownHeadCountError as error:
                raise UnknownHeadCountError(
                    f"{error} run_finetune.py has no head-count flags: convert it first with `adamae-convert authors "
                    f"{source} converted/ --num_attention_heads N` and pass --model_name_or_path converted/."
                ) from error
            converted.save_pretrained(converted_folder)
            checkpoint_config = converted.config.to_dict()
            source, hub_kwargs = converted_folder, {}
            logger.info(
                f"Converted the authors' checkpoint {model_args.model_name_or_path} ({type(converted).__name__})"
            )
        elif checkpoint_config.get("model_type") == "videomae":
            # The converter keeps VideoMAE's encoder (and decoder); a VideoMAE classifier's fc_norm and head are not
            # carried over, so the head is always new.
            convert_videomae_to_adamae(source, output_dir=converted_folder)
            source, hub_kwargs, checkpoint_config = converted_folder, {}, None
            logger.info(f"Converted the VideoMAE checkpoint {model_args.model_name_or_path} to AdaMAE (encoder kept)")
        elif checkpoint_config.get("model_type") != AdaMaeConfig.model_type:
            raise ValueError(
                f"{model_args.model_name_or_path} is a {checkpoint_config.get('model_type')!r} checkpoint; expected an "
                "AdaMAE ('adamae') or VideoMAE ('videomae') checkpoint, or an authors' .pth file."
            )
        head_size = _head_size(checkpoint_config)
        if head_size is not None and head_size != len(label_names) and not model_args.ignore_mismatched_sizes:
            raise ValueError(
                f"{model_args.model_name_or_path} has a classification head for {head_size} classes but the data has "
                f"{len(label_names)}; pass --ignore_mismatched_sizes to re-initialise the head."
            )
        model = AdaMaeForVideoClassification.from_pretrained(
            source, ignore_mismatched_sizes=model_args.ignore_mismatched_sizes, **hub_kwargs, **overrides
        )
    check_clip_matches_model(model.config, clip_config)
    return model


def check_clip_matches_model(config: AdaMaeConfig, clip_config: VideoClipConfig) -> None:
    """The clips must have the frames and size the model was built for (its position table is fixed)."""
    if config.num_frames != clip_config.num_frames or config.frame_size != (clip_config.crop_size,) * 2:
        height, width = config.frame_size
        raise UserError(
            f"the model takes {config.num_frames} frames of {height}x{width}, but the clips would have "
            f"{clip_config.num_frames} frames of {clip_config.crop_size}x{clip_config.crop_size}: set --num_frames "
            f"{config.num_frames} --crop_size {height}."
        )


# ---------------------------------------------------------------------------------------------------------------------
# Mixup / cutmix and label smoothing


def smoothed_one_hot(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """`(B,)` ids -> `(B, num_classes)` targets: 1 - smoothing + smoothing / K on the label, smoothing / K elsewhere
    (so the soft cross-entropy equals timm's label-smoothing cross-entropy)."""
    off_value = smoothing / num_classes
    targets = torch.full((labels.shape[0], num_classes), off_value, device=labels.device)
    return targets.scatter_(1, labels.long()[:, None], 1.0 - smoothing + off_value)


class MixupCutmix:
    """Batch-level mixup / cutmix with label smoothing, as timm's `Mixup(mode="batch", correct_lam=True)` for videos.

    Per batch: with probability `prob` the batch is mixed, by cutmix with probability `switch_prob` (when both are
    on) else by mixup; lambda ~ Beta(alpha, alpha). Each video is mixed with the batch reversed (video i with video
    B-1-i). Mixup blends whole clips; cutmix pastes one box, the same in every frame, and lambda becomes the kept area.
    Targets are the lambda-blend of the two videos' smoothed one-hot labels.

    Args:
        num_classes: K of the targets.
        mixup_alpha, cutmix_alpha: Beta parameters; 0 turns that mix off.
        prob: Probability that a batch is mixed at all.
        switch_prob: Probability of cutmix rather than mixup when both are on.
        label_smoothing: Folded into the targets.
    """

    def __init__(self, num_classes: int, mixup_alpha: float = 0.8, cutmix_alpha: float = 1.0, prob: float = 1.0,
                 switch_prob: float = 0.5, label_smoothing: float = 0.1):  # fmt: skip
        self.num_classes = num_classes
        self.mixup_alpha, self.cutmix_alpha = mixup_alpha, cutmix_alpha
        self.prob, self.switch_prob = prob, switch_prob
        self.label_smoothing = label_smoothing

    @property
    def mixes(self) -> bool:
        return self.prob > 0 and (self.mixup_alpha > 0 or self.cutmix_alpha > 0)

    def sample_parameters(self, generator: torch.Generator | None = None) -> tuple[float, bool]:
        """(lambda, use_cutmix) for one batch; lambda 1 means no mixing."""
        def uniform() -> float:
            return float(torch.rand((), generator=generator))

        def beta(alpha: float) -> float:
            # Beta(a, a) as X / (X + Y) with X, Y ~ Gamma(a): torch.distributions takes no generator.
            gammas = torch._standard_gamma(torch.full((2,), float(alpha)), generator=generator)
            return float(gammas[0] / gammas.sum())

        if not self.mixes or uniform() >= self.prob:
            return 1.0, False
        if self.mixup_alpha > 0 and self.cutmix_alpha > 0:
            use_cutmix = uniform() < self.switch_prob
        else:
            use_cutmix = self.cutmix_alpha > 0
        return beta(self.cutmix_alpha if use_cutmix else self.mixup_alpha), use_cutmix

    @staticmethod
    def cutmix_box(
        height: int, width: int, lam: float, generator: torch.Generator | None = None
    ) -> tuple[int, int, int, int]:
        """timm's `rand_bbox`: a box of sides sqrt(1 - lam) x (height, width) around a uniform centre, clipped to the
        frame. Returns (top, bottom, left, right)."""
        ratio = math.sqrt(1.0 - lam)
        cut_height, cut_width = int(height * ratio), int(width * ratio)
        center_y = int(torch.randint(0, height, (), generator=generator))
        center_x = int(torch.randint(0, width, (), generator=generator))
        top, bottom = max(center_y - cut_height // 2, 0), min(center_y + cut_height // 2, height)
        left, right = max(center_x - cut_width // 2, 0), min(center_x + cut_width // 2, width)
        return top, bottom, left, right

    def __call__(
        self, pixel_values: torch.Tensor, labels: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """`(B, T, C, H, W)` clips and `(B,)` ids -> mixed clips (a new tensor) and `(B, num_classes)` soft targets."""
        lam, use_cutmix = self.sample_parameters(generator)
        if lam < 1.0:
            flipped = pixel_values.flip(0)
            if use_cutmix:
                top, bottom, left, right = self.cutmix_box(*pixel_values.shape[-2:], lam, generator)
                pixel_values = pixel_values.clone()
                pixel_values[..., top:bottom, left:right] = flipped[..., top:bottom, left:right]
                # The area actually pasted (the box may be clipped at the border) sets the targets.
                lam = 1.0 - (bottom - top) * (right - left) / (pixel_values.shape[-2] * pixel_values.shape[-1])
            else:
                pixel_values = pixel_values * lam + flipped * (1.0 - lam)
        targets = smoothed_one_hot(labels, self.num_classes, self.label_smoothing)
        return pixel_values, targets * lam + targets.flip(0) * (1.0 - lam)


# ---------------------------------------------------------------------------------------------------------------------
# Multi-view evaluation and metrics


@dataclass
class VideoScores:
    """Per-video results of an evaluation: `video_ids` (V,) rows of the index, `probabilities` (V, K) softmax averaged
    over each video's views, `labels` (V,) (-100 where the index has none)."""

    video_ids: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray


def aggregate_views(logits: np.ndarray, labels: np.ndarray, video_index: np.ndarray) -> VideoScores:
    """Average the softmax of every view of a video: `(num_views, K)` logits with their labels and `video_index`
    -> one row per distinct video (sorted by index). A video whose item comes more than once (a distributed sampler's
    padding, a bad video replaced by its neighbour) has all its views each time, so averaging over the copies leaves
    it unchanged."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)  # (num_views, K)
    video_ids, inverse, counts = np.unique(np.asarray(video_index), return_inverse=True, return_counts=True)
    sums = np.zeros((len(video_ids), logits.shape[1]))
    np.add.at(sums, inverse, probabilities)
    video_labels = np.full(len(video_ids), -100, dtype=np.int64)
    video_labels[inverse] = np.asarray(labels)
    return VideoScores(video_ids=video_ids, probabilities=sums / counts[:, None], labels=video_labels)


def build_compute_metrics(metric=None) -> Callable[[EvalPrediction], dict[str, float]]:
    """`compute_metrics` for Trainer: groups views by `video_index`, averages their softmax and computes top-1, top-5
    and mean per-class accuracy with the package's `video_accuracy` metric (loaded offline by path). Expects
    `label_ids == (labels, video_index)`, as `VideoClassificationTrainer.prediction_step` returns them."""
    metric = metric if metric is not None else load_video_accuracy(keep_in_memory=True)

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        labels, video_index = eval_prediction.label_ids
        scores = aggregate_views(eval_prediction.predictions, labels, video_index)
        results = {"num_videos": int(len(scores.video_ids))}
        if (scores.labels >= 0).all():  # an unlabelled test index gives predictions only
            results.update(metric.compute(predictions=scores.probabilities, references=scores.labels))
        return results

    return compute_metrics


def write_predictions(
    path: str | os.PathLike,
    scores: VideoScores,
    video_paths: Sequence[str],
    id2label: dict[int, str],
    top_k: int = PREDICTIONS_TOP_K,
) -> str:
    """One JSON line per video: `path`, `labels` and `scores` of the top-k classes (best first), and `label` (the
    true class) where the index has one."""
    top_k = min(top_k, scores.probabilities.shape[1])
    ranking = np.argsort(-scores.probabilities, axis=1, kind="stable")[:, :top_k]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as handle:
        for row, video_id in enumerate(scores.video_ids):
            record = {
                "path": video_paths[int(video_id)],
                "labels": [id2label[int(i)] for i in ranking[row]],
                "scores": [round(float(scores.probabilities[row, i]), 6) for i in ranking[row]],
            }
            if scores.labels[row] >= 0:
                record["label"] = id2label[int(scores.labels[row])]
            handle.write(json.dumps(record) + "\n")
    return str(path)


# ---------------------------------------------------------------------------------------------------------------------
# Trainer


class VideoClassificationTrainer(Trainer):
    """`Trainer` for `AdaMaeForVideoClassification` on `VideoClipDataset` batches (`adamae_hf.data.collate_clips`).

    - The optimizer is `adamae_hf.optim.build_adamw`: AdamW with the weight-decay exemptions and layer-wise lr decay;
      Trainer's scheduler multiplies every group's own lr, so the layer scales hold throughout.
    - In training steps the batch goes through `mixup` (mixup / cutmix / label smoothing -> soft targets); Trainer's
      own label smoother is off since `label_smoothing_factor` is folded into those targets.
    - Batches carry `video_index`; it is kept out of the model and returned beside the labels by `prediction_step`,
      so `compute_metrics` receives `label_ids == (labels, video_index)` and groups views per video.
    - Every save (the model, each checkpoint) also writes `clip_config` as `clip_config.json`, so that evaluating any
      of them samples clips as training did, the VideoMAE video and image processors set to the evaluation transform,
      and the Hub pipeline (`pipeline_adamae.py`, named in config.json's `custom_pipelines`) that scores a video as
      `--do_predict` does (`adamae_hf.data.save_video_processor`).
    """

    def __init__(
        self,
        *args,
        clip_config: VideoClipConfig | None = None,
        layer_decay: float | None = None,
        mixup: MixupCutmix | None = None,
        warmup_epochs: float = 0.0,
        warmup_lr: float = 0.0,
        min_lr: float = 0.0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.warmup_epochs, self.warmup_lr, self.min_lr = warmup_epochs, warmup_lr, min_lr
        if self.args.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns must be False: the batches' `video_index` groups each video's views."
            )
        if self.args.optim not in ("adamw_torch", "adamw_torch_fused"):
            raise ValueError(f"the fine-tuning optimizer is AdamW with layer-wise lr decay; --optim {self.args.optim} "
                             "is not supported (use adamw_torch or adamw_torch_fused).")  # fmt: skip
        self.clip_config = clip_config
        self.layer_decay = layer_decay
        self.mixup = mixup
        self.label_smoother = None

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict=state_dict)
        if self.clip_config is not None and self.args.should_save:
            # clip_config.json, the video and image processors and the Hub pipeline that scores as our evaluation
            save_video_processor(output_dir if output_dir is not None else self.args.output_dir, self.clip_config)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            self.optimizer = build_adamw(
                self.model if model is None else model,
                lr=self.args.learning_rate,
                weight_decay=self.args.weight_decay,
                betas=(self.args.adam_beta1, self.args.adam_beta2),
                layer_decay=None if self.layer_decay == 1 else self.layer_decay,
                eps=self.args.adam_epsilon,
                # Trainer logs the first group's lr: the head's (undecayed), not the embeddings' decay^(L+1) of it
                head_first=True,
            )
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """With `lr_scheduler_type="cosine"`, the recipe's schedule (`adamae_hf.optim.warmup_cosine_schedule`): linear
        warmup from `warmup_lr` over `--warmup_steps` or `warmup_epochs` epochs, then cosine to `min_lr`, per step."""
        if self.lr_scheduler is not None:
            return self.lr_scheduler
        if SchedulerType(self.args.lr_scheduler_type) != SchedulerType.COSINE:
            warn_if_warmup_outlasts_training(self.args.get_warmup_steps(num_training_steps), num_training_steps,
                                             self.args.learning_rate, "--warmup_steps")  # fmt: skip
            return super().create_scheduler(num_training_steps, optimizer)
        warmup_steps, option = self.args.warmup_steps, "--warmup_steps"
        if not warmup_steps:
            # Trainer's optimizer steps per epoch: the last, partial accumulation still steps.
            steps_per_epoch = max(math.ceil(len(self.get_train_dataloader()) / self.args.gradient_accumulation_steps), 1)
            warmup_steps = int(round(self.warmup_epochs * steps_per_epoch))
            option = f"--warmup_epochs ({self.warmup_epochs:g} epochs of {steps_per_epoch} steps)"
        peak = self.args.learning_rate
        last_lr = peak * warmup_cosine_factor(num_training_steps - 1, int(warmup_steps), num_training_steps, peak,
                                              self.warmup_lr, self.min_lr)  # fmt: skip
        warn_if_warmup_outlasts_training(int(warmup_steps), num_training_steps, peak, option, last_lr)
        self.lr_scheduler = warmup_cosine_schedule(
            self.optimizer if optimizer is None else optimizer,
            warmup_steps=int(warmup_steps),
            total_steps=num_training_steps,
            base_lr=self.args.learning_rate,
            warmup_lr=self.warmup_lr,
            min_lr=self.min_lr,
        )
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = {key: value for key, value in inputs.items() if key != "video_index"}
        if model.training and self.mixup is not None and "labels" in inputs:
            inputs["pixel_values"], inputs["labels"] = self.mixup(inputs["pixel_values"], inputs["labels"])
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)

    def evaluation_loop(self, *args, **kwargs):
        # A batch's rows are views, not videos: accelerate's gather_for_metrics would cut the last batch to
        # len(dataset) % batch_size rows, scoring its videos from their first views only. Plain gather keeps every row;
        # the duplicate videos a distributed sampler pads with fold into their own (aggregate_views groups by video).
        self.gather_function = self.accelerator.gather
        return super().evaluation_loop(*args, **kwargs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        video_index = self._prepare_input(inputs["video_index"])
        model_inputs = {key: value for key, value in inputs.items() if key != "video_index"}
        loss, logits, labels = super().prediction_step(model, model_inputs, prediction_loss_only, ignore_keys)
        if prediction_loss_only:
            return loss, None, None
        if labels is None:  # an unlabelled test index
            labels = torch.full_like(video_index, -100)
        return loss, logits, (labels, video_index)


def warn_if_warmup_outlasts_training(
    warmup_steps: int, total_steps: int, peak_lr: float, option: str, last_lr: float | None = None
) -> bool:
    """Warn, at the start of training, when the run ends before its warmup does: the lr then never reaches its peak
    (a short run on a small set may train at a few 1e-6 and its loss never moves). Returns whether it warned."""
    if warmup_steps <= total_steps:
        return False
    last_lr = peak_lr * total_steps / warmup_steps if last_lr is None else last_lr
    logger.warning(
        f"This run ends before its warmup does: {total_steps} optimizer steps, {warmup_steps} warmup steps from "
        f"{option}, so the learning rate rises only to {last_lr:.3g}, never to its peak {peak_lr:.3g}. Shorten the "
        "warmup (--warmup_epochs / --warmup_steps) or train longer (--num_train_epochs / --max_steps)."
    )
    return True


def build_mixup(recipe_args: RecipeArguments, num_classes: int, label_smoothing: float) -> MixupCutmix | None:
    """The training-step batch mixer, or None when there is neither mixing nor smoothing (plain cross-entropy)."""
    mixup = MixupCutmix(num_classes, recipe_args.mixup_alpha, recipe_args.cutmix_alpha, recipe_args.mixup_prob,
                        recipe_args.mixup_switch_prob, label_smoothing)  # fmt: skip
    return mixup if mixup.mixes or label_smoothing > 0 else None


def clips_per_step(training_args: TrainingArguments, clip_config: VideoClipConfig) -> int:
    """Clips in one optimizer step over all devices: videos per device x num_sample x devices x accumulation."""
    return (
        training_args.per_device_train_batch_size
        * clip_config.num_sample
        * training_args.world_size
        * training_args.gradient_accumulation_steps
    )


def recipe_learning_rates(
    training_args: TrainingArguments, recipe_args: RecipeArguments, clip_config: VideoClipConfig
) -> tuple[float, float]:
    """Set the peak lr as the recipe states it, base_learning_rate x clips per optimizer step / 256, unless
    --learning_rate gives it; returns the schedule's (warmup_lr, min_lr), scaled like the lr when it was derived."""
    if training_args.learning_rate is not None:
        return recipe_args.warmup_lr, recipe_args.min_lr
    clips = clips_per_step(training_args, clip_config)
    training_args.learning_rate = scaled_learning_rate(recipe_args.base_learning_rate, clips)
    logger.info(f"learning rate {training_args.learning_rate:.3g} = {recipe_args.base_learning_rate:g} x "
                f"{clips} clips per step / 256")  # fmt: skip
    return scaled_learning_rate(recipe_args.warmup_lr, clips), scaled_learning_rate(recipe_args.min_lr, clips)


# ---------------------------------------------------------------------------------------------------------------------
# Publishing


def card_settings(
    training_args: TrainingArguments,
    recipe_args: RecipeArguments,
    model_args: ModelArguments,
    clip_config: VideoClipConfig,
    data_args: DataArguments,
) -> dict[str, Any]:
    """The run's settings as the model card shows them."""
    return {
        "start checkpoint": model_args.model_name_or_path,
        "training length": f"{training_args.num_train_epochs:g} epochs" if training_args.max_steps <= 0
        else f"{training_args.max_steps} steps",
        "clips per optimizer step": clips_per_step(training_args, clip_config),
        "learning rate": training_args.learning_rate,
        "schedule": f"{getattr(training_args.lr_scheduler_type, 'value', training_args.lr_scheduler_type)}, warmup "
        + (f"{training_args.warmup_steps:g} steps" if training_args.warmup_steps else f"{recipe_args.warmup_epochs:g} epochs"),
        "optimizer": f"AdamW betas ({training_args.adam_beta1}, {training_args.adam_beta2}), weight decay "
        f"{training_args.weight_decay}",
        "layer-wise lr decay": recipe_args.layer_decay,
        "drop path": model_args.drop_path_rate,
        "label smoothing": training_args.label_smoothing_factor,
        "mixup / cutmix": f"{recipe_args.mixup_alpha} / {recipe_args.cutmix_alpha}",
        "RandAugment": clip_config.rand_augment or "off",
        "random erasing": clip_config.random_erasing_prob,
        "clip": f"{clip_config.num_frames} frames, {clip_config.sampling_mode} sampling, rate "
        f"{clip_config.sampling_rate}, {clip_config.crop_size}px",
        "repeated sampling": clip_config.num_sample,
        "test views": f"{data_args.test_num_clips} clips x {data_args.test_num_crops} crops",
    }


def card_results(metrics: dict[str, float], data_args: DataArguments) -> tuple[dict, dict, str | None]:
    """(headline results for the card's eval_results, other results for its table, how the headline was measured).
    The multi-view test results are the headline when there are any, else the single-view validation ones."""
    names = ("top1_accuracy", "top5_accuracy", "mean_class_accuracy")
    test = {name: metrics[f"test_{name}"] for name in names if f"test_{name}" in metrics}
    validation = {name: metrics[f"eval_{name}"] for name in names if f"eval_{name}" in metrics}
    views = f"{data_args.test_num_clips} clips x {data_args.test_num_crops} crops per video, softmax averaged"
    if test:
        return test, {f"{name} (1 view)": value for name, value in validation.items()}, views
    return validation, {}, "one view per video (centre clip, centre crop)" if validation else None


def publish(
    trainer: Trainer,
    model_args: ModelArguments,
    data_args: DataArguments,
    recipe_args: RecipeArguments,
    clip_config: VideoClipConfig,
    metrics: dict[str, float],
    repo_id: str | None = None,
) -> None:
    """Write the output folder's model card and the optional stock-VideoMAE export, then upload the folder to
    `repo_id` (the full id `prepare_hub_upload` checked at start-up), if given.

    The model, its processor and clip settings are saved by `trainer.save_model()` beforehand, so every file is on disk
    before the upload starts: a failed upload (a `UserError` naming the command that retries it) loses nothing. Runs on
    the main process only.
    """
    if not trainer.is_world_process_zero():
        return
    args = trainer.args
    output_dir = args.output_dir
    model = trainer.accelerator.unwrap_model(trainer.model)
    results, extra_results, results_note = card_results(metrics, data_args)
    is_hub_id = not os.path.exists(model_args.model_name_or_path) and HUB_ID_PATTERN.fullmatch(
        model_args.model_name_or_path
    )
    card = build_model_card(
        "video-classification",
        repo_id or output_dir,
        model.config,
        settings=card_settings(args, recipe_args, model_args, clip_config, data_args),
        results=results,
        datasets=data_args.dataset_ids,
        dataset_name=data_args.dataset_name,
        base_model=model_args.model_name_or_path if is_hub_id else None,
        extra_results=extra_results,
        results_note=results_note,
        frame_sampling_rate=clip_config.sampling_rate if clip_config.sampling_mode == "dense" else None,
    )
    save_model_card(card, output_dir)
    if model_args.export_videomae:
        export_folder = os.path.join(output_dir, VIDEOMAE_EXPORT_FOLDER)
        export_to_videomae(model, export_folder)
        save_video_processor(export_folder, clip_config)
        logger.info(f"Stock VideoMAEForVideoClassification written to {export_folder}")
    if repo_id is not None:
        url = push_folder_to_hub(output_dir, repo_id, commit_message="Upload fine-tuned AdaMAE",
                                 token=args.hub_token, ignore_patterns=FINETUNING_UPLOAD_IGNORE)  # fmt: skip
        logger.info(f"Uploaded {output_dir} to {url}")


def skipped_video_total(trainer: Trainer, dataset: VideoClipDataset) -> int:
    """Skips of undecodable videos in `dataset` summed over every process (each counts those its own batches met).
    A collective: every process calls it."""
    count = torch.tensor([dataset.skipped.count], dtype=torch.long, device=trainer.accelerator.device)
    return int(trainer.accelerator.reduce(count, reduction="sum").item())


def check_run_is_possible(training_args: TrainingArguments) -> None:
    """Refuse a run with nothing to do, before anything is written (it would only save an untrained classifier)."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise UserError(
            "nothing to do: expected --do_train, --do_eval and/or --do_predict (with --train_index, "
            "--validation_index or --test_index), got none; nothing was written."
        )


def prepare_hub_upload(training_args: TrainingArguments) -> str | None:
    """With `--push_to_hub`, check at start-up, before any training, that the upload at the end can work (a token, an
    endpoint that answers, a repo the token may write: `adamae_hf.hub.check_hub_access`, on the main process) and take
    the upload away from Trainer (`take_push_to_hub`). Returns the repo's full id (None without --push_to_hub and on
    the other processes)."""
    repo_name = take_push_to_hub(training_args)
    if repo_name is None or training_args.process_index != 0:
        return None
    repo_id = check_hub_access(repo_name, token=training_args.hub_token, private=training_args.hub_private_repo)
    logger.info(f"--push_to_hub: {repo_id} is writable; the output folder is uploaded there at the end")
    return repo_id


def take_push_to_hub(training_args: TrainingArguments) -> str | None:
    """The repo to upload to at the end, taking `push_to_hub` away from Trainer: its own pushes would replace our
    model card with its generic one. Returns `hub_model_id` or the output folder's name, None without --push_to_hub."""
    if not training_args.push_to_hub:
        return None
    training_args.push_to_hub = False
    return training_args.hub_model_id or Path(training_args.output_dir).absolute().name


__all__ = [
    "DataArguments",
    "FinetuningClipConfig",
    "FinetuningTrainingArguments",
    "MixupCutmix",
    "ModelArguments",
    "RecipeArguments",
    "VideoClassificationTrainer",
    "VideoDatasets",
    "VideoScores",
    "aggregate_views",
    "build_compute_metrics",
    "build_mixup",
    "build_model",
    "build_video_datasets",
    "check_clip_matches_model",
    "check_run_is_possible",
    "checkpoint_label_names",
    "clips_per_step",
    "evaluation_clip_config",
    "load_video_index",
    "model_source_from",
    "prepare_hub_upload",
    "publish",
    "recipe_learning_rates",
    "read_checkpoint_config",
    "resolve_label_names",
    "saved_clip_geometry",
    "skipped_video_total",
    "smoothed_one_hot",
    "take_push_to_hub",
    "warn_if_warmup_outlasts_training",
    "write_predictions",
]
