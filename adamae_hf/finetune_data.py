"""The videos of a fine-tuning run: which classes the model has (`resolve_label_names`), and the training,
validation and test clip datasets (`build_video_datasets`), each split opened through `adamae_hf.data.sources` (an
index file, class folders, tar shards, a `datasets` name or path, streamed or not) and checked against those classes.
"""

from __future__ import annotations

import dataclasses
import glob
import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import datasets
from transformers import TrainingArguments

from .data import (
    UnknownLabelError,
    VideoClipConfig,
    VideoClipDataset,
    index_from_file,
    index_from_folder,
)
from .data.sources import VideoSplit, clip_dataset, open_video_split
from .data.streaming import StreamingVideoClipDataset
from .errors import UserError
from .finetune_arguments import DataArguments
from .hub import HUB_ID_PATTERN


logger = logging.getLogger(__name__)

ClipDataset = VideoClipDataset | StreamingVideoClipDataset
INDEX_FILE_SUFFIXES = (".csv", ".jsonl", ".json", ".tar")


def load_video_index(
    source: str,
    data_root: str | None = None,
    label_names: Sequence[str] | None = None,
    label_source: str = "--class_names",
    require_labels: bool = True,
) -> datasets.Dataset:
    """A local video index (`path`, ClassLabel `label`) from a .csv / .jsonl file or a folder of class folders.

    With `label_names`, ids follow them and an unknown label raises naming it and its file line (or class folder);
    without, the classes are the index's own, sorted.
    """
    if not os.path.exists(source):
        raise UserError(
            f"expected a video index (a .csv or .jsonl file, or a folder of class folders), got {source!r}: no such "
            "file or folder."
        )
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


def with_flag(flag: str, error: BaseException) -> str:
    """An error's message led by the flag that gave the source (once: the sources' own messages may name it)."""
    message = str(error)
    return message if message.startswith(flag) else f"{flag}: {message}"


def open_split(data_args: DataArguments, split: str, label_names: Sequence[str] | None = None) -> VideoSplit:
    """`open_video_split` of a split whose flag is given, with any problem of the source as one `UserError` naming
    the flag (an unknown label stays an `UnknownLabelError`)."""
    flag = f"--{split}_index"
    try:
        return open_video_split(data_args, split, list(label_names) if label_names is not None else None)
    except UnknownLabelError as error:
        raise UnknownLabelError(with_flag(flag, error)) from None
    except (UserError, ValueError, FileNotFoundError) as error:
        raise UserError(with_flag(flag, error)) from error


def split_class_names(data_args: DataArguments, split: str) -> list[str] | None:
    """The classes of a split's videos, in the ids the sources give them (None when the source does not say: no
    labels, or a stream of class names)."""
    # Only a probe: a stream of class names gets its classes afterwards (--class_names or the checkpoint's) or the
    # run stops saying so, so the stream's warning that it would leave its labels out does not apply here.
    stream_logger = logging.getLogger(StreamingVideoClipDataset.__module__)
    level = stream_logger.level
    stream_logger.setLevel(logging.ERROR)
    try:
        return open_split(data_args, split).label_names
    finally:
        stream_logger.setLevel(level)


def resolve_label_names(data_args: DataArguments, checkpoint_labels: list[str] | None) -> tuple[list[str], str]:
    """The classes the model is fine-tuned (or evaluated) on, and where they came from.

    In order: `--class_names`; the training videos' classes (in the checkpoint's order when a fine-tuned checkpoint
    has exactly those classes, so its head keeps its meaning); the checkpoint's classes; the validation or test
    videos' classes.
    """
    if data_args.class_names:
        return list(data_args.class_names), "--class_names"
    names = split_class_names(data_args, "train") if data_args.train_index else None
    if names is not None:
        if checkpoint_labels is not None and sorted(checkpoint_labels) == sorted(names):
            return list(checkpoint_labels), "the checkpoint's id2label (the same classes as the training index)"
        return names, f"the training index {data_args.train_index}"
    if checkpoint_labels is not None:
        return list(checkpoint_labels), "the checkpoint's id2label"
    for split in ("validation", "test"):
        source = getattr(data_args, f"{split}_index")
        names = split_class_names(data_args, split) if source else None
        if names is not None:
            return names, f"the index {source}"
    raise ValueError(
        "No classes to fine-tune on: give --train_index, --class_names, or a fine-tuned checkpoint (a stream whose "
        "labels are class names tells its classes only once read whole: give --class_names)."
    )


