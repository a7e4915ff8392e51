"""`run_pretrain.py`'s training clips: the videos `--train_index` names (an index file, class folders, tar shards, a
`datasets` name or path; `adamae_hf.data.sources`), or the demo's generated videos, and the order the loop reads
them in.

- A map-style index (`ShuffledEpochs`): each epoch in an order drawn from (seed, epoch) (`EpochShuffleSampler`),
  every item's augmentation from (seed, epoch, index) (`EpochSeededDataset`); a resumed run finds its place from
  the step alone.
- A stream, with `--streaming` (`StreamEpochs`): each process reads its share of the stream
  (`StreamingVideoClipDataset`: shards by process and DataLoader worker, a shuffle buffer seeded by (seed, epoch))
  round and round, the next epoch starting where its share ends; a checkpoint records each process's position, so a
  resumed run (same processes and workers) continues exactly.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from accelerate.utils import gather_object, send_to_device
from torch.utils.data import DataLoader, Dataset

from .data import SkippedVideos, VideoClipConfig, VideoClipDataset, collate_clips, generate_sample_videos
from .data import videos_per_batch as videos_per_loader_batch
from .data.sources import VideoSplit, open_video_split
from .data.streaming import StreamingVideoClipDataset
from .errors import UserError
from .pretrain_arguments import DEMO_VIDEOS, DataArguments, PretrainingArguments
from .training import EpochSeededDataset, EpochShuffleSampler, TrainingSchedule


logger = logging.getLogger(__name__)

STREAM_STATE_KEY = "stream"  # in a checkpoint's training state: every process's position in its share


def open_training_videos(data_args: DataArguments, training_args: PretrainingArguments, accelerator) -> VideoSplit:
    """The training split `--train_index` names. In the demo without one, the main process first generates the
    sample videos into `<output_dir>/videos`."""
    if training_args.demo and not data_args.train_index:
        video_dir = Path(training_args.output_dir) / "videos"
        if accelerator.is_main_process:
            generate_sample_videos(video_dir, index_file="index.csv", **DEMO_VIDEOS)
        accelerator.wait_for_everyone()
        data_args = dataclasses.replace(data_args, train_index=str(video_dir / "index.csv"))
    split = open_video_split(data_args, "train")
    if split is None:
        raise ValueError(
            "Expected the training videos: --train_index (a CSV/JSON-lines index, <class>/<video> folders, tar "
            "shards or a datasets name); or run the demo: python run_pretrain.py --demo."
        )
    return split


def build_train_dataset(
    data_args: DataArguments, clip_config: VideoClipConfig, training_args: PretrainingArguments, accelerator
) -> VideoClipDataset | StreamingVideoClipDataset:
    """The training clips of `--train_index`: a `VideoClipDataset`, or with `--streaming` this process's
    `StreamingVideoClipDataset`."""
    split = open_training_videos(data_args, training_args, accelerator)
    logger.info(f"Training videos: {split.description}")
    normalize_on_device = data_args.normalize_on_device
    if normalize_on_device and clip_config.random_erasing_prob > 0:
        logger.info(
            "Random erasing works on normalised clips: the data workers normalise them (as with "
            "--normalize_on_device false)."
        )
        normalize_on_device = False
    if split.index is not None:
        # seeded per item by EpochSeededDataset, which also carries the epoch to persistent workers
        return VideoClipDataset(split.index, clip_config, train=True, normalize=not normalize_on_device)
    return StreamingVideoClipDataset(
        split.stream,
        clip_config,
        train=True,
        seed=training_args.seed,
        normalize=not normalize_on_device,
        videos_per_batch=videos_per_loader_batch(training_args.per_device_train_batch_size, clip_config.num_sample),
        shuffle_buffer_size=split.shuffle_buffer_size,
        rank=accelerator.process_index,
        world_size=accelerator.num_processes,
    )


def known_length(dataset: Dataset) -> int | None:
    """How many videos an epoch holds, or None for a stream that does not say (its `info.splits`)."""
    if not isinstance(dataset, StreamingVideoClipDataset):
        return len(dataset)
    splits = dataset.stream.info.splits if dataset.stream.info is not None else None
    split = splits.get(str(dataset.stream.split)) if splits and dataset.stream.split is not None else None
    return split.num_examples if split is not None and split.num_examples else None


@dataclass
class TrainingVideos:
    """The training clips and what the run needs to know of them."""

    dataset: Dataset  # items: dicts with `pixel_values` (V, T, C, H, W), normalised float or uint8
    num_videos: int | None  # None: a stream of unknown length
    clips_per_video: int  # V
    figure_video: str | None  # the video of the mask figures
    skipped: SkippedVideos | None  # counts the videos that could not be decoded
    sampler: EpochShuffleSampler | None = dataclasses.field(default=None, init=False)

    @property
    def streaming(self) -> bool:
        return isinstance(self.dataset, StreamingVideoClipDataset)

    @property
    def description(self) -> str:
        return f"{self.num_videos} videos" if self.num_videos is not None else "a stream of videos"

    def loader(self, schedule: TrainingSchedule, args: PretrainingArguments) -> DataLoader:
        """The loader of one process's batches (a map-style one before `accelerator.prepare` splits them)."""
        dataset, sampler = self.dataset, None
        if not self.streaming:
            sampler = self.sampler = EpochShuffleSampler(self.num_videos, schedule.videos_per_step, args.seed)
            dataset = EpochSeededDataset(self.dataset, args.seed)
        num_workers = args.dataloader_num_workers
        return DataLoader(
            dataset,
            batch_size=videos_per_loader_batch(args.per_device_train_batch_size, self.clips_per_video),
            sampler=sampler,
            drop_last=sampler is not None,  # a stream drops its own last partial window
            collate_fn=collate_clips,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            pin_memory=torch.accelerator.is_available() and not args.use_cpu,  # on a CPU it only warns
            # Worker seeds come from this generator, not the global one, so starting an epoch (or a resumed one)
            # never moves the random stream that dropout uses; the items are seeded by (seed, epoch, video) anyway.
            generator=torch.Generator().manual_seed(args.seed),
        )

    def batches(self, accelerator, loader: DataLoader, schedule: TrainingSchedule, args: PretrainingArguments):
        """The loop's source of micro-batches (`PretrainingLoop.batches`), from the loader as prepared."""
        if self.streaming:
            return StreamEpochs(accelerator, loader, self.dataset, args.dataloader_num_workers)
        return ShuffledEpochs(
            accelerator, loader, self.sampler, schedule.steps_per_epoch, args.gradient_accumulation_steps
        )


