"""Every place videos come from, opened the same way: one flag per split, read into a video index or a stream.

A source (``--train_index``, ``--validation_index``, ``--test_index``) is any of:

* a ``.csv`` / ``.jsonl`` index file (:func:`~adamae_hf.data.index.index_from_file`);
* a folder of class folders ``<class>/<video>`` (:func:`~adamae_hf.data.index.index_from_folder`), or a folder
  with one such folder per split (``train/<class>/<video>``, ``validation/...``: the split's folder is used);
* tar shards in the WebDataset layout (``<key>.mp4`` + ``<key>.cls`` and/or ``<key>.json``, ``classes.txt``
  beside them): a folder holding ``*.tar``, a glob (``/data/k400/shard-*.tar``), or an fsspec URL
  (``s3://bucket/k400/``), read by ``datasets``' ``webdataset`` builder;
* a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``;
* anything else: a ``datasets`` name or path for ``load_dataset`` (``--dataset_config_name``, the split's name,
  ``--streaming``), e.g. a Hub repo with a ``Video`` column or in the ``videofolder`` layout.

Map-style sources become a video index (:mod:`adamae_hf.data.index`: ``path`` [, ``bytes``] and a ClassLabel
``label``), read by :class:`~adamae_hf.data.dataset.VideoClipDataset`. With ``--streaming`` every source becomes a
``datasets.IterableDataset`` of the same columns, read by
:class:`~adamae_hf.data.streaming.StreamingVideoClipDataset`. :func:`clip_dataset` picks the one that fits.
"""

from __future__ import annotations

import glob
import logging
import os
import tempfile
import uuid
from dataclasses import dataclass, field

import datasets
import fsspec

from .config import VideoClipConfig
from .dataset import SkippedVideos, VideoClipDataset
from .decoding import VIDEO_EXTENSIONS
from .index import (
    BYTES_COLUMN,
    LABEL_COLUMN,
    PATH_COLUMN,
    UnknownLabelError,
    index_from_dataset,
    index_from_file,
    index_from_folder,
)
from .streaming import WEBDATASET_LABEL, StreamingVideoClipDataset, VideoStreamRows


logger = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
INDEX_FILE_EXTENSIONS = (".csv", ".jsonl", ".json")
CLASSES_FILE = "classes.txt"  # beside tar shards: class names in id order, one a line
SAVED_DATASET_FILES = ("dataset_info.json", "state.json", "dataset_dict.json")
# Video and label columns looked for, in order, when --video_column / --label_column are not given.
VIDEO_COLUMNS = ("video", "mp4", PATH_COLUMN)
LABEL_COLUMNS = (LABEL_COLUMN, "cls")
# Shards a map-style index is cut into when streamed: enough for many processes x workers.
STREAM_SHARDS = 256


