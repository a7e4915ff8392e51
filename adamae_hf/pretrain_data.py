"""`run_pretrain.py`'s training clips: the dataset from the data arguments (or the demo's generated videos) and its
loader, whose order and augmentation are functions of (seed, epoch, index) only (`EpochShuffleSampler`,
`EpochSeededDataset`)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from .data import (
    SkippedVideos,
    VideoClipConfig,
    VideoClipDataset,
    collate_clips,
    generate_sample_videos,
    index_from_file,
    index_from_folder,
    videos_per_batch,
)
from .errors import UserError
from .pretrain_arguments import DEMO_VIDEOS, DataArguments, PretrainingArguments
from .training import EpochSeededDataset, EpochShuffleSampler, TrainingSchedule


logger = logging.getLogger(__name__)


def build_train_dataset(
    data_args: DataArguments, clip_config: VideoClipConfig, training_args: PretrainingArguments, accelerator
) -> VideoClipDataset:
    """The training clips. In the demo without data arguments, the main process first generates the sample videos
    into `<output_dir>/videos`."""
    index_file, folder = data_args.train_index_file, data_args.train_folder
    if training_args.demo and not (index_file or folder):
        video_dir = Path(training_args.output_dir) / "videos"
        if accelerator.is_main_process:
            generate_sample_videos(video_dir, index_file="index.csv", **DEMO_VIDEOS)
        accelerator.wait_for_everyone()
        index_file = str(video_dir / "index.csv")
    if index_file:
        if not Path(index_file).is_file():
            raise UserError(
                f"--train_index_file: expected a CSV or JSON-lines index, got {index_file!r}: no such file."
            )
        index = index_from_file(index_file, data_root=data_args.data_root)
    elif folder:
        if not Path(folder).is_dir():
            raise UserError(f"--train_folder: expected a folder of <class>/<video> files, got {folder!r}: no such "
                            "folder.")  # fmt: skip
        index = index_from_folder(folder)
    else:
        raise ValueError(
            "Expected the training videos: --train_index_file (CSV/JSON-lines index) or --train_folder "
            "(<class>/<video> folders); or run the demo: python run_pretrain.py --demo."
        )
    if data_args.max_train_videos is not None:
        index = index.select(range(min(data_args.max_train_videos, len(index))))
    normalize_on_device = data_args.normalize_on_device
    if normalize_on_device and clip_config.random_erasing_prob > 0:
        logger.info("Random erasing works on normalised clips: the data workers normalise them (as with "
                    "--normalize_on_device false).")  # fmt: skip
        normalize_on_device = False
    return VideoClipDataset(index, clip_config, train=True, normalize=not normalize_on_device)


@dataclass
class TrainingVideos:
    """The training clips and what the run needs to know of them."""

    dataset: Dataset  # items: dicts with `pixel_values` (V, T, C, H, W), normalised float or uint8
    num_videos: int
    clips_per_video: int  # V
    figure_video: str | None  # the video of the mask figures
    skipped: SkippedVideos | None  # counts the videos that could not be decoded
    description: str  # for the log
    sampler: EpochShuffleSampler | None = field(default=None, init=False)

    def loader(self, schedule: TrainingSchedule, args: PretrainingArguments) -> DataLoader:
        """The loader of one process's batches (before `accelerator.prepare` splits them)."""
        self.sampler = EpochShuffleSampler(self.num_videos, schedule.videos_per_step, args.seed)
        num_workers = args.dataloader_num_workers
        return DataLoader(
            EpochSeededDataset(self.dataset, args.seed),
            batch_size=videos_per_batch(args.per_device_train_batch_size, self.clips_per_video),
            sampler=self.sampler,
            drop_last=True,
            collate_fn=collate_clips,
            num_workers=num_workers,
            persistent_workers=num_workers > 0,
            pin_memory=torch.accelerator.is_available() and not args.use_cpu,  # on a CPU it only warns
            # Worker seeds come from this generator, not the global one, so starting an epoch (or a resumed one)
            # never moves the random stream that dropout uses; the items are seeded by EpochSeededDataset anyway.
            generator=torch.Generator().manual_seed(args.seed),
        )

    def batches(self, accelerator, prepared_loader) -> ShuffledEpochs:
        """The loop's source of micro-batches, from the loader `accelerator.prepare` returned."""
        return ShuffledEpochs(accelerator, prepared_loader, self.sampler)


@dataclass
class ShuffledEpochs:
    """Each epoch in the order `EpochShuffleSampler` draws from (seed, epoch); a resumed epoch skips the batches
    already trained on (not their decoding: the sampler's indices are dropped before the workers see them)."""

    accelerator: Any
    loader: DataLoader
    sampler: EpochShuffleSampler

    def epoch_batches(self, epoch: int, micro_batches_done: int) -> Iterable[dict[str, torch.Tensor]]:
        self.sampler.set_epoch(epoch)
        loader = self.loader
        if micro_batches_done:
            loader = self.accelerator.skip_first_batches(self.loader, micro_batches_done)
        loader.set_epoch(epoch)
        return loader

    def checkpoint_state(self) -> dict[str, Any]:
        return {}  # the position follows from the step


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
    paths = getattr(train_dataset, "paths", [])
    return TrainingVideos(
        dataset=train_dataset,
        num_videos=len(train_dataset),
        clips_per_video=getattr(train_dataset, "views_per_video", clip_config.num_sample),
        figure_video=data_args.visualization_video or next(iter(paths), None),
        skipped=getattr(train_dataset, "skipped", None),
        description=f"{len(train_dataset)} videos",
    )


__all__ = ["ShuffledEpochs", "TrainingVideos", "build_train_dataset", "training_videos"]
