"""Streamed clips (StreamingVideoClipDataset) over tar shards in the WebDataset layout, written here: exact resume,
seeded shuffling per epoch, bad videos skipped and counted, sharding by process."""

import io
import json
import os
import tarfile

import datasets
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from adamae_hf.data import (
    DataSourceArguments,
    SkippedVideos,
    StreamingVideoClipDataset,
    VideoClipConfig,
    clip_dataloader,
    collate_clips,
    open_video_split,
    render_motion_clip,
    write_video,
)
from adamae_hf.data.streaming import batches_served_by_worker, stream_video_key


CLASSES = ("move_left", "move_right")
CONFIG = VideoClipConfig(num_frames=4, sampling_rate=1, crop_size=32, short_side_size=32, num_sample=2)
NOT_A_VIDEO = b"this is not an mp4 file"


def encoded_videos(folder, count: int = 3) -> list[bytes]:
    """``count`` tiny distinct H.264 mp4 files (8 frames, 32x32), as bytes."""
    videos = []
    for number in range(count):
        frames, _ = render_motion_clip(CLASSES[number % 2], 8, 32, 32, np.random.default_rng(number))
        path = write_video(os.path.join(folder, f"video_{number}.mp4"), frames)
        with open(path, "rb") as handle:
            videos.append(handle.read())
    return videos


def write_video_shards(folder, videos: list[bytes], shard_sizes: list[int], bad_keys=(), with_cls=True) -> list[str]:
    """Tar shards in the WebDataset layout (`<key>.mp4`, `<key>.cls` unless not `with_cls`, `<key>.json`, then
    `classes.txt`); the video with key `s<shard>v<i>` is `videos[(shard + i) % len(videos)]`, or junk bytes when its
    key is in `bad_keys`, and its class `(shard + i) % 2`. Returns the keys in shard order."""
    os.makedirs(folder, exist_ok=True)
    keys = []
    for shard, size in enumerate(shard_sizes):
        with tarfile.open(os.path.join(folder, f"shard-{shard:06d}.tar"), "w") as tar:
            for number in range(size):
                key = f"s{shard}v{number}"
                label = (shard + number) % len(CLASSES)
                members = {
                    "mp4": NOT_A_VIDEO if key in bad_keys else videos[(shard + number) % len(videos)],
                    "cls": str(label).encode(),
                    "json": json.dumps({"label": CLASSES[label], "path": f"videos/{key}.mp4"}).encode(),
                }
                if not with_cls:
                    del members["cls"]
                for extension, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{extension}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                keys.append(key)
    with open(os.path.join(folder, "classes.txt"), "w") as handle:
        handle.write("\n".join(CLASSES) + "\n")
    return keys


def key_of(shard_key: str) -> int:
    """The `video_index` that a shard member's items carry: the key hashes its shard's number, its position in the
    shard and its path (the shard's name and member name)."""
    shard, position = (int(number) for number in shard_key[1:].split("v"))
    return stream_video_key(shard, position, f"shard-{shard:06d}.tar/{shard_key}.mp4")


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return encoded_videos(tmp_path_factory.mktemp("encoded"))


@pytest.fixture(scope="module")
def uneven_shards(tmp_path_factory, videos):
    """Three shards of four videos: with two workers, worker 0 holds two shards and worker 1 one."""
    folder = tmp_path_factory.mktemp("uneven_shards")
    return str(folder), write_video_shards(folder, videos, [4, 4, 4])


def streamed(source: str, *, train: bool = True, videos_per_batch: int = 1, **kwargs) -> StreamingVideoClipDataset:
    split = open_video_split(DataSourceArguments(train_index=source, streaming=True, shuffle_buffer_size=3), "train")
    return StreamingVideoClipDataset(
        split.stream,
        CONFIG,
        train=train,
        seed=7,
        normalize=False,
        videos_per_batch=videos_per_batch,
        shuffle_buffer_size=split.shuffle_buffer_size,
        **kwargs,
    )


