"""The classifier fine-tuning starts from: `build_model` makes an `AdaMaeForVideoClassification` with the run's classes
from any of the three kinds of start checkpoint (an AdaMAE folder or Hub id, an authors' `.pth`, a transformers
VideoMAE checkpoint), and `checkpoint_label_names` reads the classes of a fine-tuned one."""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Sequence
from typing import Any

from transformers import PretrainedConfig

from configuration_adamae import AdaMaeConfig
from modeling_adamae import AdaMaeForVideoClassification

from .convert import UnknownHeadCountError, convert_authors_checkpoint, convert_videomae_to_adamae
from .data import VideoClipConfig
from .errors import UserError, check_model_source
from .finetune_arguments import ModelArguments


logger = logging.getLogger(__name__)

AUTHORS_CHECKPOINT_SUFFIXES = (".pth", ".pt")


def read_checkpoint_config(model_args: ModelArguments) -> dict | None:
    """The start checkpoint's config.json as a dict (None for an authors' .pth file).

    Raises:
        UserError: a checkpoint file or local folder that does not exist, or a name that is no Hub id.
    """
    source = model_args.model_name_or_path
    if source.endswith(AUTHORS_CHECKPOINT_SUFFIXES):
        if not os.path.isfile(source):
            raise UserError(
                f"--model_name_or_path: expected an authors' checkpoint file, got {source!r}: no such file."
            )
        return None
    check_model_source(source)
    config_dict, _ = PretrainedConfig.get_config_dict(
        source, cache_dir=model_args.cache_dir, revision=model_args.model_revision, token=model_args.token
    )
    return config_dict


def is_classifier_config(config_dict: dict | None) -> bool:
    """A checkpoint config whose architecture has a video-classification head."""
    architectures = (config_dict or {}).get("architectures") or []
    return any(name.endswith("ForVideoClassification") for name in architectures)


def checkpoint_label_names(config_dict: dict | None) -> list[str] | None:
    """The class names of a fine-tuned AdaMAE checkpoint's head, or None (not a classifier, or only the generic
    'LABEL_i' names)."""
    if not config_dict or config_dict.get("model_type") != AdaMaeConfig.model_type:
        return None
    if not is_classifier_config(config_dict):
        return None
    id2label = config_dict.get("id2label") or {}
    names = [id2label[key] for key in sorted(id2label, key=int)]
    if not names or all(re.fullmatch(r"LABEL_\d+", name) for name in names):
        return None
    return names


def classifier_overrides(model_args: ModelArguments, label_names: Sequence[str]) -> dict[str, Any]:
    """The config values `from_pretrained` sets on the classifier: the classes and the recipe's knobs."""
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
    return overrides


def convert_authors_start(model_args: ModelArguments, clip_config: VideoClipConfig, folder: str) -> dict:
    """Convert an authors' .pth into an AdaMAE folder `folder`; returns the converted config as a dict. The .pth has
    no config: the clip settings give its frames and size."""
    source = model_args.model_name_or_path
    try:
        converted = convert_authors_checkpoint(
            source, num_frames=clip_config.num_frames, image_size=clip_config.crop_size
        )
    except UnknownHeadCountError as error:
        raise UnknownHeadCountError(
            f"{error} run_finetune.py has no head-count flags: convert it first with `adamae-convert authors "
            f"{source} converted/ --num_attention_heads N` and pass --model_name_or_path converted/."
        ) from error
    converted.save_pretrained(folder)
    logger.info(f"Converted the authors' checkpoint {source} ({type(converted).__name__})")
    return converted.config.to_dict()


def local_start_folder(
    model_args: ModelArguments, clip_config: VideoClipConfig, checkpoint_config: dict | None, folder: str
) -> tuple[str, dict[str, Any], dict | None]:
    """Where `from_pretrained` loads the start checkpoint: `(source, hub kwargs, config dict)`, with an authors' .pth
    or a VideoMAE checkpoint first converted into the empty folder `folder`."""
    source = model_args.model_name_or_path
    hub_kwargs = {"cache_dir": model_args.cache_dir, "revision": model_args.model_revision, "token": model_args.token}
    if source.endswith(AUTHORS_CHECKPOINT_SUFFIXES):
        return folder, {}, convert_authors_start(model_args, clip_config, folder)
    model_type = checkpoint_config.get("model_type")
    if model_type == "videomae":
        # The converter keeps VideoMAE's encoder (and decoder); a VideoMAE classifier's fc_norm and head are not
        # carried over, so the head is always new.
        convert_videomae_to_adamae(source, output_dir=folder)
        logger.info(f"Converted the VideoMAE checkpoint {source} to AdaMAE (encoder kept)")
        return folder, {}, None
    if model_type != AdaMaeConfig.model_type:
        raise ValueError(
            f"{source} is a {model_type!r} checkpoint; expected an AdaMAE ('adamae') or VideoMAE ('videomae') "
            "checkpoint, or an authors' .pth file."
        )
    return source, hub_kwargs, checkpoint_config


def check_head_size(model_args: ModelArguments, checkpoint_config: dict | None, num_labels: int) -> None:
    """A fine-tuned checkpoint's head must have the data's class count unless told to re-initialise it."""
    if not is_classifier_config(checkpoint_config):
        return
    head_size = len(checkpoint_config.get("id2label") or {}) or checkpoint_config.get("num_labels")
    if head_size is not None and head_size != num_labels and not model_args.ignore_mismatched_sizes:
        raise ValueError(
            f"{model_args.model_name_or_path} has a classification head for {head_size} classes but the data has "
            f"{num_labels}; pass --ignore_mismatched_sizes to re-initialise the head."
        )


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
    if checkpoint_config is None and not model_args.model_name_or_path.endswith(AUTHORS_CHECKPOINT_SUFFIXES):
        checkpoint_config = read_checkpoint_config(model_args)
    with tempfile.TemporaryDirectory() as converted_folder:
        source, hub_kwargs, checkpoint_config = local_start_folder(
            model_args, clip_config, checkpoint_config, converted_folder
        )
        check_head_size(model_args, checkpoint_config, len(label_names))
        model = AdaMaeForVideoClassification.from_pretrained(
            source,
            ignore_mismatched_sizes=model_args.ignore_mismatched_sizes,
            **hub_kwargs,
            **classifier_overrides(model_args, label_names),
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


__all__ = [
    "AUTHORS_CHECKPOINT_SUFFIXES",
    "build_model",
    "check_clip_matches_model",
    "checkpoint_label_names",
    "read_checkpoint_config",
]
