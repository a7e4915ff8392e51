"""Which frames make a clip: VideoMAE's two sampling modes.

* **dense** (Kinetics): ``num_frames`` frames ``sampling_rate`` apart from one window of
  ``(num_frames - 1) * sampling_rate + 1`` frames; a random window in training, ``num_clips`` evenly spaced
  windows at evaluation.
* **segment** (Something-Something): the video is cut into ``num_frames`` equal segments and one frame is taken
  from each; a random frame per segment in training, the middle at evaluation (shifted per clip when
  ``num_clips > 1``).

All functions return int64 arrays of frame indices in ``[0, num_video_frames)``, in temporal order. The samplers
live in the top-level ``video_clips_adamae.py``, shared with the Hub pipeline (``pipeline_adamae.py``);
:func:`clip_indices` applies them to a :class:`~adamae_hf.data.config.VideoClipConfig`.
"""

from __future__ import annotations

import numpy as np

from video_clips_adamae import dense_clip_indices, sample_clip_indices, segment_clip_indices

from .config import VideoClipConfig


__all__ = ["clip_indices", "dense_clip_indices", "segment_clip_indices"]


def clip_indices(
    config: VideoClipConfig,
    num_video_frames: int,
    train: bool,
    rng: np.random.Generator | None = None,
    clip_index: int = 0,
) -> np.ndarray:
    """Indices of one clip under ``config.sampling_mode`` (evaluation clips are numbered up to ``num_clips``)."""
    return sample_clip_indices(
        config.sampling_mode,
        num_video_frames,
        config.num_frames,
        config.sampling_rate,
        train,
        rng,
        clip_index,
        num_clips=1 if train else config.num_clips,
    )