def run_epoch(dataset, epoch: int, num_workers: int, state_every_batch: bool = False):
    """The epoch's batches, and the dataset's state_dict after each batch (taken mid-run, as a checkpoint would)."""
    dataset.set_epoch(epoch)
    loader = DataLoader(
        dataset, batch_size=dataset.videos_per_batch, collate_fn=collate_clips, num_workers=num_workers
    )
    batches, states = [], {}
    for batch in loader:
        batches.append(batch)
        if state_every_batch:
            states[len(batches)] = dataset.state_dict(len(batches))
    return batches, states


def assert_same_batches(actual, expected):
    assert len(actual) == len(expected)
    for got, wanted in zip(actual, expected):
        assert got.keys() == wanted.keys()
        for name in wanted:
            assert torch.equal(got[name], wanted[name]), name


@pytest.mark.parametrize("num_workers", [0, 2])
def test_a_resumed_epoch_gives_the_batches_an_uninterrupted_one_gives(uneven_shards, num_workers):
    folder, keys = uneven_shards
    uninterrupted, states = run_epoch(streamed(folder), epoch=1, num_workers=num_workers, state_every_batch=True)
    assert len(uninterrupted) == len(keys)  # one video per batch, none dropped
    # 3: mid-epoch, every worker still serving; 10: worker 1's single shard ended after 4 batches, so worker 0
    # served 6 of the first 10 (the state records when worker 1 ended).
    for consumed in (3, 10):
        resumed = streamed(folder)
        resumed.load_state_dict(states[consumed])
        assert_same_batches(run_epoch(resumed, epoch=1, num_workers=num_workers)[0], uninterrupted[consumed:])
    # The contract's form, mid-epoch: resume(epoch, batches consumed, batch size).
    resumed = streamed(folder)
    resumed.resume(1, 3, 1)
    assert_same_batches(run_epoch(resumed, epoch=1, num_workers=num_workers)[0], uninterrupted[3:])


def test_fewer_shards_than_workers_split_the_rows(tmp_path, videos):
    keys = write_video_shards(tmp_path, videos, [5])
    uninterrupted, states = run_epoch(streamed(str(tmp_path)), epoch=0, num_workers=2, state_every_batch=True)
    assert sorted(int(batch["video_index"][0]) for batch in uninterrupted) == sorted(key_of(key) for key in keys)
    resumed = streamed(str(tmp_path))
    resumed.load_state_dict(states[3])
    assert_same_batches(run_epoch(resumed, epoch=0, num_workers=2)[0], uninterrupted[3:])


def test_views_do_not_depend_on_workers_and_each_epoch_has_its_own_order(uneven_shards):
    folder, keys = uneven_shards
    by_workers = {}
    for num_workers in (0, 2):
        batches, _ = run_epoch(streamed(folder), epoch=0, num_workers=num_workers)
        by_workers[num_workers] = {int(batch["video_index"][0]): batch["pixel_values"] for batch in batches}
    assert sorted(by_workers[0]) == sorted(key_of(key) for key in keys)  # every video once
    assert all(torch.equal(by_workers[0][key], by_workers[2][key]) for key in by_workers[0])

    dataset = streamed(folder)
    orders = [[int(b["video_index"][0]) for b in run_epoch(dataset, epoch, num_workers=0)[0]] for epoch in (0, 1, 0)]
    assert orders[0] != orders[1] and sorted(orders[0]) == sorted(orders[1])
    assert orders[2] == orders[0]  # the order is a function of (seed, epoch)


