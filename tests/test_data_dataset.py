"""The clip dataset: repeated sampling, multi-view evaluation, collate, and bad videos never stopping an epoch."""

import io
import logging
import warnings

import datasets
import numpy as np
import pytest
import torch

from adamae_hf.data import (
    EvalTransform,
    SkippedVideos,
    VideoClipConfig,
    VideoClipDataset,
    VideoReader,
    clip_dataloader,
    collate_clips,
    index_from_dataset,
    index_from_file,
    load_eval_clip,
    normalize,
    read_video_frames,
    render_motion_clip,
    unnormalize,
    videos_per_batch,
    write_video,
)
from adamae_hf.data.sampling import clip_indices


SMALL = dict(num_frames=4, sampling_rate=2, crop_size=32)


@pytest.fixture(scope="module")
def sample_index(sample_index_file):
    return index_from_file(sample_index_file)


def test_training_item_and_batch_shapes(sample_index):
    dataset = VideoClipDataset(sample_index, VideoClipConfig(**SMALL), train=True)
    item = dataset[0]
    assert item["pixel_values"].shape == (1, 4, 3, 32, 32) and item["pixel_values"].dtype == torch.float32
    assert item["labels"].tolist() == [sample_index[0]["label"]] and item["video_index"].tolist() == [0]
    batch = next(iter(clip_dataloader(dataset, clips_per_batch=4)))
    assert batch["pixel_values"].shape == (4, 4, 3, 32, 32) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].shape == (4,) and batch["labels"].dtype == torch.long
    assert batch["video_index"].dtype == torch.long


def test_memory_is_pinned_only_where_an_accelerator_is(sample_index, monkeypatch):
    dataset = VideoClipDataset(sample_index, VideoClipConfig(**SMALL), train=True)
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # torch warns about pin_memory on a machine without an accelerator
        next(iter(clip_dataloader(dataset, clips_per_batch=4)))
    assert not clip_dataloader(dataset, clips_per_batch=4).pin_memory
    monkeypatch.setattr(torch.accelerator, "is_available", lambda: True)
    assert clip_dataloader(dataset, clips_per_batch=4).pin_memory
    assert not clip_dataloader(dataset, clips_per_batch=4, pin_memory=False).pin_memory


@pytest.mark.parametrize("num_workers", [0, 2])
def test_uint8_items_normalised_later_equal_the_normalised_items(sample_index, num_workers):
    config = VideoClipConfig(**SMALL, num_sample=2)
    batches = []
    for normalise_in_dataset in (True, False):
        dataset = VideoClipDataset(sample_index, config, train=True, normalize=normalise_in_dataset)
        torch.manual_seed(0)  # the same items' random streams in both
        batches.append(next(iter(clip_dataloader(dataset, clips_per_batch=4, num_workers=num_workers))))
    normalised, raw = batches
    assert raw["pixel_values"].dtype == torch.uint8 and raw["pixel_values"].shape == (4, 4, 3, 32, 32)
    assert torch.equal(normalize(raw["pixel_values"], config.image_mean, config.image_std), normalised["pixel_values"])
    assert torch.equal(raw["video_index"], normalised["video_index"])


def test_segment_sampling_dataset(sample_index):
    config = VideoClipConfig(**SMALL, sampling_mode="segment")
    assert VideoClipDataset(sample_index, config, train=True)[1]["pixel_values"].shape == (1, 4, 3, 32, 32)
    assert VideoClipDataset(sample_index, config, train=False)[1]["pixel_values"].shape == (1, 4, 3, 32, 32)


