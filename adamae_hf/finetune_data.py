"""The videos of a fine-tuning run: which classes the model has (`resolve_label_names`), and the training,
validation and test clip datasets (`build_video_datasets`), each index checked against those classes."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass

import datasets

from .data import (
    UnknownLabelError,
    VideoClipConfig,
    VideoClipDataset,
    index_from_file,
    index_from_folder,
    label_maps,
)
from .errors import UserError
from .finetune_arguments import DataArguments


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


__all__ = [
    "VideoDatasets",
    "build_video_datasets",
    "evaluation_clip_config",
    "load_video_index",
    "resolve_label_names",
]