@dataclass
class DataSourceArguments:
    """Where the videos of each split come from; the same flags in ``run_pretrain.py`` and ``run_finetune.py``."""

    train_index: str | None = field(
        default=None,
        metadata={
            "help": "Training videos: a .csv/.jsonl index, a folder of <class>/<video> folders, tar shards "
            "(a folder, glob or URL of .tar files), a save_to_disk folder, or a datasets name/path."
        },
    )
    validation_index: str | None = field(default=None, metadata={"help": "Validation videos (as --train_index)."})
    test_index: str | None = field(default=None, metadata={"help": "Test videos (as --train_index)."})
    dataset_config_name: str | None = field(
        default=None, metadata={"help": "The configuration of a datasets name (load_dataset's `name`)."}
    )
    train_split: str = field(default="train", metadata={"help": "Split of a datasets source used for training."})
    validation_split: str = field(default="validation", metadata={"help": "Split used for validation."})
    test_split: str = field(default="test", metadata={"help": "Split used for testing."})
    streaming: bool = field(
        default=False,
        metadata={
            "help": "Stream the videos (datasets.IterableDataset): no full download or cache; sharded by "
            "process and DataLoader worker, shuffled through a buffer."
        },
    )
    video_column: str | None = field(
        default=None,
        metadata={
            "help": "Column holding the videos (a Video column or file paths); default: the Video column, "
            "else 'video', 'mp4' or 'path'."
        },
    )
    label_column: str | None = field(
        default=None,
        metadata={
            "help": "Column holding the labels (class names or ids); default: the ClassLabel column, else "
            "'label' or 'cls' (tar shards: 'cls', else the 'label' of each <key>.json)."
        },
    )
    data_root: str | None = field(
        default=None,
        metadata={
            "help": "Folder that relative video paths start from (default: the index file's folder; for a "
            "datasets source, the working directory)."
        },
    )
    max_train_videos: int | None = field(
        default=None, metadata={"help": "Use only the first N training videos (quick experiments)."}
    )
    max_eval_videos: int | None = field(
        default=None, metadata={"help": "Use only the first N validation / test videos."}
    )
    shuffle_buffer_size: int = field(
        default=1000,
        metadata={"help": "With --streaming: videos held in the shuffle buffer of each DataLoader worker."},
    )

    def __post_init__(self):
        if self.shuffle_buffer_size < 1:
            raise ValueError(f"--shuffle_buffer_size must be >= 1, got {self.shuffle_buffer_size}")
        for name in ("max_train_videos", "max_eval_videos"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise ValueError(f"--{name} must be >= 1, got {getattr(self, name)}")


@dataclass
class VideoSplit:
    """One split's videos: a map-style ``index`` or a ``stream``, their class names, and a line for logs.

    Both hold the columns ``path`` (str), ``bytes`` (binary or None: decode from these when set) and, when
    labelled, ``label`` (int ids into ``label_names``).
    """

    index: datasets.Dataset | None = None
    stream: datasets.IterableDataset | None = None
    label_names: list[str] | None = None
    description: str = ""
    shuffle_buffer_size: int = 1000  # streaming: per-worker shuffle buffer

    @property
    def has_labels(self) -> bool:
        videos = self.index if self.index is not None else self.stream
        return videos.features is not None and LABEL_COLUMN in videos.features


def open_video_split(args: DataSourceArguments, split: str, label_names: list[str] | None = None) -> VideoSplit | None:
    """The videos of ``split`` ("train", "validation" or "test"), or None when its flag is not given.

    Args:
        args: The source flags.
        split: Which split.
        label_names: Class names in id order (e.g. the model's): labels become those ids, and a label that is not
            one of them raises :class:`~adamae_hf.data.index.UnknownLabelError`. Default: the source's own classes.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    source = getattr(args, f"{split}_index")
    if not source:
        return None
    flag = f"--{split}_index"
    max_videos = args.max_train_videos if split == "train" else args.max_eval_videos
    try:
        videos, names, what = _open_source(args, source, split, label_names)
    except UnknownLabelError as error:
        raise UnknownLabelError(f"{flag}: {error}") from None
    if isinstance(videos, datasets.IterableDataset):
        if max_videos is not None:
            videos = first_videos_of_stream(videos, max_videos)
        count = f"first {max_videos} videos, streamed" if max_videos is not None else "streamed"
        description = f"{split}: {what} ({count}, {videos.num_shards} shards{_classes_text(names)})"
        return VideoSplit(
            stream=videos, label_names=names, description=description, shuffle_buffer_size=args.shuffle_buffer_size
        )
    if max_videos is not None:
        videos = videos.select(range(min(max_videos, len(videos))))
    description = f"{split}: {len(videos):,} videos from {what}{_classes_text(names)}"
    return VideoSplit(
        index=videos, label_names=names, description=description, shuffle_buffer_size=args.shuffle_buffer_size
    )


def clip_dataset(
    split: VideoSplit,
    config: VideoClipConfig,
    *,
    train: bool,
    seed: int,
    normalize: bool = True,
    skipped: SkippedVideos | None = None,
    videos_per_batch: int = 1,
    rank: int = 0,
    world_size: int = 1,
    check_decodable: bool = True,
):
    """The clip dataset of a split: :class:`VideoClipDataset` over an index, :class:`StreamingVideoClipDataset`
    over a stream (``videos_per_batch``: the DataLoader's ``batch_size``; ``rank`` / ``world_size``: this process's
    share; both for streams only, where a map-style index is shared by the sampler instead)."""
    if split.index is not None:
        return VideoClipDataset(
            split.index,
            config,
            train=train,
            seed=seed,
            normalize=normalize,
            skipped=skipped,
            check_decodable=check_decodable,
        )
    return StreamingVideoClipDataset(
        split.stream,
        config,
        train=train,
        seed=seed,
        normalize=normalize,
        skipped=skipped,
        videos_per_batch=videos_per_batch,
        shuffle_buffer_size=split.shuffle_buffer_size,
        rank=rank,
        world_size=world_size,
    )


def first_videos_of_stream(stream: datasets.IterableDataset, count: int) -> datasets.IterableDataset:
    """The first ``count`` rows of a stream, as a stream of their own cut into shards for workers and processes.

    They are read into memory, through a temporary folder deleted at once (not ``datasets``' cache: a cached copy
    could be stale, since the stream's files may change under the same names, and a fresh one each run would pile
    up there): ``IterableDataset.take`` would take ``count`` rows from each worker's shards instead of ``count`` in
    all."""
    with tempfile.TemporaryDirectory(prefix="adamae_first_videos_") as folder:
        rows = datasets.Dataset.from_generator(
            _first_rows,
            gen_kwargs={"stream": stream, "count": count},
            features=stream.features,
            cache_dir=folder,
            keep_in_memory=True,
            fingerprint=uuid.uuid4().hex,
        )
    return rows.to_iterable_dataset(num_shards=min(STREAM_SHARDS, len(rows)))


def _first_rows(stream: datasets.IterableDataset, count: int):
    yield from stream.take(count)


# ---------------------------------------------------------------------------------------------------------------------
# Which kind of source


def _open_source(args: DataSourceArguments, source: str, split: str, label_names):
    """(index or stream, class names, a description of the source)."""
    flag, split_name = f"--{split}_index", getattr(args, f"{split}_split")
    source = os.path.expanduser(source)
    try:
        shards = tar_shard_files(source)
    except ImportError as error:  # e.g. s3:// without s3fs: fsspec says what to install
        raise ValueError(f"{flag}: cannot read {source!r}: {error}") from None
    if shards:
        return _open_tar_shards(args, source, shards, label_names)
    if "://" in source or glob.has_magic(source):
        raise ValueError(f"{flag}: {source!r} names no .tar shards (a URL or a glob is read as WebDataset shards)")
    if os.path.isfile(source):
        if not source.endswith(INDEX_FILE_EXTENSIONS):
            raise ValueError(
                f"{flag}: expected a .csv or .jsonl index, tar shards, a folder or a datasets name, got "
                f"the file {source!r}"
            )
        index = index_from_file(source, data_root=args.data_root, label_names=label_names)
        return _maybe_stream(args, index), _index_label_names(index), f"index file {source}"
    if os.path.isdir(source):
        return _open_folder(args, source, split, split_name, label_names)
    if _looks_like_a_path(source):
        raise ValueError(
            f"{flag}: no such file or folder: {source!r} (expected a .csv/.jsonl index, a folder, tar "
            "shards or a datasets name)"
        )
    dataset = datasets.load_dataset(source, args.dataset_config_name, split=split_name, streaming=args.streaming)
    config = f" ({args.dataset_config_name})" if args.dataset_config_name else ""
    return _from_datasets(args, dataset, label_names) + (f"dataset {source}{config} split {split_name!r}",)


def _open_folder(args: DataSourceArguments, folder: str, split: str, split_name: str, label_names):
    if any(os.path.exists(os.path.join(folder, name)) for name in SAVED_DATASET_FILES):
        dataset = datasets.load_from_disk(folder)
        if isinstance(dataset, datasets.DatasetDict):
            if split_name not in dataset:
                raise ValueError(
                    f"--{split}_index: {folder} holds the splits {list(dataset)}, not {split_name!r} (--{split}_split)"
                )
            dataset = dataset[split_name]
        if args.streaming:
            dataset = dataset.to_iterable_dataset(num_shards=min(STREAM_SHARDS, len(dataset)))
        return _from_datasets(args, dataset, label_names) + (f"saved dataset {folder}",)
    split_folder = os.path.join(folder, split_name)
    if os.path.isdir(split_folder) and _holds_class_folders(split_folder) and not _holds_class_folders(folder):
        folder = split_folder  # videofolder layout with splits: <folder>/<split>/<class>/<video>
    if _holds_class_folders(folder):
        index = index_from_folder(folder, label_names=label_names)
        return _maybe_stream(args, index), _index_label_names(index), f"class folders {folder}"
    # A local datasets repo (parquet, metadata files, a loading script-less layout): load_dataset reads it.
    dataset = datasets.load_dataset(folder, args.dataset_config_name, split=split_name, streaming=args.streaming)
    return _from_datasets(args, dataset, label_names) + (f"dataset folder {folder} split {split_name!r}",)


def _holds_class_folders(folder: str) -> bool:
    """Some sub-folder holds a video file."""
    for entry in os.scandir(folder):
        if entry.is_dir() and any(name.lower().endswith(VIDEO_EXTENSIONS) for name in os.listdir(entry.path)):
            return True
    return False


def _looks_like_a_path(source: str) -> bool:
    """A local path (absolute, relative with ./, or with an extension / several slashes) rather than a Hub name."""
    return (
        os.path.isabs(source)
        or source.startswith(("./", "../"))
        or source.count("/") > 1
        or source.lower().endswith(INDEX_FILE_EXTENSIONS + (".tar",))
    )


def _maybe_stream(args: DataSourceArguments, index: datasets.Dataset):
    """A local index as itself, or with --streaming as a stream of the same rows (cut into shards for workers)."""
    return index.to_iterable_dataset(num_shards=min(STREAM_SHARDS, len(index))) if args.streaming else index


def _index_label_names(index: datasets.Dataset) -> list[str] | None:
    feature = index.features.get(LABEL_COLUMN)
    return list(feature.names) if isinstance(feature, datasets.ClassLabel) else None


def _classes_text(names: list[str] | None) -> str:
    return f", {len(names)} classes" if names else ""


# ---------------------------------------------------------------------------------------------------------------------
# Tar shards


def tar_shard_files(source: str) -> list[str]:
    """The ``.tar`` files a source names, sorted (empty when it names none): a ``.tar`` path or URL, a glob of them,
    or a local folder or fsspec URL holding them."""
    if "://" in source:
        if source.endswith(".tar") and not glob.has_magic(source):
            return [source]
        fs, path = fsspec.core.url_to_fs(source)
        protocol = source.split("://", 1)[0]
        pattern = path if glob.has_magic(path) else path.rstrip("/") + "/*.tar"
        try:
            found = fs.glob(pattern)
        except (OSError, ValueError):  # an unreachable or malformed URL: no shards there
            return []
        return sorted(f"{protocol}://{name}" for name in found if name.endswith(".tar"))
    if glob.has_magic(source):
        return sorted(name for name in glob.glob(os.path.expanduser(source)) if name.endswith(".tar"))
    if os.path.isfile(source) and source.endswith(".tar"):
        return [source]
    if os.path.isdir(source):
        return sorted(glob.glob(os.path.join(glob.escape(source), "*.tar")))
    return []


def read_classes_file(shards: list[str]) -> list[str] | None:
    """The ``classes.txt`` beside the shards (class names in id order), or None."""
    classes_file = shards[0].rsplit("/", 1)[0] + "/" + CLASSES_FILE if "/" in shards[0] else CLASSES_FILE
    try:
        with fsspec.open(classes_file, "r", encoding="utf-8-sig") as handle:
            names = [line.strip() for line in handle if line.strip()]
    except FileNotFoundError:
        return None
    return names or None


def _open_tar_shards(args: DataSourceArguments, source: str, shards: list[str], label_names):
    dataset = datasets.load_dataset(
        "webdataset", data_files={"train": shards}, split="train", streaming=args.streaming
    )
    class_names = read_classes_file(shards)
    videos, names = _from_datasets(args, dataset, label_names, class_names=class_names)
    return videos, names, f"{len(shards)} tar shards {source}"


# ---------------------------------------------------------------------------------------------------------------------
# datasets.Dataset / IterableDataset


def _from_datasets(args: DataSourceArguments, dataset, label_names, class_names: list[str] | None = None):
    """(index or stream with the index's columns, class names) from a ``datasets`` dataset of videos.

    ``class_names`` names integer labels (a tar shards' ``classes.txt``)."""
    features = dataset.features
    if features is None:  # a stream whose features are unknown until read: resolve them from its first rows
        dataset = dataset._resolve_features()
        features = dataset.features
    video_column = _video_column(args.video_column, features)
    label_column = _label_column(args.label_column, features)
    if isinstance(dataset, datasets.IterableDataset):
        rows = VideoStreamRows.from_features(
            features, video_column, label_column, label_names, class_names, data_root=args.data_root
        )
        return rows.apply(dataset), rows.label_names
    if label_column == WEBDATASET_LABEL:
        dataset = dataset.add_column(LABEL_COLUMN, [value["label"] for value in dataset["json"]])
        label_column = LABEL_COLUMN
    if class_names is not None and label_column is not None:
        dataset = dataset.cast_column(label_column, datasets.ClassLabel(names=class_names))
    index = index_from_dataset(dataset, video_column, label_column, data_root=args.data_root, label_names=label_names)
    return index, _index_label_names(index)


def _video_column(asked: str | None, features: datasets.Features) -> str:
    if asked is not None:
        if asked not in features:
            raise ValueError(f"--video_column {asked!r} is not a column of the dataset ({list(features)})")
        return asked
    videos = [name for name, feature in features.items() if isinstance(feature, datasets.Video)]
    candidates = videos + [name for name in VIDEO_COLUMNS if name in features]
    if not candidates:
        raise ValueError(
            f"no video column found among {list(features)}: give --video_column (a Video column or file paths)"
        )
    return candidates[0]


def _label_column(asked: str | None, features: datasets.Features) -> str | None:
    if asked is not None:
        if asked not in features:
            raise ValueError(f"--label_column {asked!r} is not a column of the dataset ({list(features)})")
        return asked
    class_labels = [name for name, feature in features.items() if isinstance(feature, datasets.ClassLabel)]
    candidates = class_labels + [name for name in LABEL_COLUMNS if name in features]
    if candidates:
        return candidates[0]
    if isinstance(features.get("json"), dict) and "label" in features["json"]:
        return WEBDATASET_LABEL
    return None


__all__ = [
    "BYTES_COLUMN",
    "DataSourceArguments",
    "VideoSplit",
    "clip_dataset",
    "first_videos_of_stream",
    "open_video_split",
    "read_classes_file",
    "tar_shard_files",
]