def test_repeated_sampling_decodes_once_and_augments_independently(sample_index, monkeypatch):
    dataset = VideoClipDataset(sample_index, VideoClipConfig(**SMALL, num_sample=3), train=True)
    decodes = []
    original = VideoClipDataset.read_clip_frames
    monkeypatch.setattr(
        VideoClipDataset, "read_clip_frames", lambda self, *args: decodes.append(1) or original(self, *args)
    )
    item = dataset[2]
    assert len(decodes) == 1
    views = item["pixel_values"]
    assert views.shape == (3, 4, 3, 32, 32)
    assert not torch.equal(views[0], views[1]) or not torch.equal(views[1], views[2])  # different crops
    assert item["labels"].tolist() == [sample_index[2]["label"]] * 3
    batch = next(iter(clip_dataloader(dataset, clips_per_batch=6)))
    assert batch["pixel_values"].shape == (6, 4, 3, 32, 32)
    assert batch["video_index"][0::3].tolist() == batch["video_index"][1::3].tolist()  # the batch counts clips


def test_evaluation_views_are_deterministic_and_grouped_by_video(sample_index):
    config = VideoClipConfig(**SMALL, short_side_size=40, num_clips=2, num_crops=3)
    dataset = VideoClipDataset(sample_index, config, train=False)
    item = dataset[4]
    assert item["pixel_values"].shape == (6, 4, 3, 32, 32)
    assert item["video_index"].tolist() == [4] * 6
    torch.testing.assert_close(dataset[4]["pixel_values"], item["pixel_values"], rtol=0, atol=0)
    # View order is clip-major: views 0-2 are the three crops of clip 0.
    frames = read_video_frames(dataset.paths[4], clip_indices(config, 16, train=False, clip_index=1))
    torch.testing.assert_close(item["pixel_values"][3:6], EvalTransform(config)(frames), rtol=0, atol=0)
    batch = next(iter(clip_dataloader(dataset, clips_per_batch=12)))
    assert batch["video_index"].tolist() == [0] * 6 + [1] * 6
    # Per-video averaging of predictions, as multi-view testing does.
    logits = torch.randn(12, 3)
    per_video = torch.zeros(2, 3).index_add_(0, batch["video_index"], logits.softmax(-1)) / 6
    assert torch.allclose(per_video.sum(-1), torch.ones(2))


def test_load_eval_clip_matches_the_evaluation_dataset(sample_index, sample_videos):
    clip = load_eval_clip(sample_videos[1].path, **SMALL)
    assert clip.shape == (4, 3, 32, 32)
    dataset = VideoClipDataset(sample_index, VideoClipConfig(**SMALL), train=False)
    torch.testing.assert_close(clip, dataset[1]["pixel_values"][0], rtol=0, atol=0)
    shown = unnormalize(clip, dataset.config.image_mean, dataset.config.image_std)
    assert shown.min() >= 0 and shown.max() <= 1


def test_videos_per_batch():
    assert videos_per_batch(32, 2) == 16
    with pytest.raises(ValueError, match="multiple"):
        videos_per_batch(5, 2)


@pytest.fixture(scope="module")
def awkward_videos(tmp_path_factory):
    """Files that must decode correctly, one per awkward kind."""
    folder = tmp_path_factory.mktemp("awkward")
    rng = np.random.default_rng(0)
    frames, _ = render_motion_clip("move_up", 12, 48, 64, rng)
    paths = {
        "short": write_video(folder / "short.mp4", frames[:3]),  # shorter than the 7-frame window
        "one_frame": write_video(folder / "one_frame.mp4", frames[:1]),
        "tiny": write_video(folder / "tiny.mp4", render_motion_clip("move_up", 8, 12, 16, rng)[0]),
        "odd_641x273": write_video(folder / "odd.mp4", render_motion_clip("move_up", 6, 273, 641, rng)[0]),
        "qcif_176x144": write_video(folder / "qcif.mp4", render_motion_clip("move_up", 6, 144, 176, rng)[0]),
        "gray": write_video(folder / "gray.mkv", frames, codec="ffv1", pix_fmt="gray"),
        "ten_bit": write_video(folder / "ten_bit.mp4", frames, pix_fmt="yuv420p10le"),
        "rotated": write_video(folder / "rotated.mp4", frames, rotation=90),
        "variable_frame_rate": write_video(
            folder / "vfr.mp4", frames, timestamps=[0, 0.03, 0.05, 0.2, 0.21, 0.4, 0.45, 0.5, 0.8, 0.9, 1.0, 1.3]
        ),
    }
    return paths


