"""The sample-video generator: real H.264 files, labelled motion, exact masks, index files."""

import csv
import json
import os
import time

import av
import numpy as np
import pytest

from adamae_hf.data import (
    MOTION_CLASSES,
    generate_sample_videos,
    load_motion_mask,
    read_video_frames,
    render_motion_clip,
)


def _mask_centroids(mask):
    rows, cols = np.mgrid[0 : mask.shape[1], 0 : mask.shape[2]]
    area = mask.sum(axis=(1, 2))
    return (mask * rows).sum(axis=(1, 2)) / area, (mask * cols).sum(axis=(1, 2)) / area


def test_writes_small_h264_mp4_files_with_cycling_labels(sample_videos):
    assert [video.label for video in sample_videos] == ["move_left", "move_right", "move_up"] * 2
    for video in sample_videos:
        assert video.path.endswith(".mp4") and os.path.isabs(video.path)
        assert 0 < os.path.getsize(video.path) < 20_000
        with av.open(video.path) as container:
            stream = container.streams.video[0]
            assert stream.codec_context.name == "h264"
            assert (stream.width, stream.height, stream.frames) == (64, 48, 16)


def test_decoded_frames_are_close_to_the_rendered_ones(tmp_path):
    videos = generate_sample_videos(tmp_path, num_videos=1, num_frames=8, seed=3, crf=18)
    rendered, _ = render_motion_clip(videos[0].label, 8, 48, 64, np.random.default_rng(3))
    decoded = read_video_frames(videos[0].path, range(8))
    mse = np.mean((decoded.astype(np.float64) - rendered) ** 2)
    assert 10 * np.log10(255**2 / mse) > 25  # dB: lossy, but the same picture


def test_masks_are_saved_beside_the_video_and_match(sample_videos):
    for video in sample_videos:
        assert video.motion_mask.dtype == bool and video.motion_mask.shape == (16, 48, 64)
        assert video.motion_mask.any(axis=(1, 2)).all()  # the object is visible in every frame
        np.testing.assert_array_equal(load_motion_mask(video.path), video.motion_mask)


@pytest.mark.parametrize("motion_class", MOTION_CLASSES)
def test_mask_motion_follows_the_label(motion_class):
    frames, mask = render_motion_clip(motion_class, 10, 40, 56, np.random.default_rng(0))
    assert frames.shape == (10, 40, 56, 3) and frames.dtype == np.uint8
    centre_rows, centre_cols = _mask_centroids(mask)
    if motion_class == "rotate_clockwise":
        # The bar turns around a fixed centre: its centroid stays put while the pixels it covers change.
        assert np.ptp(centre_rows) < 2 and np.ptp(centre_cols) < 2
        assert (mask[0] != mask[-1]).sum() > 0.2 * mask[0].sum()
        return
    row_step, col_step = {"move_left": (0, -1), "move_right": (0, 1), "move_up": (-1, 0), "move_down": (1, 0)}[
        motion_class
    ]
    assert np.sign(centre_rows[-1] - centre_rows[0]) == row_step
    assert np.sign(centre_cols[-1] - centre_cols[0]) == col_step
    # The masked object is drawn: it differs from the static background at the masked pixels.
    assert (frames[-1][mask[-1]] != frames[0][mask[-1]]).any()


def test_index_files_and_class_folders(tmp_path):
    videos = generate_sample_videos(tmp_path / "folders", num_videos=3, class_folders=True, index_file="index.jsonl")
    for video in videos:
        assert os.path.basename(os.path.dirname(video.path)) == video.label
    with open(tmp_path / "folders" / "index.jsonl") as handle:
        rows = [json.loads(line) for line in handle]
    assert [row["label"] for row in rows] == [video.label for video in videos]
    assert rows[0]["path"] == os.path.join("move_left", "video_0000.mp4")

    generate_sample_videos(tmp_path / "flat", num_videos=2, index_file="index.csv", save_masks=False)
    with open(tmp_path / "flat" / "index.csv", newline="") as handle:
        assert list(csv.reader(handle)) == [
            ["path", "label"],
            ["video_0000.mp4", "move_left"],
            ["video_0001.mp4", "move_right"],
        ]
    assert not any(name.endswith(".npz") for name in os.listdir(tmp_path / "flat"))