def test_persistent_workers_follow_set_epoch(uneven_shards):
    folder, _ = uneven_shards
    dataset = streamed(folder)
    loader = DataLoader(dataset, batch_size=1, collate_fn=collate_clips, num_workers=2, persistent_workers=True)
    orders = []
    for epoch in (0, 1):
        dataset.set_epoch(epoch)  # the workers, started once, read the epoch from shared memory
        orders.append([int(batch["video_index"][0]) for batch in loader])
    fresh = [[int(b["video_index"][0]) for b in run_epoch(streamed(folder), e, num_workers=2)[0]] for e in (0, 1)]
    assert orders == fresh and orders[0] != orders[1]


def test_bad_videos_are_skipped_counted_once_each_and_batches_keep_their_size(tmp_path, videos):
    # One shard, evaluation order: windows of two [s0v0, bad] [bad, bad] [s0v4, s0v5] [s0v6, bad].
    bad = {"s0v1", "s0v2", "s0v3", "s0v7"}
    write_video_shards(tmp_path, videos, [8], bad_keys=bad)
    dataset = streamed(str(tmp_path), train=False, videos_per_batch=2)
    batches, _ = run_epoch(dataset, epoch=0, num_workers=0)
    shown = [[int(key) for key in batch["video_index"][:: CONFIG.num_eval_views]] for batch in batches]
    filled = [["s0v0", "s0v0"], ["s0v4", "s0v5"], ["s0v4", "s0v5"], ["s0v6", "s0v6"]]
    assert shown == [[key_of(key) for key in window] for window in filled]
    assert dataset.skipped.count == 4 and dataset.skipped.num_videos == 4
    run_epoch(dataset, epoch=1, num_workers=0)
    assert dataset.skipped.count == 8 and dataset.skipped.num_videos == 4  # once per epoch each


def test_bad_videos_are_counted_exactly_across_workers(tmp_path, videos):
    bad = {"s0v1", "s1v0", "s1v2"}
    keys = write_video_shards(tmp_path, videos, [3, 3], bad_keys=bad)
    shared_tally = SkippedVideos(2)  # e.g. one a map-style dataset made: a table smaller than the keys is fine
    dataset = streamed(str(tmp_path), videos_per_batch=3, skipped=shared_tally)
    batches, _ = run_epoch(dataset, epoch=0, num_workers=2)
    seen = {int(key) for batch in batches for key in batch["video_index"]}
    assert seen == {key_of(key) for key in keys if key not in bad}
    assert all(batch["pixel_values"].shape[0] == 3 * CONFIG.num_sample for batch in batches)
    assert shared_tally.count == 3


@pytest.mark.parametrize("shard_sizes", [[2, 2, 2, 2], [3, 3, 2]])  # whole shards per process, or every other video
def test_processes_read_disjoint_shares_that_cover_the_stream(tmp_path, videos, shard_sizes):
    keys = write_video_shards(tmp_path, videos, shard_sizes)
    shares = []
    for rank in range(2):
        dataset = streamed(str(tmp_path), train=False, rank=rank, world_size=2)
        shares.append({int(batch["video_index"][0]) for batch in run_epoch(dataset, 0, num_workers=0)[0]})
    assert not shares[0] & shares[1]
    assert shares[0] | shares[1] == {key_of(key) for key in keys}


def test_labels_come_from_the_shards_cls_and_classes_file(uneven_shards):
    folder, keys = uneven_shards
    split = open_video_split(DataSourceArguments(train_index=folder, streaming=True), "train")
    assert split.label_names == list(CLASSES)
    label_of = {key_of(key): (int(key[1]) + int(key[3:])) % len(CLASSES) for key in keys}
    batches, _ = run_epoch(streamed(folder, train=False), epoch=0, num_workers=0)
    assert [int(b["labels"][0]) for b in batches] == [label_of[int(b["video_index"][0])] for b in batches]


def test_round_robin_accounting_of_worker_batches():
    assert batches_served_by_worker(7, 3, {}) == ([3, 2, 2], 1)
    # Worker 1 served 2 batches in all: the DataLoader then alternates between workers 0 and 2 (next in the cycle
    # after the 9th batch: worker 1, which it will pass over again).
    assert batches_served_by_worker(9, 3, {1: 2}) == ([4, 2, 3], 1)
    assert batches_served_by_worker(8, 3, {1: 2}) == ([3, 2, 3], 0)
    assert batches_served_by_worker(4, 1, {}) == ([4], 0)