def test_awkward_videos_decode_into_full_clips(awkward_videos):
    index = index_from_dataset(datasets.Dataset.from_dict({"path": list(awkward_videos.values())}))
    for train in (True, False):
        dataset = VideoClipDataset(index, VideoClipConfig(**SMALL, num_crops=3 if not train else 1), train=train)
        for i, kind in enumerate(awkward_videos):
            pixel_values = dataset[i]["pixel_values"]
            assert pixel_values.shape == ((1 if train else 3), 4, 3, 32, 32), kind
            assert torch.isfinite(pixel_values).all(), kind
        assert dataset.skipped.count == 0


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory, sample_videos):
    folder = tmp_path_factory.mktemp("bad")
    good = open(sample_videos[0].path, "rb").read()
    (folder / "zero_bytes.mp4").write_bytes(b"")
    (folder / "random_bytes.mp4").write_bytes(
        np.random.default_rng(1).integers(0, 256, 3000, dtype=np.uint8).tobytes()
    )
    (folder / "text.mp4").write_text("not a video\n" * 30)
    (folder / "truncated.mp4").write_bytes(good[: len(good) // 2])
    import av

    with av.open(str(folder / "audio_only.m4a"), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 4096), np.float32), format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 8000, 0
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    names = ["missing.mp4", "zero_bytes.mp4", "random_bytes.mp4", "text.mp4", "truncated.mp4", "audio_only.m4a"]
    return [str(folder / name) for name in names]


@pytest.fixture(scope="module")
def mixed_index(sample_videos, bad_files):
    good = [video.path for video in sample_videos]
    paths = good[:3] + bad_files + good[3:]
    labels = (
        [video.label for video in sample_videos[:3]]
        + ["move_up"] * len(bad_files)
        + [v.label for v in sample_videos[3:]]
    )
    return index_from_dataset(datasets.Dataset.from_dict({"path": paths, "label": labels}))


def test_bad_videos_are_skipped_with_one_warning_each(mixed_index, bad_files, caplog):
    dataset = VideoClipDataset(mixed_index, VideoClipConfig(**SMALL), train=True)
    with caplog.at_level(logging.WARNING, logger="adamae_hf.data.dataset"):
        for _epoch in range(2):
            for batch in clip_dataloader(dataset, clips_per_batch=4, drop_last=False):
                assert torch.isfinite(batch["pixel_values"]).all()
                assert not set(batch["video_index"].tolist()) & {3, 4, 5, 6, 7, 8}  # only good videos in batches
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == len(bad_files)
    for path, reason in zip(
        bad_files, ["file not found", "empty file", "cannot open", "cannot open", "cannot open", "no video stream"]
    ):
        assert sum(path in message and reason in message for message in warnings) == 1, path
    assert dataset.skipped.num_videos == len(bad_files)
    assert dataset.skipped.count >= 2 * len(bad_files)  # every epoch meets every bad video (replacements may too)
    assert dataset.skipped.skipped_indices() == [3, 4, 5, 6, 7, 8]


def test_evaluation_replaces_bad_videos_deterministically(mixed_index):
    dataset = VideoClipDataset(mixed_index, VideoClipConfig(**SMALL), train=False)
    assert dataset[3]["video_index"].tolist() == [9]  # the next decodable video
    assert dataset[8]["video_index"].tolist() == [9]


@pytest.mark.parametrize("context", ["fork", "spawn"])
def test_skip_counter_is_shared_with_dataloader_workers(mixed_index, bad_files, context):
    dataset = VideoClipDataset(mixed_index, VideoClipConfig(**SMALL), train=True)
    loader = clip_dataloader(
        dataset, clips_per_batch=4, num_workers=2, drop_last=False, multiprocessing_context=context
    )
    clips = sum(batch["pixel_values"].shape[0] for batch in loader)
    assert clips == len(mixed_index)  # every item filled, nothing raised
    assert dataset.skipped.num_videos == len(bad_files) and dataset.skipped.count >= len(bad_files)


def test_an_index_where_nothing_decodes_fails_at_construction(bad_files):
    index = index_from_dataset(datasets.Dataset.from_dict({"path": bad_files}))
    with pytest.raises(ValueError, match=r"none of the 6 videos .* can be decoded: .*missing.mp4: file not found"):
        VideoClipDataset(index, VideoClipConfig(**SMALL), train=True)


def test_header_overstating_the_length_is_resampled(tmp_path):
    frames, _ = render_motion_clip("move_left", 40, 32, 32, np.random.default_rng(0))
    path = write_video(tmp_path / "full.mp4", frames, options={"g": "5"}, container_options={"movflags": "faststart"})
    data = open(path, "rb").read()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) * 2 // 3])  # the index at the front still lists 40
    index = index_from_dataset(datasets.Dataset.from_dict({"path": [str(tmp_path / "cut.mp4")]}))
    config = VideoClipConfig(num_frames=4, sampling_rate=8, crop_size=32)
    dataset = VideoClipDataset(index, config, train=False)
    assert dataset[0]["pixel_values"].shape == (1, 4, 3, 32, 32)
    # (decoder threads can change how many frames a truncated file yields, so the dataset's count is used)
    with VideoReader(str(tmp_path / "cut.mp4"), num_threads=config.decode_threads) as reader:
        assert reader.num_frames == 40  # what the header claims
        _, true_count = reader.read_sampled_frames(lambda length: clip_indices(config, length, train=False))
    assert 0 < true_count < 40
    frames = read_video_frames(
        str(tmp_path / "cut.mp4"), clip_indices(config, true_count, train=False), num_threads=config.decode_threads
    )
    torch.testing.assert_close(EvalTransform(config)(frames), dataset[0]["pixel_values"], rtol=0, atol=0)
    clip = load_eval_clip(str(tmp_path / "cut.mp4"), config)
    torch.testing.assert_close(clip, dataset[0]["pixel_values"][0], rtol=0, atol=0)


