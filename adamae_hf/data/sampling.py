"""Which frames make a clip: VideoMAE's two sampling modes.

* **dense** (Kinetics): ``num_frames`` frames ``sampling_rate`` apart from one window of
  ``(num_frames - 1) * sampling_rate + 1`` frames; a random window in training, ``num_clips`` evenly spaced
  windows at evaluation.
* **segment** (Something-Something): the video is cut into ``num_frames`` equal segments and one frame is taken
  from each; a random frame per segment in training, the middle at evaluation (shifted per clip when
  ``num_clips > 1``).

All functions return int64 arrays of frame indices in ``[0, num_video_frames)``, in temporal order.
"""

from __future__ import annotations

import numpy as np

from .config import SAMPLING_MODES, VideoClipConfig


def _check_counts(num_video_frames: int, num_frames: int) -> None:
    if num_video_frames < 1:
        raise ValueError(f"num_video_frames must be >= 1, got {num_video_frames}")
    if num_frames < 1:
        raise ValueError(f"num_frames must be >= 1, got {num_frames}")


def _check_clip(clip_index: int, num_clips: int) -> None:
    if num_clips < 1 or not 0 <= clip_index < num_clips:
        raise ValueError(f"clip_index must be in [0, num_clips={num_clips}), got {clip_index}")


def dense_clip_indices(
    num_video_frames: int,
    num_frames: int,
    sampling_rate: int,
    train: bool,
    rng: np.random.Generator | None = None,
    clip_index: int = 0,
    num_clips: int = 1,
) -> np.ndarray:
    """Frames ``start, start + rate, ...`` of one window.

    In training the window start is uniform over every position that fits. At evaluation, clip ``clip_index`` of
    ``num_clips`` starts at ``clip_index / (num_clips - 1)`` of the free range (the first window at the start,
    the last at the end), or in the middle when ``num_clips == 1``.

    A video shorter than the window repeats its last frame to fill the clip, so even a one-frame video yields
    ``num_frames`` indices (all 0).
    """
    _check_counts(num_video_frames, num_frames)
    if sampling_rate < 1:
        raise ValueError(f"sampling_rate must be >= 1, got {sampling_rate}")
    _check_clip(clip_index, num_clips)
    window = (num_frames - 1) * sampling_rate + 1
    free = max(num_video_frames - window, 0)
    if train:
        if rng is None:
            raise ValueError("train=True needs an rng")
        start = int(rng.integers(0, free + 1))
    elif num_clips == 1:
        start = free // 2
    else:
        start = int(round(clip_index * free / (num_clips - 1)))
    indices = start + np.arange(num_frames, dtype=np.int64) * sampling_rate
    return np.minimum(indices, num_video_frames - 1)


def segment_clip_indices(
    num_video_frames: int,
    num_frames: int,
    train: bool,
    rng: np.random.Generator | None = None,
    clip_index: int = 0,
    num_clips: int = 1,
) -> np.ndarray:
    """One frame from each of ``num_frames`` equal segments.

    Segment k spans ``[k * L / num_frames, (k + 1) * L / num_frames)`` for a video of L frames. Training draws a
    uniform frame inside each segment; evaluation takes the frame at fraction ``(clip_index + 0.5) / num_clips``
    of each segment (the middle for a single clip).

    A video with fewer frames than segments repeats frames: each segment takes the frame it falls in, so a
    one-frame video yields ``num_frames`` zeros.
    """
    _check_counts(num_video_frames, num_frames)
    _check_clip(clip_index, num_clips)
    segment_starts = np.arange(num_frames, dtype=np.float64) * num_video_frames / num_frames
    segment_length = num_video_frames / num_frames
    if train:
        if rng is None:
            raise ValueError("train=True needs an rng")
        first = np.floor(segment_starts).astype(np.int64)
        # Segments shorter than a frame still own the frame they start in.
        last = np.maximum(np.floor(segment_starts + segment_length).astype(np.int64), first + 1)
        indices = rng.integers(first, last)
    else:
        offset = (clip_index + 0.5) / num_clips
        indices = np.floor(segment_starts + offset * segment_length).astype(np.int64)
    return np.clip(indices, 0, num_video_frames - 1)


def clip_indices(
    config: VideoClipConfig,
    num_video_frames: int,
    train: bool,
    rng: np.random.Generator | None = None,
    clip_index: int = 0,
) -> np.ndarray:
    """Indices of one clip under ``config.sampling_mode`` (evaluation clips are numbered up to ``num_clips``)."""
    num_clips = 1 if train else config.num_clips
    if config.sampling_mode == "dense":
        return dense_clip_indices(
            num_video_frames, config.num_frames, config.sampling_rate, train, rng, clip_index, num_clips
        )
    if config.sampling_mode == "segment":
        return segment_clip_indices(num_video_frames, config.num_frames, train, rng, clip_index, num_clips)
    raise ValueError(f"sampling_mode must be one of {SAMPLING_MODES}, got {config.sampling_mode!r}")