def training_videos(
    data_args: DataArguments,
    clip_config: VideoClipConfig,
    training_args: PretrainingArguments,
    accelerator,
    train_dataset: Dataset | None = None,
) -> TrainingVideos:
    """The run's training clips: `train_dataset` when given, else the videos the data arguments name."""
    if train_dataset is None:
        train_dataset = build_train_dataset(data_args, clip_config, training_args, accelerator)
    figure_video = data_args.visualization_video or next(iter(getattr(train_dataset, "paths", [])), None)
    if figure_video is None and isinstance(train_dataset, StreamingVideoClipDataset) and training_args.visualize:
        logger.info("No mask figure: the videos are streamed; give a video file with --visualization_video.")
    return TrainingVideos(
        dataset=train_dataset,
        num_videos=known_length(train_dataset),
        clips_per_video=getattr(train_dataset, "views_per_video", clip_config.num_sample),
        figure_video=figure_video,
        skipped=getattr(train_dataset, "skipped", None),
    )


# ---------------------------------------------------------------------------------------------------------------------
# The loop's micro-batches


@dataclass
class ShuffledEpochs:
    """A map-style dataset, each epoch in the order `EpochShuffleSampler` draws from (seed, epoch). The position
    follows from the step: a resumed epoch skips the batches already trained on (not their decoding: the sampler's
    indices are dropped before the workers see them)."""

    accelerator: Any
    loader: DataLoader  # as `accelerator.prepare` returned it
    sampler: EpochShuffleSampler
    steps_per_epoch: int
    gradient_accumulation_steps: int
    epoch: int = 0

    def epoch_batches(self, step: int) -> DataLoader:
        """The rest of the epoch that optimizer step `step + 1` falls in."""
        self.epoch, step_in_epoch = divmod(step, self.steps_per_epoch)
        self.sampler.set_epoch(self.epoch)
        loader = self.loader
        if step_in_epoch:
            loader = self.accelerator.skip_first_batches(self.loader, step_in_epoch * self.gradient_accumulation_steps)
        loader.set_epoch(self.epoch)
        return loader

    def checkpoint_state(self) -> dict[str, Any]:
        return {}

    def load_checkpoint_state(self, state: dict[str, Any], checkpoint: Path) -> None:
        pass