def test_collate_concatenates_views():
    items = [
        {
            "pixel_values": torch.zeros(2, 4, 3, 8, 8),
            "labels": torch.tensor([1, 1]),
            "video_index": torch.tensor([0, 0]),
        },
        {
            "pixel_values": torch.ones(2, 4, 3, 8, 8),
            "labels": torch.tensor([2, 2]),
            "video_index": torch.tensor([5, 5]),
        },
    ]
    batch = collate_clips(items)
    assert batch["pixel_values"].shape == (4, 4, 3, 8, 8)
    assert batch["labels"].tolist() == [1, 1, 2, 2] and batch["video_index"].tolist() == [0, 0, 5, 5]
    assert "labels" not in collate_clips([{k: v for k, v in item.items() if k != "labels"} for item in items])


def test_rejects_an_index_without_paths():
    with pytest.raises(ValueError, match="'path' column"):
        VideoClipDataset(datasets.Dataset.from_dict({"file": ["a.mp4"]}), VideoClipConfig(), train=True)


def test_rows_with_bytes_decode_from_them(sample_videos, caplog):
    paths = [video.path for video in sample_videos]
    config = VideoClipConfig(**SMALL, num_sample=2)
    from_paths = VideoClipDataset(datasets.Dataset.from_dict({"path": paths}), config, train=True, seed=4)
    # Rows 0 and 2 carry their bytes under a name that is no file; row 1's bytes are None: read from its path.
    names = ["memory/clip0.mp4", paths[1], "memory/clip2.mp4"]
    data = [open(paths[0], "rb").read(), None, open(paths[2], "rb").read()]
    index = datasets.Dataset.from_dict({"path": names, "bytes": data})
    from_bytes = VideoClipDataset(index, config, train=True, seed=4)
    for row in range(3):
        assert torch.equal(from_bytes[row]["pixel_values"], from_paths[row]["pixel_values"])
    bad_index = datasets.Dataset.from_dict({"path": ["memory/bad.mp4", paths[0]], "bytes": [b"not a video" * 9, None]})
    bad = VideoClipDataset(bad_index, config, train=False)
    with caplog.at_level(logging.WARNING, logger="adamae_hf.data.dataset"):
        assert bad[0]["video_index"].tolist() == [1]
    assert bad.skipped.count == 1 and "Skipping video memory/bad.mp4: cannot open" in caplog.text


