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

Undecodable videos never stop an epoch: the item is filled with another video, one warning names the file and the
reason the first time it is met (across all worker processes), and :class:`SkippedVideos` keeps a process-shared
count that the training loop can log (``dataset.skipped.count``).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing
import os

import datasets
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .config import VideoClipConfig
from .decoding import VideoDecodeError, VideoReader
from .index import LABEL_COLUMN, PATH_COLUMN
from .sampling import clip_indices
from .transforms import EvalTransform, TrainTransform


logger = logging.getLogger(__name__)

# Random replacements tried for a bad video before scanning the index in order.
_RANDOM_REPLACEMENT_TRIES = 16


class SkippedVideos:
    """Process-shared tally of videos skipped because they could not be decoded.

    The counters live in shared memory (``multiprocessing.Value`` / ``RawArray``), created in the main process
    and inherited by DataLoader workers (fork, spawn or forkserver), so the training loop reads totals from all
    workers. Like any such object, they reach workers only through process start-up (the DataLoader's way), not
    through arbitrary pickling.

    Attributes:
        count: Skip events so far (a video that fails in every epoch counts every time).
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


class VideoClipDataset(Dataset):
    """Decoded, sampled and transformed clips from a video index.

    Args:
        index: ``datasets.Dataset`` with a ``path`` column and optionally a ClassLabel ``label`` column.
        config: Sampling and transform settings.
        train: Random clips with training augmentation (True) or deterministic evaluation views (False).
        check_decodable: At construction, decode files in order until one works; raise if none does.
        skipped: Share a :class:`SkippedVideos` between datasets (default: a new one).
        normalize: Normalised float32 clips (True), or the uint8 pixels (False), for the consumer to normalise
            where the batch lands with :func:`adamae_hf.data.transforms.normalize`: a quarter of the bytes through
            worker shared memory, pinned memory and the copy to the GPU, and no float work in the workers. Not with
            random erasing.

    Each item is a dict:

    * ``pixel_values``: float32 (or uint8) (V, T, C, H, W), V = ``num_sample`` (train) or
      ``num_clips * num_crops`` (eval);
    * ``labels``: int64 (V,), when the index has labels;
    * ``video_index``: int64 (V,), the row of the video actually used (differs from the item's index when a
      bad video was replaced). At evaluation, group predictions by it: each decodable video is then counted once
      and undecodable ones not at all.

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
        self.normalize = normalize
        self.transform = TrainTransform(config, normalize) if train else EvalTransform(config, normalize)
        self.skipped = skipped if skipped is not None else SkippedVideos(len(self.paths))
        # Frame counts corrected after a header overstated a video's length (per process).
        self._true_frame_counts: dict[int, int] = {}
        if check_decodable:
            self._check_some_video_decodes()

    @property
    def views_per_video(self) -> int:
        return self.config.num_sample if self.train else self.config.num_eval_views

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        # Seeded from torch's generator, which DataLoader seeds differently in each worker (and torch.manual_seed
        # controls in the main process).
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,)).item()))
        for video_index in self._candidates(index, rng):
            try:
                pixel_values = self._load_views(video_index, rng)
            except VideoDecodeError as error:
                self.skipped.record(video_index, error.path, error.reason)
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

    def _candidates(self, index: int, rng: np.random.Generator):
        """The requested video, then replacements: random ones in training, then every video in order."""
        yield index
        if self.train:
            for replacement in rng.integers(len(self), size=min(_RANDOM_REPLACEMENT_TRIES, len(self) - 1)):
                yield int(replacement)
        for offset in range(1, len(self)):
            yield (index + offset) % len(self)

    def read_clip_frames(self, video_index: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Decode the frames of this item's clips: one clip in training, ``num_clips`` at evaluation.

        Returns a list of uint8 (T, H, W, 3) arrays. Raises :class:`VideoDecodeError` for a bad file. (The
        throughput benchmark overrides this to compare decoders under the same sampling and transforms.)
        """
        with VideoReader(self.paths[video_index], num_threads=self.config.decode_threads) as reader:
            frames, num_video_frames = reader.read_sampled_frames(
                lambda length: np.concatenate(self.sample_clips(length, rng)),
                self._true_frame_counts.get(video_index),
            )  # (num_clips * T, H, W, 3)
        self._true_frame_counts[video_index] = num_video_frames  # remembered: a corrected length sticks
        return np.split(frames, 1 if self.train else self.config.num_clips)  # each (T, H, W, 3)

    def _load_views(self, video_index: int, rng: np.random.Generator) -> torch.Tensor:
        config = self.config
        clip_frames = self.read_clip_frames(video_index, rng)
        # Transforms write straight into the item's tensor: no stacking copy of ~10 MB per 16x224x224 view.
        pixel_values = torch.empty(
            (self.views_per_video, config.num_frames, 3, config.crop_size, config.crop_size),
            dtype=torch.float32 if self.normalize else torch.uint8,
        )  # (V, T, C, H, W)
        if self.train:
            # Repeated sampling: independent augmentations of the same decoded clip.
            for view in range(config.num_sample):
                self.transform(clip_frames[0], rng, out=pixel_values[view])
        else:
            # Clip-major: views [c * num_crops, (c + 1) * num_crops) come from clip c.
            for clip, frames_of_clip in enumerate(clip_frames):
                self.transform(
                    frames_of_clip, out=pixel_values[clip * config.num_crops : (clip + 1) * config.num_crops]
                )
        return pixel_values

    def sample_clips(self, num_video_frames: int, rng: np.random.Generator) -> list[np.ndarray]:
        """Frame indices of this item's clips for a video of ``num_video_frames`` frames (see :mod:`.sampling`)."""
        if self.train:
            return [clip_indices(self.config, num_video_frames, train=True, rng=rng)]
        return [
            clip_indices(self.config, num_video_frames, train=False, clip_index=clip)
            for clip in range(self.config.num_clips)
        ]

    def _check_some_video_decodes(self) -> None:
        failures = []
        for path in self.paths:
            try:
                with VideoReader(path, num_threads=1) as reader:
                    reader.read_frames([0])
                return
            except VideoDecodeError as error:
                failures.append(f"{error.path}: {error.reason}")
        shown = "; ".join(failures[:5]) + (f"; ... ({len(failures) - 5} more)" if len(failures) > 5 else "")
        raise ValueError(f"none of the {len(self.paths)} videos in the index can be decoded: {shown}")


def collate_clips(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Concatenate the views of several videos: ``pixel_values`` (sum of V, T, C, H, W), ``labels`` and
    ``video_index`` (sum of V,) int64. The batch is VideoMAE's ``pixel_values`` layout."""
    batch = {
        "pixel_values": _concatenate([item["pixel_values"] for item in items]),
        "video_index": _concatenate([item["video_index"] for item in items]),
    }
    if all("labels" in item for item in items):
        batch["labels"] = _concatenate([item["labels"] for item in items])
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
    dataset: VideoClipDataset,
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
    pinning does nothing but make torch warn."""
    return DataLoader(
        dataset,
        batch_size=videos_per_batch(clips_per_batch, dataset.views_per_video),
        shuffle=dataset.train if shuffle is None else shuffle,
        drop_last=dataset.train if drop_last is None else drop_last,
        num_workers=num_workers,
        collate_fn=collate_clips,
        persistent_workers=num_workers > 0,
        pin_memory=torch.accelerator.is_available() if pin_memory is None else pin_memory,
        **dataloader_kwargs,
    )


def load_eval_clip(path: str | os.PathLike, config: VideoClipConfig | None = None, **config_overrides) -> torch.Tensor:
    """Decode one file and return its evaluation clip, normalised float32 (T, C, H, W).

    The clip is the centre window (dense) or the segment middles (segment), centre-cropped: the same frames and
    pixels that evaluation with ``num_clips=1, num_crops=1`` uses. Settings come from ``config`` and/or keyword
    overrides (e.g. ``num_frames=16, sampling_rate=4, crop_size=224``). Use
    :func:`adamae_hf.data.transforms.unnormalize` to get displayable [0, 1] frames back.

    Raises:
        VideoDecodeError: The file cannot be decoded.
    """
    config = config if config is not None else VideoClipConfig()
    config = dataclasses.replace(config, **{**config_overrides, "num_clips": 1, "num_crops": 1})
    with VideoReader(path, num_threads=config.decode_threads) as reader:
        frames, _ = reader.read_sampled_frames(lambda length: clip_indices(config, length, train=False))
    return EvalTransform(config)(frames)[0]  # (T, C, H, W)