@dataclass
class StreamEpochs:
    """This process's share of a stream, read round and round: when it ends, the next epoch (a new shuffle) starts,
    whatever the other processes' shares hold, so no process waits for another. The position is (epoch, batches
    read in it) per process, saved in each checkpoint."""

    accelerator: Any
    loader: DataLoader  # not prepared: the dataset already reads this process's share
    dataset: StreamingVideoClipDataset
    num_workers: int
    epoch: int = 0
    batches_read: int = 0  # in this epoch

    def epoch_batches(self, step: int) -> Iterator[dict[str, torch.Tensor]]:
        """The rest of the current epoch's batches, on the training device."""
        self.dataset.set_epoch(self.epoch)  # keeps a resume into this epoch
        read_before = self.batches_read
        for batch in self.loader:
            self.batches_read += 1
            yield send_to_device(batch, self.accelerator.device, non_blocking=True)
        if self.batches_read == read_before == 0:  # else the loop would start epoch after empty epoch
            raise UserError(
                f"Process {self.accelerator.process_index}'s share of the stream gave no batch in epoch {self.epoch}: "
                "it holds fewer decodable videos than one batch per data worker. Add videos (or shards), or lower "
                "--per_device_train_batch_size / --dataloader_num_workers."
            )
        self.epoch, self.batches_read = self.epoch + 1, 0

    def checkpoint_state(self) -> dict[str, Any]:
        """Every process's position (a collective: every process calls it when the loop saves)."""
        return {STREAM_STATE_KEY: gather_object([self.dataset.state_dict(self.batches_read)])}

    def load_checkpoint_state(self, state: dict[str, Any], checkpoint: Path) -> None:
        positions = state.get(STREAM_STATE_KEY)
        if not positions:
            raise UserError(
                f"{checkpoint} holds no stream position (it was written by a run that did not stream): "
                "resume it without --streaming."
            )
        if len(positions) != self.accelerator.num_processes:
            raise UserError(
                f"{checkpoint} was written by {len(positions)} processes, this run has "
                f"{self.accelerator.num_processes}: a stream resumes exactly only with as many."
            )
        position = positions[self.accelerator.process_index]
        if position["num_workers"] != max(1, self.num_workers):
            raise UserError(
                f"{checkpoint} was written with {position['num_workers']} data workers per process, this "
                f"run has --dataloader_num_workers {self.num_workers}: a stream resumes exactly only "
                "with as many."
            )
        self.dataset.load_state_dict(position)
        self.epoch, self.batches_read = position["epoch"], position["batches_consumed"]


__all__ = [
    "ShuffledEpochs",
    "StreamEpochs",
    "TrainingVideos",
    "build_train_dataset",
    "known_length",
    "open_training_videos",
    "training_videos",
]