def evaluation_clip_config(clip_config: VideoClipConfig, num_clips: int = 1, num_crops: int = 1) -> VideoClipConfig:
    """The clip settings of an evaluation with `num_clips x num_crops` views per video (a plain `VideoClipConfig`:
    `FinetuningClipConfig` admits only one view)."""
    settings = {item.name: getattr(clip_config, item.name) for item in dataclasses.fields(VideoClipConfig)}
    return VideoClipConfig(**{**settings, "num_sample": 1, "num_clips": num_clips, "num_crops": num_crops})


@dataclass
class VideoDatasets:
    """The clip datasets of one run (None where a split is not used) and the classes."""

    label_names: list[str]
    train: ClipDataset | None = None
    validation: ClipDataset | None = None
    test: ClipDataset | None = None

    def test_video_paths(self) -> Sequence[str] | Mapping[int, str]:
        """What a test item's `video_index` names: its row of the index, or for a stream its row's key (the stream's
        paths are read again, without decoding; a path that several rows share gets `#n`, its n-th row)."""
        if isinstance(self.test, VideoClipDataset):
            return self.test.paths
        return self.test.video_paths()


def open_clips(
    data_args: DataArguments,
    split: str,
    config: VideoClipConfig,
    label_names: Sequence[str],
    label_source: str,
    *,
    train: bool,
    seed: int,
    videos_per_batch: int,
    require_labels: bool = True,
) -> tuple[VideoSplit, ClipDataset]:
    """One split's videos and their clip dataset; a problem of the source is one `UserError` naming its flag."""
    flag = f"--{split}_index"
    try:
        opened = open_split(data_args, split, label_names)
    except UnknownLabelError as error:
        raise UserError(f"{error}; the model's classes come from {label_source}.") from None
    logger.info(opened.description)
    if require_labels and not opened.has_labels:
        raise UserError(f"{flag}: {opened.description} has no labels, but this split needs them (--label_column).")
    try:
        # A stream is read by the main process only and its batches dispatched to the others (accelerate's default
        # for an IterableDataset), so it is not split by process here.
        return opened, clip_dataset(opened, config, train=train, seed=seed, videos_per_batch=videos_per_batch)
    except (UserError, ValueError) as error:  # e.g. no video of the index decodes
        raise UserError(with_flag(flag, error)) from error


def build_video_datasets(
    data_args: DataArguments,
    clip_config: VideoClipConfig,
    label_names: list[str],
    label_source: str,
    training_args: TrainingArguments,
) -> VideoDatasets:
    """Training clips (augmented, `num_sample` per video), single-view validation clips, and multi-view test clips,
    for the splits that --do_train, --do_eval and --do_predict ask for."""
    result = VideoDatasets(label_names=label_names)
    seed = training_args.data_seed if training_args.data_seed is not None else training_args.seed
    common = {"label_names": label_names, "label_source": label_source, "seed": seed}
    if training_args.do_train:
        require_source(data_args.train_index, "train", "--train_index")
        _, result.train = open_clips(
            data_args, "train", clip_config, train=True, videos_per_batch=training_args.train_batch_size, **common
        )
    if training_args.do_eval:
        require_source(data_args.validation_index, "eval", "--validation_index")
        _, result.validation = open_clips(
            data_args,
            "validation",
            evaluation_clip_config(clip_config),
            train=False,
            videos_per_batch=training_args.eval_batch_size,
            **common,
        )
    if training_args.do_predict:
        # --test_index, or without one the validation videos, with the test views
        split = "test" if data_args.test_index else "validation"
        require_source(
            data_args.test_index or data_args.validation_index, "predict", "--test_index (or --validation_index)"
        )
        test_config = evaluation_clip_config(clip_config, data_args.test_num_clips, data_args.test_num_crops)
        _, result.test = open_clips(
            data_args,
            split,
            test_config,
            train=False,
            require_labels=False,
            videos_per_batch=training_args.eval_batch_size,
            **common,
        )
    return result


def require_source(source: str | None, task: str, flag: str) -> None:
    if not source:
        raise UserError(f"--do_{task} needs {flag}, got none.")


def hub_dataset_names(data_args: DataArguments) -> list[str]:
    """The Hub dataset ids ("owner/name") among the split sources, in flag order: the model card's `datasets`
    metadata when --dataset_ids does not give it."""
    names = []
    for source in (data_args.train_index, data_args.validation_index, data_args.test_index):
        is_local = not source or os.path.exists(source) or "://" in source or glob.has_magic(source)
        if is_local or source.lower().endswith(INDEX_FILE_SUFFIXES) or not HUB_ID_PATTERN.fullmatch(source):
            continue
        if source not in names:
            names.append(source)
    return names


__all__ = [
    "VideoDatasets",
    "build_video_datasets",
    "evaluation_clip_config",
    "hub_dataset_names",
    "load_video_index",
    "resolve_label_names",
]