@pytest.fixture(scope="module")
def twelve_bad_rows(tmp_path_factory, sample_videos):
    """Four good videos around twelve undecodable files in a row (so evaluation's forward scan crosses them)."""
    folder = tmp_path_factory.mktemp("twelve_bad")
    bad = []
    for number in range(12):
        path = folder / f"bad{number}.mp4"
        if number % 3 == 0:
            path.write_bytes(b"")
        elif number % 3 == 1:
            path.write_text(f"not a video {number}\n" * 20)
        # (number % 3 == 2: missing)
        bad.append(str(path))
    good = [video.path for video in sample_videos[:4]]
    return index_from_dataset(datasets.Dataset.from_dict({"path": good[:2] + bad + good[2:]}))


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("num_workers", [0, 2])
def test_each_bad_video_is_counted_once_per_epoch(twelve_bad_rows, train, num_workers, caplog):
    dataset = VideoClipDataset(twelve_bad_rows, VideoClipConfig(**SMALL), train=train, seed=0)
    loader = clip_dataloader(dataset, clips_per_batch=4, num_workers=num_workers, drop_last=False)
    with caplog.at_level(logging.WARNING, logger="adamae_hf.data.dataset"):
        for epoch, expected in ((0, 12), (1, 24)):
            dataset.set_epoch(epoch)
            assert sum(batch["pixel_values"].shape[0] for batch in loader) == 16
            assert dataset.skipped.count == expected
    assert dataset.skipped.num_videos == 12
    if num_workers == 0:  # (workers log in their own processes)
        assert len([record for record in caplog.records if "Skipping video" in record.getMessage()]) == 12


def test_rejects_class_names_as_labels(sample_videos):
    # a raw datasets.Dataset whose labels are names would fail deep in collation; index_from_dataset maps them
    paths = [str(video.path) for video in sample_videos[:2]]
    index = datasets.Dataset.from_dict({"path": paths, "label": ["run", "walk"]})
    with pytest.raises(ValueError, match="class ids, got str values; .*index_from_dataset"):
        VideoClipDataset(index, VideoClipConfig(**SMALL), train=True)


def test_the_skip_table_capacity_is_its_size():
    assert SkippedVideos(7).capacity == 7
    assert SkippedVideos(0).capacity == 1


class _Unseekable(io.RawIOBase):
    """A file object that reads but cannot seek (a pipe, a socket): the reader raises io.UnsupportedOperation."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        return self._data.readinto(buffer)


class _FirstVideoUnseekable(VideoClipDataset):
    def source(self, video_index: int):
        source = super().source(video_index)
        if video_index == 0:
            with open(source, "rb") as handle:
                return _Unseekable(handle.read())
        return source


def test_a_file_object_that_cannot_seek_is_a_skipped_video(sample_index, caplog):
    with caplog.at_level(logging.WARNING, logger="adamae_hf.data.dataset"):
        dataset = _FirstVideoUnseekable(sample_index, VideoClipConfig(**SMALL), train=False)
        item = dataset[0]
    assert item["video_index"].tolist() == [1]  # the next video fills the item
    assert dataset.skipped.count == 1 and dataset.skipped.skipped_indices() == [0]
    warnings = [record.getMessage() for record in caplog.records]
    assert len(warnings) == 1 and sample_index["path"][0] in warnings[0] and "UnsupportedOperation" in warnings[0]