def test_a_dozen_tiny_videos_encode_quickly(tmp_path):
    start = time.perf_counter()
    videos = generate_sample_videos(tmp_path, num_videos=12, num_frames=16, height=48, width=64)
    assert len(videos) == 12
    assert time.perf_counter() - start < 5.0  # typically ~0.1 s


def test_odd_sizes_and_same_seed_same_videos(tmp_path):
    first = generate_sample_videos(tmp_path / "a", num_videos=1, height=33, width=45, num_frames=4, seed=5)[0]
    second = generate_sample_videos(tmp_path / "b", num_videos=1, height=33, width=45, num_frames=4, seed=5)[0]
    np.testing.assert_array_equal(first.motion_mask, second.motion_mask)
    assert read_video_frames(first.path, [0, 3]).shape == (2, 33, 45, 3)


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="motion_classes"):
        generate_sample_videos(tmp_path, motion_classes=["spin"])
    with pytest.raises(ValueError, match="num_videos"):
        generate_sample_videos(tmp_path, num_videos=0)
    with pytest.raises(ValueError, match="motion_class"):
        render_motion_clip("jump", 4, 8, 8, np.random.default_rng(0))


def test_same_seed_writes_byte_identical_files(tmp_path):
    # Without deterministic encoding about 1 file in 20 of this size differed between two runs.
    kwargs = dict(num_videos=48, num_frames=32, height=72, width=96, seed=5, save_masks=False)
    first = generate_sample_videos(tmp_path / "a", **kwargs)
    second = generate_sample_videos(tmp_path / "b", **kwargs)
    for a, b in zip(first, second):
        with open(a.path, "rb") as file_a, open(b.path, "rb") as file_b:
            assert file_a.read() == file_b.read(), a.path


@pytest.mark.parametrize("pan", [(0, 2), (-1, 3), (2, -2)])
def test_a_panning_camera_slides_the_background_and_keeps_the_object_mask(pan):
    frames, mask = render_motion_clip("move_down", 8, 40, 48, np.random.default_rng(4), camera_pan=pan)
    centre_rows, centre_cols = _mask_centroids(mask)
    assert np.all(np.diff(centre_rows) > 0) and np.ptp(centre_cols) == 0  # the object moves down in the frame
    rows, cols = pan
    for t in range(7):
        # Frame t+1 at (y, x) shows frame t at (y + rows, x + cols) wherever neither frame shows the object there.
        later = frames[t + 1][max(0, -rows) : 40 - max(0, rows), max(0, -cols) : 48 - max(0, cols)]
        earlier = frames[t][max(0, rows) : 40 + min(0, rows), max(0, cols) : 48 + min(0, cols)]
        background = ~(
            mask[t + 1][max(0, -rows) : 40 - max(0, rows), max(0, -cols) : 48 - max(0, cols)]
            | mask[t][max(0, rows) : 40 + min(0, rows), max(0, cols) : 48 + min(0, cols)]
        )
        np.testing.assert_array_equal(later[background], earlier[background])
        assert not np.array_equal(frames[t + 1][~mask[t + 1]], frames[t][~mask[t + 1]])  # the background moved


def test_generated_panning_videos_save_the_object_mask(tmp_path):
    video = generate_sample_videos(tmp_path, num_videos=1, num_frames=6, height=32, width=32, camera_pan=(1, 1))[0]
    _, expected = render_motion_clip(video.label, 6, 32, 32, np.random.default_rng(0), camera_pan=(1, 1))
    np.testing.assert_array_equal(load_motion_mask(video.path), expected)