def test_resume_checks_the_batch_size(uneven_shards):
    with pytest.raises(ValueError, match="batches of 1"):
        streamed(uneven_shards[0]).resume(0, 2, batch_size=4)


def test_rows_of_the_same_path_or_of_none_are_each_their_own_video(tmp_path, videos):
    """Hub datasets may hold bytes without a path, or basenames only: every row still gets its own key, the same
    with any shuffle or number of workers, and its own name in the predictions."""
    names = [None, None, None, "clip.mp4", "clip.mp4"]
    rows = [{"bytes": videos[number % len(videos)], "path": name} for number, name in enumerate(names)]
    table = datasets.Dataset.from_dict({"video": rows}, features=datasets.Features({"video": datasets.Video()}))
    table.save_to_disk(str(tmp_path / "saved"))
    split = open_video_split(DataSourceArguments(train_index=str(tmp_path / "saved"), streaming=True), "train")

    def keys(train: bool, epoch: int, num_workers: int) -> list[int]:
        dataset = StreamingVideoClipDataset(split.stream, CONFIG, train=train, seed=7, normalize=False)
        batches, _ = run_epoch(dataset, epoch=epoch, num_workers=num_workers)
        return [int(batch["video_index"][0]) for batch in batches]

    in_order = keys(train=False, epoch=0, num_workers=0)
    assert len(set(in_order)) == len(names)
    assert sorted(keys(train=True, epoch=1, num_workers=2)) == sorted(in_order)
    path_of = StreamingVideoClipDataset(split.stream, CONFIG, train=False).video_paths()
    assert [path_of[key] for key in in_order] == ["<bytes>#1", "<bytes>#2", "<bytes>#3", "clip.mp4#1", "clip.mp4#2"]


def test_repeated_rows_of_one_file_are_two_videos_with_their_own_augmentation(tmp_path, videos):
    """Repeated rows of one file are still two videos, and views of equal rows at the same (seed, epoch) differ."""
    path = tmp_path / "clip.mp4"
    path.write_bytes(videos[0])
    stream = datasets.Dataset.from_dict({"path": [str(path)] * 2}).to_iterable_dataset(num_shards=1)
    dataset = StreamingVideoClipDataset(stream, CONFIG, train=True, seed=7, normalize=False)
    first, second = run_epoch(dataset, epoch=0, num_workers=0)[0]
    assert int(first["video_index"][0]) != int(second["video_index"][0])
    assert not torch.equal(first["pixel_values"], second["pixel_values"])


def test_the_dataloader_batches_must_be_the_streams_windows(uneven_shards):
    dataset = streamed(uneven_shards[0], train=False, videos_per_batch=2)
    with pytest.raises(ValueError, match=r"batches of 4 videos.*windows of 2 \(videos_per_batch\)"):
        clip_dataloader(dataset, clips_per_batch=4 * CONFIG.num_eval_views)
    loader = clip_dataloader(dataset, clips_per_batch=2 * CONFIG.num_eval_views)
    assert loader.batch_size == 2 and len(list(loader)) == 6


def test_the_keyed_stream_keeps_the_splits_size(uneven_shards):
    # A source that tells its split's size (a Hub dataset's info) still tells it: pretraining counts an epoch by it.
    stream = open_video_split(DataSourceArguments(train_index=uneven_shards[0], streaming=True), "train").stream
    stream.info.splits = datasets.SplitDict({"train": datasets.SplitInfo(name="train", num_examples=12)})
    keyed = StreamingVideoClipDataset(stream, CONFIG, train=True).stream
    assert keyed.split == stream.split and keyed.info.splits["train"].num_examples == 12
