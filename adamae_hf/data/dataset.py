"""The clip dataset behind pretraining, fine-tuning and multi-view evaluation, and its collate function.

:class:`VideoClipDataset` is a thin map-style ``torch.utils.data.Dataset`` over a video index (a
``datasets.Dataset`` from :mod:`adamae_hf.data.index`). Item ``i`` decodes video ``i`` once and returns every
view made from it:

* training: ``num_sample`` independently augmented copies of one sampled clip (VideoMAE's repeated sampling:
  one decode, several clips; the batch counts clips);
* evaluation: ``num_clips`` temporal x ``num_crops`` spatial views, clip-major.

:func:`collate_clips` concatenates the views of a batch of videos, so a DataLoader over ``B`` videos yields
``pixel_values`` of shape (B * views, T, C, H, W) with ``labels`` and ``video_index`` per clip; use
:func:`videos_per_batch` to turn a clip batch size into the DataLoader's ``batch_size``.

:func:`video_views` makes one video's views from any source (a path, bytes, a file object); the dataset and the
streaming dataset both build on it. Every random choice is a pure function of (seed, epoch, video, view), never of
the worker that loads the item, the number of workers or what was decoded before, so a run gives the same clips with
any number of workers and after a resume.

Undecodable videos never stop an epoch: the item is filled with another video, one warning names the file and the
reason the first time it is met (across all worker processes), and :class:`SkippedVideos` keeps a process-shared
count that the training loop can log (``dataset.skipped.count``): each bad video once per epoch.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import multiprocessing

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, IterableDataset

from .config import VideoClipConfig
from .decoding import VideoDecodeError, VideoReader
from .index import BYTES_COLUMN, LABEL_COLUMN, PATH_COLUMN
from .sampling import clip_indices
from .transforms import EvalTransform, TrainTransform, decode_short_side


logger = logging.getLogger(__name__)

# Random replacements tried for a bad video before scanning the index in order.
_RANDOM_REPLACEMENT_TRIES = 16
# Independent random streams of one item (see item_generator).
_ITEM_STREAM, _SAMPLING_STREAM, _VIEW_STREAM, _REPLACEMENT_STREAM = range(4)


class SkippedVideos:
    """Process-shared tally of videos skipped because they could not be decoded.

    The counters live in shared memory (``multiprocessing.Value`` / ``RawArray``), created in the main process
    and inherited by DataLoader workers (fork, spawn or forkserver), so the training loop reads totals from all
    workers. Like any such object, they reach workers only through process start-up (the DataLoader's way), not
    through arbitrary pickling.

    Attributes:
        count: Skip events so far: a bad video counts when its own item meets it, once per epoch (not again when it
            fails as another item's replacement).
        num_videos: Distinct videos that failed at least once.
    """

    def __init__(self, num_videos: int):
        # Objects from a "spawn" context can be handed to spawn workers too (fork-context locks refuse to be),
        # and fork workers inherit them either way.
        shared = multiprocessing.get_context("spawn")
        self._events = shared.Value("q", 0)  # its lock also guards the two fields below
        self._distinct = shared.Value("q", 0, lock=False)
        self._reported = shared.RawArray("B", max(num_videos, 1))

    def record(self, video_index: int, path: str, reason: str) -> None:
        """Count one skip; log a warning naming the file and the reason the first time this video fails."""
        with self._events.get_lock():
            self._events.value += 1
            first_time = not self._reported[video_index]
            if first_time:
                self._reported[video_index] = 1
                self._distinct.value += 1
        if first_time:
            logger.warning("Skipping video %s: %s", path, reason)

    @property
    def count(self) -> int:
        return self._events.value

    @property
    def num_videos(self) -> int:
        return self._distinct.value

    @property
    def capacity(self) -> int:
        """Videos the "warned already" table has a slot for (a stream maps its keys onto them)."""
        return len(self._reported)

    def skipped_indices(self) -> list[int]:
        """Indices (into the video index) of every video skipped so far."""
        return [i for i, flag in enumerate(self._reported) if flag]


def videos_per_batch(clips_per_batch: int, clips_per_video: int) -> int:
    """DataLoader ``batch_size`` (videos) that yields ``clips_per_batch`` clips when each video gives
    ``clips_per_video`` (``num_sample`` in training, ``num_clips * num_crops`` at evaluation)."""
    if clips_per_batch < clips_per_video or clips_per_batch % clips_per_video:
        raise ValueError(
            f"clips_per_batch must be a positive multiple of clips per video ({clips_per_video}), "
            f"got {clips_per_batch}"
        )
    return clips_per_batch // clips_per_video


def item_generator(seed: int, epoch: int, video_key: int, stream: int, view: int = 0) -> np.random.Generator:
    """A generator that depends on (seed, epoch, video, stream, view) only: the same numbers in any worker, with any
    number of workers, whatever was decoded before. Every argument must be a non-negative integer."""
    return np.random.default_rng([seed, epoch, video_key, stream, view])


def sample_clips(
    config: VideoClipConfig, num_video_frames: int, train: bool, rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """Frame indices of one video's clips (one random clip in training, ``num_clips`` at evaluation) for a video
    of ``num_video_frames`` frames (see :mod:`.sampling`)."""
    if train:
        return [clip_indices(config, num_video_frames, train=True, rng=rng)]
    return [clip_indices(config, num_video_frames, train=False, clip_index=clip) for clip in range(config.num_clips)]


def read_clips(
    source, config: VideoClipConfig, train: bool, rng: np.random.Generator | None = None
) -> list[np.ndarray]:
    """Decode one video's clips: a list of uint8 (T, H, W, 3) arrays (one in training, ``num_clips`` at evaluation).

    ``source`` is a path, bytes or a binary file object. The sampling starts from a copy of ``rng`` (left as it was)
    each time it runs: when a truncated file's real length turns up and the clip is drawn again inside it, the new
    draw does not depend on the first one, so the clip depends on the file and ``rng`` alone.
    The decoder scales frames far larger than the transform needs (see :func:`.transforms.decode_short_side`).

    Raises:
        VideoDecodeError: The video cannot be read.
    """

    def indices(length: int) -> np.ndarray:
        return np.concatenate(sample_clips(config, length, train, copy.deepcopy(rng)))

    with VideoReader(
        source, num_threads=config.decode_threads, target_short_side=decode_short_side(config, train)
    ) as reader:
        frames, _ = reader.read_sampled_frames(indices)  # (num_clips * T, H, W, 3)
    return np.split(frames, 1 if train else config.num_clips)


def clip_transform(config: VideoClipConfig, train: bool, normalize: bool = True) -> TrainTransform | EvalTransform:
    """The training augmentation or the evaluation views for ``config``."""
    return TrainTransform(config, normalize) if train else EvalTransform(config, normalize)


def make_views(
    clips: list[np.ndarray],
    *,
    video_key: int,
    epoch: int,
    seed: int,
    config: VideoClipConfig,
    train: bool,
    normalize: bool,
    transform=None,
) -> torch.Tensor:
    """The views of decoded clips, (V, T, C, crop, crop): ``num_sample`` augmented copies of the one training clip
    (view v augmented with :func:`item_generator` ``(seed, epoch, video_key, views, v)``), or the evaluation views,
    clip-major."""
    transform = transform if transform is not None else clip_transform(config, train, normalize)
    num_views = config.num_sample if train else config.num_eval_views
    # Transforms write straight into the item's tensor: no stacking copy of ~10 MB per 16x224x224 view.
    pixel_values = torch.empty(
        (num_views, config.num_frames, 3, config.crop_size, config.crop_size),
        dtype=torch.float32 if normalize else torch.uint8,
    )  # (V, T, C, H, W)
    if train:
        # Repeated sampling: independent augmentations of the same decoded clip.
        for view in range(num_views):
            transform(clips[0], item_generator(seed, epoch, video_key, _VIEW_STREAM, view), out=pixel_values[view])
    else:
        # Clip-major: views [c * num_crops, (c + 1) * num_crops) come from clip c.
        for clip, frames_of_clip in enumerate(clips):
            transform(frames_of_clip, out=pixel_values[clip * config.num_crops : (clip + 1) * config.num_crops])
    return pixel_values


def video_views(
    source,
    *,
    video_key: int,
    epoch: int,
    seed: int,
    config: VideoClipConfig,
    train: bool,
    normalize: bool,
    transform=None,
) -> torch.Tensor:
    """Decode one video and make all its views: (V, T, C, crop, crop), float32 (uint8 without ``normalize``).

    Training: ``num_sample`` augmented copies of one sampled clip; evaluation: ``num_clips`` x ``num_crops`` views,
    clip-major. Every random choice is a pure function of (seed, epoch, video_key, view): the clip's frames come
    from stream ``(seed, epoch, video_key, sampling)``, view v's augmentation from ``(..., views, v)``.

    Args:
        source: A path, the video's bytes, or a binary file object.
        video_key: A non-negative integer naming the video (its row in an index, or a stream's key).
        transform: Reuse a transform built by :func:`clip_transform` (default: build one).

    Raises:
        VideoDecodeError: The video cannot be read.
    """
    clips = read_clips(source, config, train, item_generator(seed, epoch, video_key, _SAMPLING_STREAM))
    return make_views(
        clips,
        video_key=video_key,
        epoch=epoch,
        seed=seed,
        config=config,
        train=train,
        normalize=normalize,
        transform=transform,
    )


class VideoClipDataset(Dataset):
    """Decoded, sampled and transformed clips from a video index.

    Args:
        index: ``datasets.Dataset`` with a ``path`` column, optionally a ``bytes`` column (when a row's bytes are
            not None the video is decoded from them; ``path`` then only names it) and a ClassLabel ``label`` column.
        config: Sampling and transform settings.
        train: Random clips with training augmentation (True) or deterministic evaluation views (False).
        check_decodable: At construction, decode files in order until one works; raise if none does.
        skipped: Share a :class:`SkippedVideos` between datasets (default: a new one).
        normalize: Normalised float32 clips (True), or the uint8 pixels (False), for the consumer to normalise
            where the batch lands with :func:`adamae_hf.data.transforms.normalize`: a quarter of the bytes through
            worker shared memory, pinned memory and the copy to the GPU, and no float work in the workers. Not with
            random erasing.
        seed: Item ``i`` of epoch ``e`` (:meth:`set_epoch`) draws its randomness from (seed, e, i). None: from a
            seed drawn from torch's global CPU generator, which a caller seeds per item (as pretraining's
            ``EpochSeededDataset`` does; DataLoader workers are otherwise seeded per worker).

    Each item is a dict:

    * ``pixel_values``: float32 (or uint8) (V, T, C, H, W), V = ``num_sample`` (train) or
      ``num_clips * num_crops`` (eval);
    * ``labels``: int64 (V,), when the index has labels;
    * ``video_index``: int64 (V,), the row of the video actually used (differs from the item's index when a
      bad video was replaced). At evaluation, group predictions by it: each decodable video is then counted once
      and undecodable ones not at all.

    A bad video is counted in ``skipped`` when its own item meets it (once per epoch), not when it fails as another
    item's replacement.

    Raises:
        ValueError: The index has no ``path`` column, or (with ``check_decodable``) no file in it decodes.
    """

    def __init__(
        self,
        index: datasets.Dataset,
        config: VideoClipConfig,
        train: bool,
        check_decodable: bool = True,
        skipped: SkippedVideos | None = None,
        normalize: bool = True,
        seed: int | None = None,
    ):
        if PATH_COLUMN not in index.column_names:
            raise ValueError(f"index must have a '{PATH_COLUMN}' column, got {index.column_names}")
        if len(index) == 0:
            raise ValueError("index is empty")
        self.index = index
        self.config = config
        self.train = train
        self.paths: list[str] = list(index[PATH_COLUMN])
        self.labels: list[int] | None = list(index[LABEL_COLUMN]) if LABEL_COLUMN in index.column_names else None
        if self.labels is not None and not all(isinstance(label, int) for label in self.labels):
            raise ValueError(
                f"the index's '{LABEL_COLUMN}' column must hold class ids, got {type(self.labels[0]).__name__} "
                "values; pass the dataset through adamae_hf.data.index_from_dataset, which maps class names to ids"
            )
        # Bytes stay in the Arrow table (memory-mapped) and are read per item.
        self._bytes = index.select_columns([BYTES_COLUMN]) if BYTES_COLUMN in index.column_names else None
        self.normalize = normalize
        self.seed = seed
        # In shared memory, so that set_epoch in the main process reaches persistent DataLoader workers too.
        self._epoch = multiprocessing.get_context("spawn").Value("q", 0, lock=False)
        self.transform = clip_transform(config, train, normalize)
        self.skipped = skipped if skipped is not None else SkippedVideos(len(self.paths))
        if check_decodable:
            self._check_some_video_decodes()

    @property
    def views_per_video(self) -> int:
        return self.config.num_sample if self.train else self.config.num_eval_views

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def epoch(self) -> int:
        return self._epoch.value

    def set_epoch(self, epoch: int) -> None:
        """The epoch whose randomness the next items get (with ``seed``); call it before iterating the epoch. Workers
        see it too, persistent ones included."""
        self._epoch.value = epoch

    def source(self, video_index: int):
        """What to decode for a row: its bytes when the index holds them, else its path."""
        if self._bytes is not None:
            data = self._bytes[video_index][BYTES_COLUMN]
            if data is not None:
                return data
        return self.paths[video_index]

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        epoch = self.epoch
        item_seed = self._item_seed(epoch, index)
        for video_index in self._candidates(index, item_generator(item_seed, epoch, index, _REPLACEMENT_STREAM)):
            try:
                pixel_values = self._load_views(video_index, item_seed, epoch)
            except (VideoDecodeError, OSError) as error:  # OSError: e.g. a file object that cannot seek
                if video_index == index:  # a replacement that fails is counted by its own item
                    # the path column names in-memory videos too (the error would say "<N bytes in memory>")
                    self.skipped.record(video_index, self.paths[video_index], _reason(error))
                continue
            num_views = pixel_values.shape[0]
            item = {
                "pixel_values": pixel_values,
                "video_index": torch.full((num_views,), video_index, dtype=torch.long),
            }
            if self.labels is not None:
                item["labels"] = torch.full((num_views,), self.labels[video_index], dtype=torch.long)
            return item
        raise RuntimeError(f"no video in the index of {len(self)} decodes any more (all were skipped)")

    def _item_seed(self, epoch: int, index: int) -> int:
        if self.seed is None:
            # torch's generator: DataLoader seeds it per worker, and EpochSeededDataset per (seed, epoch, item).
            return int(torch.randint(0, 2**62, (1,)).item())
        return int(item_generator(self.seed, epoch, index, _ITEM_STREAM).integers(2**62))

    def _candidates(self, index: int, rng: np.random.Generator):
        """The requested video, then replacements: random ones in training, then every video in order."""
        yield index
        if self.train:
            for replacement in rng.integers(len(self), size=min(_RANDOM_REPLACEMENT_TRIES, len(self) - 1)):
                if replacement != index:  # the video just failed
                    yield int(replacement)
        for offset in range(1, len(self)):
            yield (index + offset) % len(self)

    def read_clip_frames(self, video_index: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Decode the frames of this item's clips (see :func:`read_clips`): one clip in training, ``num_clips`` at
        evaluation. Raises :class:`VideoDecodeError` for a bad file. (The throughput benchmark overrides this to
        compare decoders under the same sampling and transforms.)"""
        return read_clips(self.source(video_index), self.config, self.train, rng)

    def sample_clips(self, num_video_frames: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Frame indices of this item's clips for a video of ``num_video_frames`` frames (see :func:`sample_clips`)."""
        return sample_clips(self.config, num_video_frames, self.train, rng)

    def _load_views(self, video_index: int, item_seed: int, epoch: int) -> torch.Tensor:
        # The same steps as video_views, through read_clip_frames (which the benchmark overrides).
        rng = item_generator(item_seed, epoch, video_index, _SAMPLING_STREAM)
        return make_views(
            self.read_clip_frames(video_index, rng),
            video_key=video_index,
            epoch=epoch,
            seed=item_seed,
            config=self.config,
            train=self.train,
            normalize=self.normalize,
            transform=self.transform,
        )

    def _check_some_video_decodes(self) -> None:
        failures = []
        for video_index in range(len(self)):
            try:
                with VideoReader(self.source(video_index), num_threads=1) as reader:
                    reader.read_frames([0])
                return
            except (VideoDecodeError, OSError) as error:
                failures.append(f"{self.paths[video_index]}: {_reason(error)}")
        shown = "; ".join(failures[:5]) + (f"; ... ({len(failures) - 5} more)" if len(failures) > 5 else "")
        raise ValueError(f"none of the {len(self.paths)} videos in the index can be decoded: {shown}")


def _reason(error: Exception) -> str:
    """Why a video could not be read, in a few words."""
    return error.reason if isinstance(error, VideoDecodeError) else f"{type(error).__name__}: {error}"


def collate_clips(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate the views of several videos: ``pixel_values`` (sum of V, T, C, H, W), ``labels`` and
    ``video_index`` (sum of V,) int64. The batch is VideoMAE's ``pixel_values`` layout.

    ``labels`` and ``video_index`` are optional: a plain ``transformers.Trainer`` (``remove_unused_columns=True``)
    drops ``video_index`` from every item before collating, since the model's ``forward`` does not take it."""
    batch = {"pixel_values": _concatenate([item["pixel_values"] for item in items])}
    for key in ("labels", "video_index"):
        if all(key in item for item in items):
            batch[key] = _concatenate([item[key] for item in items])
    return batch


def _concatenate(tensors: list[torch.Tensor]) -> torch.Tensor:
    out = None
    if torch.utils.data.get_worker_info() is not None:
        # In a worker, write the batch straight into shared memory (as default_collate does), saving the copy
        # that sending it to the main process would otherwise make: ~10 MB per 16x224x224 clip.
        total = sum(tensor.shape[0] for tensor in tensors)
        storage = tensors[0]._typed_storage()._new_shared(total * tensors[0][0].numel())
        out = tensors[0].new(storage).view(total, *tensors[0].shape[1:])
    return torch.cat(tensors, out=out)


def clip_dataloader(
    dataset: VideoClipDataset | IterableDataset,
    clips_per_batch: int,
    num_workers: int = 0,
    shuffle: bool | None = None,
    drop_last: bool | None = None,
    pin_memory: bool | None = None,
    **dataloader_kwargs,
) -> DataLoader:
    """A DataLoader whose batches hold ``clips_per_batch`` clips (shuffled and dropping the last partial batch in
    training by default), with :func:`collate_clips` and persistent workers. Batches are in pinned memory (faster,
    asynchronous copies to the device) when an accelerator is there (``pin_memory=None``); on a CPU-only machine
    pinning does nothing but make torch warn.

    Raises:
        ValueError: A stream's windows (its ``videos_per_batch``) are not the batches asked for: every batch must be
            one window, or a resume would start at the wrong row.
    """
    batch_size = videos_per_batch(clips_per_batch, dataset.views_per_video)
    window = getattr(dataset, "videos_per_batch", batch_size)  # a StreamingVideoClipDataset's
    if window != batch_size:
        raise ValueError(
            f"clips_per_batch={clips_per_batch} makes batches of {batch_size} videos, but the stream's dataset cuts "
            f"it into windows of {window} (videos_per_batch): give it videos_per_batch={batch_size}"
        )
    return DataLoader(
        dataset,
        batch_size=batch_size,
        # a stream orders itself (seeded shuffle buffer); a DataLoader refuses to shuffle one
        shuffle=(dataset.train and not isinstance(dataset, IterableDataset)) if shuffle is None else shuffle,
        drop_last=dataset.train if drop_last is None else drop_last,
        num_workers=num_workers,
        collate_fn=collate_clips,
        persistent_workers=num_workers > 0,
        pin_memory=torch.accelerator.is_available() if pin_memory is None else pin_memory,
        **dataloader_kwargs,
    )


def load_eval_clip(path, config: VideoClipConfig | None = None, **config_overrides) -> torch.Tensor:
    """Decode one video (a path, bytes or a binary file object) and return its evaluation clip, normalised float32
    (T, C, H, W).

    The clip is the centre window (dense) or the segment middles (segment), centre-cropped: the same frames and
    pixels that evaluation with ``num_clips=1, num_crops=1`` uses. Settings come from ``config`` and/or keyword
    overrides (e.g. ``num_frames=16, sampling_rate=4, crop_size=224``). Use
    :func:`adamae_hf.data.transforms.unnormalize` to get displayable [0, 1] frames back.

    Raises:
        VideoDecodeError: The file cannot be decoded.
    """
    config = config if config is not None else VideoClipConfig()
    config = dataclasses.replace(config, **{**config_overrides, "num_clips": 1, "num_crops": 1})
    (frames,) = read_clips(path, config, train=False)
    return EvalTransform(config)(frames)[0]  # (T, C, H, W)
