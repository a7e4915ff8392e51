"""Clips from a ``datasets.IterableDataset``: videos streamed from the Hub, tar shards or any ``streaming=True`` source.

:class:`StreamingVideoClipDataset` is the streaming twin of :class:`~adamae_hf.data.dataset.VideoClipDataset`: same
items, same views (:func:`~adamae_hf.data.dataset.video_views`), same collate function. How it reads a stream:

* **Sharding.** DataLoader worker ``w`` reads the stream's shards ``w``, ``w + num_workers``, ... (with fewer
  shards than workers, rows ``w``, ``w + num_workers``, ...), and of those each process reads its part
  (``split_dataset_by_node``: whole shards when their number divides by the world size, else every
  ``world_size``-th video). Processes and workers thus read disjoint parts that together cover the stream.
* **Shuffling** (training): the order of each worker's shards and a buffer of ``shuffle_buffer_size`` videos per
  worker, seeded by (seed, epoch) through ``IterableDataset.shuffle(seed=...)`` and ``set_epoch``. A video's
  augmentation depends on (seed, epoch, video key, view) only, the key naming the row itself: a hash of its shard,
  its position in that shard and its path (:func:`stream_video_key`), so two rows of the same path (or of none)
  stay two videos, and the key does not change with shuffling, workers or a resume.
* **Batches as windows.** Each worker cuts its stream into windows of ``videos_per_batch`` videos (the
  DataLoader's ``batch_size``), and every window becomes exactly one batch. In training a last partial window is
  dropped (as ``drop_last``); at evaluation it is kept.
* **Bad videos** (undecodable, or without a known label) are skipped and counted exactly, once per epoch each (``skipped``, a
  :class:`~adamae_hf.data.dataset.SkippedVideos` shared with the workers, warning once per file): the slot of a
  video that does not decode is filled by a good video of the same window (or, if the whole window is bad, of the
  next window holding one), so batches keep their size and windows stay aligned with batches.
* **Exact resume** mid-epoch, with the same number of processes and workers: since worker ``w``'s ``j``-th batch
  is its ``j``-th window, the number of batches each worker served follows from the number of batches consumed
  (the DataLoader takes them round-robin from its workers, skipping a worker once its share has ended), and each
  worker skips that many windows of raw rows without decoding them. A fresh DataLoader asks worker 0 first, so
  after a resume worker ``w`` plays the part of worker ``(w + next) % num_workers``, ``next`` being the worker the
  interrupted DataLoader would have asked next. :meth:`state_dict` records, besides the position, when each
  worker's share ended (only needed near an epoch's end); :meth:`load_state_dict` or :meth:`resume` restore it.

The epoch and the resume position live in shared memory, so persistent workers see :meth:`set_epoch` (call it
before each epoch's ``iter(dataloader)``).
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import logging
import multiprocessing
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import datasets
import fsspec
import torch
from datasets.distributed import split_dataset_by_node

from .config import VideoClipConfig
from .dataset import SkippedVideos, clip_transform, video_views
from .decoding import VideoDecodeError
from .index import BYTES_COLUMN, LABEL_COLUMN, PATH_COLUMN


logger = logging.getLogger(__name__)

# Workers whose end of share shared memory can record (more than any DataLoader uses).
MAX_WORKERS = 256
# Slots of the shared "already warned about" table: a bad video's key picks one (hash collisions only mean a
# missing warning, never a wrong count).
_SKIP_SLOTS = 1 << 20
# A label column name meaning the "label" of a tar shard's <key>.json (WebDataset layout).
WEBDATASET_LABEL = "json.label"
# A row's key (see stream_video_key), added by keyed_stream.
VIDEO_KEY_COLUMN = "video_key"
# Why a row cannot be used (e.g. its label is not a known class), or None: the dataset skips it as a bad video.
PROBLEM_COLUMN = "problem"


def stable_video_key(name: str) -> int:
    """A non-negative 63-bit integer naming a video, the same in every process and run (a hash of ``name``)."""
    return int.from_bytes(hashlib.blake2b(name.encode("utf-8"), digest_size=8).digest(), "big") >> 1


def stream_video_key(shard: int, position: int, path: str) -> int:
    """The key of a stream's row: its shard, its position in that shard and its path. Paths alone may repeat (a Hub
    dataset keeping basenames, the same member name in two tar shards, rows holding only bytes)."""
    return stable_video_key(f"{shard}/{position}/{path}")


def keyed_stream(stream: datasets.IterableDataset) -> datasets.IterableDataset:
    """The stream with a ``video_key`` column (:func:`stream_video_key`), and the same shards.

    The rows are numbered per shard before any split or shuffle, so a row's key is the same whatever the shard
    order, the shuffle buffer, the number of workers and processes, or the resume point."""
    if stream.features is None:
        stream = stream._resolve_features()
    if VIDEO_KEY_COLUMN in stream.features:
        return stream
    features = datasets.Features({**stream.features, VIDEO_KEY_COLUMN: datasets.Value("int64")})
    # A list in gen_kwargs is what datasets shards, shuffles and splits: here the stream's shard numbers.
    shards = {"stream": stream, "shards": list(range(stream.num_shards))}
    split = stream.split if stream.split is not None else datasets.Split.TRAIN
    keyed = datasets.IterableDataset.from_generator(_keyed_rows, features=features, gen_kwargs=shards, split=split)
    if stream.info is not None and stream.split is not None:
        keyed.info.splits = stream.info.splits  # the split's size, when the source tells it (an epoch's length)
    return keyed


def _keyed_rows(stream: datasets.IterableDataset, shards: list[int]) -> Iterator[dict]:
    for shard in shards:
        rows = stream.shard(num_shards=stream.num_shards, index=shard, contiguous=True)
        # IterableDataset.iter reads the shard whole (iterating it in a DataLoader worker would split it again).
        for position, batch in enumerate(rows.iter(batch_size=1)):
            row = {name: values[0] for name, values in batch.items()}
            row[VIDEO_KEY_COLUMN] = stream_video_key(shard, position, row[PATH_COLUMN])
            yield row


# ---------------------------------------------------------------------------------------------------------------------
# Rows of a stream in the index's columns


@dataclass
class VideoStreamRows:
    """Turns a stream's rows into the index's columns: ``path``, ``bytes`` and ``label`` (an id into
    ``label_names``). A picklable callable, for ``IterableDataset.map``.

    Attributes:
        video_column: A ``Video`` column, a ``{"path", "bytes"}`` struct or file paths.
        label_column: The labels (None: unlabelled); ``WEBDATASET_LABEL`` is the ``label`` of a tar shard's
            ``<key>.json``.
        source_names: The names of the source's integer labels (a ClassLabel's, or a ``classes.txt``), if any.
        label_names: The names of the ids produced.
        data_root: Folder that relative file paths start from.
    """

    video_column: str
    label_column: str | None
    source_names: list[str] | None
    label_names: list[str] | None
    data_root: str | None = None
    video_feature_is_video: bool = False

    def __post_init__(self):
        self._label_ids = {name: i for i, name in enumerate(self.label_names or [])}

    @classmethod
    def from_features(
        cls,
        features: datasets.Features,
        video_column: str,
        label_column: str | None,
        label_names: Sequence[str] | None,
        class_names: Sequence[str] | None = None,
        data_root: str | None = None,
    ) -> VideoStreamRows:
        """Decide how labels are read; ``class_names``: the names of integer labels (tar shards' ``classes.txt``)."""
        feature = features.get(label_column) if label_column else None
        source_names = list(feature.names) if isinstance(feature, datasets.ClassLabel) else None
        if source_names is None and class_names is not None:
            source_names = list(class_names)
        integer_labels = source_names is not None or (
            isinstance(feature, datasets.Value) and feature.dtype.startswith(("int", "uint"))
        )
        names = list(label_names) if label_names is not None else source_names
        if label_column is not None and names is None and not integer_labels:
            logger.warning(
                "The stream's labels (%r) are names, and its classes are unknown until the whole stream is read: "
                "labels are left out. Give the class names (label_names) to keep them.",
                label_column,
            )
            label_column = None
        is_video = isinstance(features.get(video_column), datasets.Video)
        return cls(video_column, label_column, source_names, names, data_root, is_video)

    def features(self) -> datasets.Features:
        columns = {PATH_COLUMN: datasets.Value("string"), BYTES_COLUMN: datasets.Value("binary")}
        if self.label_column is not None:
            names = self.label_names
            columns[LABEL_COLUMN] = datasets.ClassLabel(names=names) if names else datasets.Value("int64")
            columns[PROBLEM_COLUMN] = datasets.Value("string")
        return datasets.Features(columns)

    def apply(self, stream: datasets.IterableDataset) -> datasets.IterableDataset:
        """The stream in the index's columns (lazily: nothing is read here)."""
        if self.video_feature_is_video:  # its stored {"path", "bytes"}, not a torchcodec decoder
            stream = stream.cast_column(self.video_column, datasets.Video(decode=False))
        return stream.map(self, remove_columns=list(stream.features), features=self.features())

    def __call__(self, example: dict) -> dict:
        path, data = self._video(example)
        row = {PATH_COLUMN: path, BYTES_COLUMN: data}
        if self.label_column is not None:
            row[LABEL_COLUMN], row[PROBLEM_COLUMN] = self._label(example, path)
        return row

    def _video(self, example: dict) -> tuple[str, bytes | None]:
        value = example[self.video_column]
        if isinstance(value, dict):
            path, data = value.get("path"), value.get("bytes")
        else:
            path, data = value, None
        if data is not None:
            # A tar shard's member is named "<key>.mp4" in every shard: its shard's name makes it unique.
            url = example.get("__url__")
            name = f"{os.path.basename(url)}/{path}" if url else path
            return name or "<bytes>", data
        if path is None:  # nothing to decode: the dataset skips it as a bad video
            return f"<a row without a video in {self.video_column!r}>", None
        if "://" not in path and not os.path.isabs(path):
            path = os.path.abspath(os.path.join(self.data_root or os.getcwd(), path))
        return path, None

    def _label(self, example: dict, path: str) -> tuple[int | None, str | None]:
        """(label id, None), or (None, why there is none): the dataset skips such a row as a bad video, since a
        stream's rows are read hours into a run, where one row must not stop it."""
        if self.label_column == WEBDATASET_LABEL:
            value = (example.get("json") or {}).get("label")
        else:
            value = example[self.label_column]
        if value is None or value == -1:
            return None, "no label"
        if isinstance(value, int) and self.source_names is not None:
            if not 0 <= value < len(self.source_names):
                return None, f"label id {value} is not below the {len(self.source_names)} classes"
            value = self.source_names[value]
        if self.label_names is None:
            return int(value), None
        if isinstance(value, int):
            if 0 <= value < len(self.label_names):
                return value, None
        elif str(value) in self._label_ids:
            return self._label_ids[str(value)], None
        shown = ", ".join(map(repr, self.label_names[:10])) + (", ..." if len(self.label_names) > 10 else "")
        return (
            None,
            f"unknown label {value!r}: a label must be one of the {len(self.label_names)} label_names ({shown})",
        )


# ---------------------------------------------------------------------------------------------------------------------
# The clip dataset


@dataclass
class _Decoded:
    row: dict
    key: int
    views: torch.Tensor | None  # None: the video (or its label) could not be read


class StreamingVideoClipDataset(torch.utils.data.IterableDataset):
    """Decoded, sampled and transformed clips from a stream of videos (see the module's docstring).

    Args:
        stream: A ``datasets.IterableDataset`` with the index's columns (``path``, ``bytes``, ``label``), e.g. a
            :class:`~adamae_hf.data.sources.VideoSplit`'s ``stream``.
        config: Sampling and transform settings.
        train: Shuffled, augmented clips (True) or the evaluation views in stream order (False).
        seed: With the epoch, picks the shuffle and every video's random choices.
        normalize: Normalised float32 clips, or uint8 (see ``VideoClipDataset``).
        videos_per_batch: The DataLoader's ``batch_size``: every batch is one window of this many videos.
        shuffle_buffer_size: Videos in each worker's shuffle buffer (training).
        rank, world_size: This process's share of the stream.
        skipped: Share a :class:`SkippedVideos` (default: a new one). Its count is exact; a video is warned about
            once unless its key shares a slot of the tally's table with another bad video.

    Items are those of ``VideoClipDataset``; ``video_index`` holds the row's key (:func:`stream_video_key`), which
    :meth:`video_paths` turns back into paths.
    """

    def __init__(
        self,
        stream: datasets.IterableDataset,
        config: VideoClipConfig,
        *,
        train: bool,
        seed: int = 0,
        normalize: bool = True,
        videos_per_batch: int = 1,
        shuffle_buffer_size: int = 1000,
        rank: int = 0,
        world_size: int = 1,
        skipped: SkippedVideos | None = None,
    ):
        if videos_per_batch < 1:
            raise ValueError(f"videos_per_batch must be >= 1, got {videos_per_batch}")
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must be in [0, world_size={world_size}), got {rank}")
        self.stream = keyed_stream(stream)
        self.rank, self.world_size = rank, world_size
        self.shuffle_buffer_size = shuffle_buffer_size
        self.config = config
        self.train = train
        self.seed = seed
        self.normalize = normalize
        self.videos_per_batch = videos_per_batch
        self.has_labels = stream.features is not None and LABEL_COLUMN in stream.features
        self.transform = clip_transform(config, train, normalize)
        self.skipped = skipped if skipped is not None else SkippedVideos(_SKIP_SLOTS)
        # A video's slot in the "warned already" table: its key modulo the table's size (a shared tally's too).
        self._skip_slots = self.skipped.capacity
        shared = multiprocessing.get_context("spawn")  # see SkippedVideos: reaches fork and spawn workers
        self._epoch = shared.Value("q", 0, lock=False)
        self._num_workers = shared.Value("q", 0, lock=False)
        # A resume: its epoch (-1: none), the batches consumed, then per worker the batches it served in all when
        # its share ended (-1: it had not).
        self._resume = shared.RawArray("q", [-1, 0] + [-1] * MAX_WORKERS)
        # Per worker: the epoch in which its share last ended, and the batches it served in all.
        self._ended = shared.RawArray("q", [-1] * (2 * MAX_WORKERS))

    @property
    def views_per_video(self) -> int:
        return self.config.num_sample if self.train else self.config.num_eval_views

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def video_paths(self) -> dict[int, str]:
        """What each ``video_index`` names: the path of its row (read again, without decoding). A path that several
        rows share (or rows holding bytes only) is followed by ``#n``, its n-th row in stream order."""
        paths, seen = {}, collections.Counter()
        for row in self.stream.select_columns([PATH_COLUMN, VIDEO_KEY_COLUMN]):
            path = row[PATH_COLUMN]
            seen[path] += 1
            paths[row[VIDEO_KEY_COLUMN]] = path
        repeated = collections.Counter()
        for key, path in paths.items():
            if seen[path] > 1:
                repeated[path] += 1
                paths[key] = f"{path}#{repeated[path]}"
        return paths

    def set_epoch(self, epoch: int) -> None:
        """The epoch that, with ``seed``, picks the shuffle and the clips; a resume applies to its own epoch only."""
        if epoch != self._epoch.value and self._resume[0] != epoch:
            self._resume[0] = -1
        self._epoch.value = epoch

    # --- resume -------------------------------------------------------------------------------------------------

    def state_dict(self, batches_consumed: int) -> dict:
        """What :meth:`load_state_dict` needs to continue after ``batches_consumed`` batches of this epoch."""
        epoch, num_workers = self._epoch.value, self._num_workers.value
        ended = {
            str(worker): self._ended[2 * worker + 1]
            for worker in range(min(num_workers, MAX_WORKERS))
            if self._ended[2 * worker] == epoch
        }
        return {
            "epoch": epoch,
            "batches_consumed": batches_consumed,
            "videos_per_batch": self.videos_per_batch,
            "num_workers": num_workers,
            "ended_worker_batches": ended,
        }

    def load_state_dict(self, state: dict) -> None:
        """Continue where :meth:`state_dict` was taken (same processes, workers and ``videos_per_batch``)."""
        ended = {int(worker): batches for worker, batches in state.get("ended_worker_batches", {}).items()}
        self.resume(state["epoch"], state["batches_consumed"], state["videos_per_batch"], ended)

    def resume(
        self,
        epoch: int,
        batches_consumed: int,
        batch_size: int | None = None,
        ended_worker_batches: dict[int, int] | None = None,
    ) -> None:
        """Make the next iteration of ``epoch`` start after its first ``batches_consumed`` batches.

        Exact with the same number of processes and DataLoader workers. ``ended_worker_batches`` (from
        :meth:`state_dict`) is needed only when some worker's share had ended before that point (the epoch's last
        batches); without it, every worker is taken to have served its round-robin share.
        """
        if batch_size is not None and batch_size != self.videos_per_batch:
            raise ValueError(
                f"resume: the batches held {batch_size} videos, this dataset makes batches of "
                f"{self.videos_per_batch} (videos_per_batch)"
            )
        if batches_consumed < 0:
            raise ValueError(f"batches_consumed must be >= 0, got {batches_consumed}")
        self.set_epoch(epoch)
        self._resume[0], self._resume[1] = epoch, batches_consumed
        for worker in range(MAX_WORKERS):
            self._resume[2 + worker] = (ended_worker_batches or {}).get(worker, -1)

    def _resume_position(self, num_workers: int, epoch: int) -> tuple[list[int], int]:
        """Batches each worker role served before the resume point, and the role the DataLoader would have asked
        next (no resume: none, role 0)."""
        if self._resume[0] != epoch:
            return [0] * num_workers, 0
        ended = {w: self._resume[2 + w] for w in range(num_workers) if self._resume[2 + w] >= 0}
        return batches_served_by_worker(self._resume[1], num_workers, ended)

    # --- iteration ----------------------------------------------------------------------------------------------

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (info.id, info.num_workers) if info is not None else (0, 1)
        if num_workers > MAX_WORKERS:
            raise ValueError(f"at most {MAX_WORKERS} DataLoader workers, got {num_workers}")
        epoch = self._epoch.value
        self._num_workers.value = num_workers
        served_by_role, next_role = self._resume_position(num_workers, epoch)
        # A fresh DataLoader iterator asks worker 0 first: after a resume, worker 0 plays the role that was next.
        role = (worker + next_role) % num_workers
        served = served_by_role[role]
        windows = self._raw_windows(role, num_workers, epoch)
        # Resume: drop the windows already served, without decoding them.
        collections.deque(itertools.islice(windows, served), maxlen=0)
        for items in self._filled_windows(windows, epoch):
            yield from items
            served += 1
        self._ended[2 * role], self._ended[2 * role + 1] = epoch, served

    def _raw_windows(self, role: int, num_workers: int, epoch: int) -> Iterator[list[dict]]:
        """The rows of this worker role's share, ``videos_per_batch`` at a time (a last partial window only at
        evaluation): shards ``role``, ``role + num_workers``, ... of the stream (with fewer shards than workers:
        every ``num_workers``-th row), then every ``world_size``-th of those shards (or rows) for this process,
        shuffled by (seed, epoch) in training.

        The split by worker is ours, not the one ``datasets`` makes in a worker, so that the roles can follow the
        DataLoader's order after a resume."""
        stream = self.stream
        if num_workers > 1 and stream.num_shards >= num_workers:
            stream = stream.shard(num_shards=num_workers, index=role, contiguous=False)
        elif num_workers > 1:  # each worker reads every row and decodes its own: reading is cheap beside decoding
            stream = split_dataset_by_node(stream, rank=role, world_size=num_workers)
        if self.world_size > 1:
            stream = split_dataset_by_node(stream, rank=self.rank, world_size=self.world_size)
        if self.train:
            stream = stream.shuffle(seed=self.seed, buffer_size=self.shuffle_buffer_size)
        stream.set_epoch(epoch)
        # IterableDataset.iter does not split by DataLoader worker (iterating it in a worker would).
        batches = stream.iter(batch_size=self.videos_per_batch, drop_last_batch=self.train)
        return ([dict(zip(batch, row)) for row in zip(*batch.values())] for batch in batches)

    def _filled_windows(self, windows: Iterator[list[dict]], epoch: int) -> Iterator[list[dict[str, torch.Tensor]]]:
        """One list of items per window; a bad video's slot is filled by a good video of the window, or, when the
        whole window is bad, of the next window that has one (read ahead, and decoded once)."""
        ahead: collections.deque[list[_Decoded]] = collections.deque()
        while True:
            window = ahead.popleft() if ahead else self._decode_window(windows, epoch)
            if window is None:
                return
            fillers, position = _decodable(window), 0
            while not fillers:
                if position == len(ahead):
                    following = self._decode_window(windows, epoch)
                    if following is None:
                        return  # only bad videos are left in this worker's share
                    ahead.append(following)
                fillers, position = _decodable(ahead[position]), position + 1
            yield [
                self._item(entry if entry.views is not None else fillers[slot % len(fillers)])
                for slot, entry in enumerate(window)
            ]

    def _decode_window(self, windows: Iterator[list[dict]], epoch: int) -> list[_Decoded] | None:
        """The next window's videos, decoded (None when the share has ended)."""
        window = next(windows, None)
        return None if window is None else [self._decode(row, epoch) for row in window]

    def _decode(self, row: dict, epoch: int) -> _Decoded:
        path, key = row[PATH_COLUMN], row[VIDEO_KEY_COLUMN]
        problem = row.get(PROBLEM_COLUMN)
        if problem is None and self.has_labels and row.get(LABEL_COLUMN) is None:
            problem = "no label"
        if problem is not None:
            self.skipped.record(key % self._skip_slots, path, problem)
            return _Decoded(row, key, None)
        try:
            with _opened(row) as source:
                views = video_views(
                    source,
                    video_key=key,
                    epoch=epoch,
                    seed=self.seed,
                    config=self.config,
                    train=self.train,
                    normalize=self.normalize,
                    transform=self.transform,
                )
        except VideoDecodeError as error:
            self.skipped.record(key % self._skip_slots, error.path, error.reason)
            return _Decoded(row, key, None)
        except OSError as error:  # a remote file that cannot be opened
            self.skipped.record(key % self._skip_slots, path, str(error))
            return _Decoded(row, key, None)
        return _Decoded(row, key, views)

    def _item(self, entry: _Decoded) -> dict[str, torch.Tensor]:
        num_views = entry.views.shape[0]
        item = {"pixel_values": entry.views, "video_index": torch.full((num_views,), entry.key, dtype=torch.long)}
        if self.has_labels:
            item["labels"] = torch.full((num_views,), entry.row[LABEL_COLUMN], dtype=torch.long)
        return item


def _decodable(window: list[_Decoded]) -> list[_Decoded]:
    return [entry for entry in window if entry.views is not None]


@contextlib.contextmanager
def _opened(row: dict):
    """What to decode for a stream row: its bytes, its local path, or a remote file opened through fsspec."""
    data, path = row.get(BYTES_COLUMN), row[PATH_COLUMN]
    if data is not None:
        yield data
    elif "://" in path:
        with fsspec.open(path, "rb") as handle:
            yield handle
    else:
        yield path


def batches_served_by_worker(batches_consumed: int, num_workers: int, ended: dict[int, int]) -> tuple[list[int], int]:
    """Batches each DataLoader worker served among the first ``batches_consumed``, and the worker it asks next.

    The DataLoader asks its workers round-robin, in order, and passes over a worker for good once its share has
    ended (``ended[w]``: the batches worker ``w`` served in all)."""
    if not ended:  # every worker still serving: plain round-robin
        share, extra = divmod(batches_consumed, num_workers)
        return [share + (worker < extra) for worker in range(num_workers)], extra
    served, active = [0] * num_workers, [True] * num_workers
    worker, remaining = 0, batches_consumed
    while remaining > 0 and any(active):
        if active[worker] and served[worker] >= ended.get(worker, served[worker] + 1):
            active[worker] = False
        elif active[worker]:
            served[worker] += 1
            remaining -= 1
        worker = (worker + 1) % num_workers
    return served, worker


__all__ = [
    "MAX_WORKERS",
    "StreamingVideoClipDataset",
    "VideoStreamRows",
    "batches_served_by_worker",
    "keyed_stream",
    "stable_video_key",
    "stream_video_key",
]
