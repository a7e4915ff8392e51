"""Frame sampling: dense windows and segments, training and evaluation, short and one-frame videos."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adamae_hf.data import VideoClipConfig, clip_indices, dense_clip_indices, segment_clip_indices


def test_dense_training_window_is_random_with_exact_stride():
    rng = np.random.default_rng(0)
    starts = set()
    for _ in range(400):
        indices = dense_clip_indices(100, 8, 4, train=True, rng=rng)
        assert np.all(np.diff(indices) == 4) and indices[0] >= 0 and indices[-1] <= 99
        starts.add(int(indices[0]))
    assert min(starts) == 0 and max(starts) == 100 - 29  # every position of the 29-frame window is reachable
    assert len(starts) > 50


def test_dense_evaluation_windows_are_evenly_spaced():
    centre = dense_clip_indices(100, 8, 4, train=False)
    np.testing.assert_array_equal(centre, 35 + 4 * np.arange(8))  # (100 - 29) // 2 = 35
    clips = [dense_clip_indices(100, 8, 4, train=False, clip_index=c, num_clips=3) for c in range(3)]
    assert [int(clip[0]) for clip in clips] == [0, 36, 71]
    assert clips[-1][-1] == 99


def test_dense_short_video_repeats_its_last_frame():
    np.testing.assert_array_equal(dense_clip_indices(10, 6, 4, train=False), [0, 4, 8, 9, 9, 9])
    np.testing.assert_array_equal(
        dense_clip_indices(10, 6, 4, train=True, rng=np.random.default_rng(0)), [0, 4, 8, 9, 9, 9]
    )
    np.testing.assert_array_equal(dense_clip_indices(1, 4, 2, train=True, rng=np.random.default_rng(0)), [0, 0, 0, 0])


def test_segment_training_takes_one_random_frame_per_segment():
    rng = np.random.default_rng(0)
    seen = set()
    for _ in range(200):
        indices = segment_clip_indices(40, 8, train=True, rng=rng)
        assert np.all(indices // 5 == np.arange(8))  # frame k comes from segment [5k, 5k + 5)
        seen.update(indices.tolist())
    assert seen == set(range(40))


def test_segment_evaluation_takes_the_middles():
    np.testing.assert_array_equal(segment_clip_indices(40, 8, train=False), 2 + 5 * np.arange(8))
    first, second = (segment_clip_indices(40, 8, train=False, clip_index=c, num_clips=2) for c in range(2))
    np.testing.assert_array_equal(first, 1 + 5 * np.arange(8))
    np.testing.assert_array_equal(second, 3 + 5 * np.arange(8))


def test_segment_short_and_one_frame_videos():
    np.testing.assert_array_equal(segment_clip_indices(3, 6, train=False), [0, 0, 1, 1, 2, 2])
    np.testing.assert_array_equal(segment_clip_indices(1, 4, train=True, rng=np.random.default_rng(0)), [0, 0, 0, 0])


def test_clip_indices_follows_the_config():
    dense = VideoClipConfig(num_frames=4, sampling_rate=2, num_clips=2)
    np.testing.assert_array_equal(clip_indices(dense, 20, train=False, clip_index=1), [13, 15, 17, 19])
    segment = VideoClipConfig(num_frames=4, sampling_mode="segment")
    np.testing.assert_array_equal(clip_indices(segment, 20, train=False), [2, 7, 12, 17])


def test_invalid_arguments_raise():
    with pytest.raises(ValueError, match="num_video_frames"):
        dense_clip_indices(0, 4, 2, train=False)
    with pytest.raises(ValueError, match="num_frames"):
        segment_clip_indices(10, 0, train=False)
    with pytest.raises(ValueError, match="clip_index"):
        dense_clip_indices(10, 4, 2, train=False, clip_index=3, num_clips=3)
    with pytest.raises(ValueError, match="rng"):
        segment_clip_indices(10, 4, train=True)


@settings(max_examples=200, deadline=None)
@given(
    num_video_frames=st.integers(1, 500),
    num_frames=st.integers(1, 32),
    sampling_rate=st.integers(1, 8),
    mode=st.sampled_from(["dense", "segment"]),
    train=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_indices_are_in_range_ordered_and_complete(num_video_frames, num_frames, sampling_rate, mode, train, seed):
    config = VideoClipConfig(num_frames=num_frames, sampling_rate=sampling_rate, sampling_mode=mode, num_clips=2)
    rng = np.random.default_rng(seed)
    for clip in range(1 if train else 2):
        indices = clip_indices(config, num_video_frames, train=train, rng=rng, clip_index=clip)
        assert indices.dtype == np.int64 and indices.shape == (num_frames,)
        assert indices.min() >= 0 and indices.max() < num_video_frames
        assert np.all(np.diff(indices) >= 0)
