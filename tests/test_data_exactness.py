"""Every random choice of an item is a pure function of (seed, epoch, video, view): the same clips and the same trained
weights with 0, 1 or 2 DataLoader workers, in any order, after a resume, on an index holding a file whose header
claims twice its frames and an empty file."""

import io
from pathlib import Path

import datasets
import pytest
import torch
from pretrain_helpers import state_dict_of, tiny_argv

from adamae_hf.data import (
    VideoClipConfig,
    VideoClipDataset,
    VideoReader,
    clip_dataloader,
    generate_sample_videos,
    index_from_dataset,
    render_motion_clip,
    write_video,
)
from adamae_hf.data.dataset import video_views
from adamae_hf.pretrain_arguments import parse_pretraining_args
from adamae_hf.pretrain_run import run_pretraining
from adamae_hf.training import reset_accelerate_state


# 13-frame windows: on the truncated file (about 20 real frames, 48 claimed) most draws for the claimed length run
# past the real end and are drawn again inside it.
CONFIG = dict(num_frames=4, sampling_rate=4, crop_size=32)
# What the tiny pretraining model takes (tiny_argv): 8 frames of 32x32.
PRETRAIN_CONFIG = dict(num_frames=8, sampling_rate=2, crop_size=32)


@pytest.fixture(scope="module")
def awkward_index(tmp_path_factory):
    """Eight rows: six good videos, one truncated file whose header claims 48 frames, one empty file."""
    import numpy as np

    folder = tmp_path_factory.mktemp("exactness")
    good = generate_sample_videos(
        folder, num_videos=6, num_frames=24, height=48, width=64, seed=2, gop_size=4, save_masks=False
    )
    frames, _ = render_motion_clip("move_left", 48, 48, 64, np.random.default_rng(3))
    full = write_video(folder / "full.mp4", frames, options={"g": "4"}, container_options={"movflags": "faststart"})
    data = Path(full).read_bytes()
    truncated, empty = folder / "truncated.mp4", folder / "empty.mp4"
    truncated.write_bytes(data[: len(data) // 2])  # the sample table at the front still lists 48 frames
    empty.write_bytes(b"")
    with VideoReader(str(truncated), num_threads=1) as reader:
        assert reader.num_frames == 48
        reader.read_frames([47])
        assert reader.num_frames < 30  # decoding finds the real end
    paths = [good[0].path, str(truncated), good[1].path, str(empty), *(video.path for video in good[2:])]
    return index_from_dataset(datasets.Dataset.from_dict({"path": paths}))


def epoch_items(dataset, num_workers, epochs=(0, 1)):
    """Per epoch: every item's (pixel_values, video_index), through one persistent loader for all epochs."""
    loader = clip_dataloader(dataset, clips_per_batch=4, num_workers=num_workers, shuffle=False, drop_last=False)
    results = []
    for epoch in epochs:
        dataset.set_epoch(epoch)
        batches = list(loader)
        results.append(
            (
                torch.cat([batch["pixel_values"] for batch in batches]),
                torch.cat([batch["video_index"] for batch in batches]),
            )
        )
    return results


def test_items_are_the_same_with_0_1_2_workers_in_any_order_and_after_any_history(awkward_index):
    config = VideoClipConfig(**CONFIG, num_sample=2)
    reference = epoch_items(VideoClipDataset(awkward_index, config, train=True, seed=11), num_workers=0)
    for num_workers in (1, 2):
        for (pixels, videos), (expected_pixels, expected_videos) in zip(
            epoch_items(VideoClipDataset(awkward_index, config, train=True, seed=11), num_workers), reference
        ):
            assert torch.equal(videos, expected_videos) and torch.equal(pixels, expected_pixels), num_workers
    (epoch0, videos0), (epoch1, _) = reference
    assert not torch.equal(epoch0, epoch1)  # a new epoch, new draws
    assert 3 not in videos0.tolist()  # the empty file was replaced
    # Warm: the truncated file decoded many times first, then items read back to front.
    warm = VideoClipDataset(awkward_index, config, train=True, seed=11)
    for _ in range(3):
        warm[1]
    backwards = [warm[index] for index in reversed(range(len(warm)))][::-1]
    assert torch.equal(torch.cat([item["pixel_values"] for item in backwards]), epoch0)


def test_video_views_depend_on_the_file_and_the_key_only(awkward_index):
    config = VideoClipConfig(**CONFIG, num_sample=2)
    path = awkward_index[1]["path"]  # the truncated file
    kwargs = dict(video_key=1, epoch=4, seed=9, config=config, train=True, normalize=False)
    first = video_views(path, **kwargs)
    assert first.shape == (2, 4, 3, 32, 32) and first.dtype == torch.uint8
    data = Path(path).read_bytes()
    for source in (path, data, io.BytesIO(data), path):
        assert torch.equal(video_views(source, **kwargs), first)
    assert not torch.equal(video_views(path, **{**kwargs, "epoch": 5}), first)
    assert not torch.equal(video_views(path, **{**kwargs, "video_key": 2}), first)


@pytest.fixture
def fresh_accelerate_state():
    reset_accelerate_state()
    yield
    reset_accelerate_state()


def pretrain(argv, dataset):
    reset_accelerate_state()
    return state_dict_of(run_pretraining(*parse_pretraining_args(argv), train_dataset=dataset).model)


def test_pretraining_weights_do_not_depend_on_workers_or_a_resume(awkward_index, tmp_path, fresh_accelerate_state):
    # 8 videos, 2 per step: 4 steps an epoch; 8 steps are two epochs, each meeting the truncated and the empty file.
    # A straight run reads the truncated file once per epoch in whichever worker gets it; the run resumed at the start
    # of epoch 1 (in one worker) has read nothing before.
    def dataset():
        return VideoClipDataset(awkward_index, VideoClipConfig(**PRETRAIN_CONFIG), train=True)

    runs = {}
    for num_workers in (0, 2):
        runs[num_workers] = pretrain(
            tiny_argv(
                tmp_path / f"workers{num_workers}", max_steps=8, save_steps=4, dataloader_num_workers=num_workers
            ),
            dataset(),
        )
    checkpoint = tmp_path / "workers2" / "checkpoint-4"
    resumed = pretrain(
        tiny_argv(tmp_path / "resumed", max_steps=8, dataloader_num_workers=1, resume_from_checkpoint=checkpoint),
        dataset(),
    )
    for name, expected in runs[0].items():
        assert torch.equal(runs[2][name], expected) and torch.equal(resumed[name], expected), name
