"""Which frames make a clip, and how a clip becomes the evaluation views: the one implementation that training,
evaluation and the Hub pipeline share.

This file travels with every AdaMAE classifier folder (beside ``pipeline_adamae.py``, which imports it, and
``video_adamae.py``, the reader), so it needs only NumPy and torch; ``adamae_hf.data`` re-exports it.

* :func:`dense_clip_indices`, :func:`segment_clip_indices`, :func:`sample_clip_indices` -- VideoMAE's two ways of
  picking a clip's frames; :func:`read_evaluation_clips` decodes a video's evaluation clips in one pass.
* :func:`evaluation_views` -- short-side resize, one centre crop or three crops, normalisation, on uint8 tensors.

Sampling
--------
* **dense** (Kinetics): ``num_frames`` frames ``sampling_rate`` apart from one window of
  ``(num_frames - 1) * sampling_rate + 1`` frames; a random window in training, ``num_clips`` evenly spaced
  windows at evaluation.
* **segment** (Something-Something): the video is cut into ``num_frames`` equal segments and one frame is taken
  from each; a random frame per segment in training, the middle at evaluation (shifted per clip when
  ``num_clips > 1``).

All samplers return int64 arrays of frame indices in ``[0, num_video_frames)``, in temporal order.

Evaluation views
----------------
Frames stay uint8 (T, C, H, W) until normalisation, so every resize runs on PyTorch's uint8 bilinear kernel with
antialiasing (``F.interpolate(..., antialias=True)``), which is also what transformers' torchvision-backed
VideoMAE processors use. Frames smaller than the crop are resized up.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


try:
    from .video_adamae import VideoReader, short_side_resize_shape
except ImportError:  # imported as an installed top-level module rather than as Hub remote code
    from video_adamae import VideoReader, short_side_resize_shape


SAMPLING_MODES = ("dense", "segment")


# ------------------------------------------------------------------------------------------------------- clip sampling


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


def sample_clip_indices(
    sampling_mode: str,
    num_video_frames: int,
    num_frames: int,
    sampling_rate: int,
    train: bool,
    rng: np.random.Generator | None = None,
    clip_index: int = 0,
    num_clips: int = 1,
) -> np.ndarray:
    """Indices of one clip in ``sampling_mode`` ("dense" or "segment"; ``sampling_rate`` is used by dense only).

    The evaluation views these give are §7 of docs/method.md in the adamae-hf repository."""
    if sampling_mode == "dense":
        return dense_clip_indices(num_video_frames, num_frames, sampling_rate, train, rng, clip_index, num_clips)
    if sampling_mode == "segment":
        return segment_clip_indices(num_video_frames, num_frames, train, rng, clip_index, num_clips)
    raise ValueError(f"sampling_mode must be one of {SAMPLING_MODES}, got {sampling_mode!r}")


def read_evaluation_clips(
    reader: VideoReader,
    sampling_mode: str,
    num_frames: int,
    sampling_rate: int,
    num_clips: int,
) -> tuple[list[np.ndarray], int]:
    """Decode the ``num_clips`` evaluation clips of a video in one pass (see :meth:`VideoReader.read_sampled_frames`).

    Returns:
        A list of ``num_clips`` uint8 (T, H, W, 3) arrays, and the video length they were sampled for.
    """

    def indices(length: int) -> np.ndarray:
        return np.concatenate(
            [
                sample_clip_indices(
                    sampling_mode, length, num_frames, sampling_rate, train=False, clip_index=clip, num_clips=num_clips
                )
                for clip in range(num_clips)
            ]
        )

    frames, length = reader.read_sampled_frames(indices)  # (num_clips * T, H, W, 3)
    return np.split(frames, num_clips), length


# ---------------------------------------------------------------------------------------------------- evaluation views


def as_uint8_video(frames) -> torch.Tensor:
    """(T, H, W, 3) uint8 frames (numpy or torch) as a (T, 3, H, W) uint8 tensor view (no copy)."""
    video = torch.from_numpy(frames) if isinstance(frames, np.ndarray) else torch.as_tensor(frames)
    if video.dtype != torch.uint8 or video.ndim != 4 or video.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {video.dtype} {tuple(video.shape)}")
    return video.permute(0, 3, 1, 2)


def resize(video: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of a uint8 (T, C, H, W) video with antialiasing (a no-op at the same size)."""
    if video.shape[-2:] == (height, width):
        return video
    return F.interpolate(video, size=(height, width), mode="bilinear", align_corners=False, antialias=True)


def resize_short_side(video: torch.Tensor, short_side: int) -> torch.Tensor:
    """Resize (T, C, H, W) so that min(H, W) == short_side, keeping the aspect ratio."""
    return resize(video, *short_side_resize_shape(video.shape[-2], video.shape[-1], short_side))


def center_crop(video: torch.Tensor, size: int) -> torch.Tensor:
    """Centre ``size`` x ``size`` crop (offset rounded down, as transformers' processors do)."""
    height, width = video.shape[-2:]
    if size > height or size > width:
        raise ValueError(f"crop size {size} is larger than the frames ({height}x{width}); resize first")
    top, left = (height - size) // 2, (width - size) // 2
    return video[..., top : top + size, left : left + size]


def three_crops(video: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Start, centre and end ``size`` x ``size`` crops along the long side, centred on the short side.

    These are VideoMAE's three spatial test views; frames must already be resized so the short side is >= size.
    """
    height, width = video.shape[-2:]
    if size > height or size > width:
        raise ValueError(f"crop size {size} is larger than the frames ({height}x{width}); resize first")
    crops = []
    for position in range(3):
        if width >= height:
            top, left = (height - size) // 2, position * (width - size) // 2
        else:
            top, left = position * (height - size) // 2, (width - size) // 2
        crops.append(video[..., top : top + size, left : left + size])
    return crops


def normalize(video: torch.Tensor, mean, std, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 (..., C, H, W) -> float32 ``(x / 255 - mean) / std``, contiguous (written into ``out`` if given), on
    the input's device: a worker normalises a clip, or the training loop a uint8 batch on the GPU, bit for bit alike.

    Computed as ``x * (1 / (255 std)) - mean / std`` on a contiguous copy: one multiply-add instead of three
    broadcast passes over channels-last memory (10x faster); it differs from the textbook order by float
    rounding only (~1e-6).
    """
    # the scale and shift in float32 on the CPU, so that every device multiplies by the same numbers
    mean = torch.tensor(mean, dtype=torch.float32)
    std = torch.tensor(std, dtype=torch.float32)
    scale, shift = 1.0 / (255.0 * std), mean / std
    if out is None:
        out = torch.empty(video.shape, dtype=torch.float32, device=video.device)
    out.copy_(video.contiguous())  # uint8 -> float32
    # on the device without a host copy (the loop normalises every batch on the GPU); float32 -> float -> float32 is
    # exact, so every device uses the same numbers
    scale, shift = (_channel_constants(values.tolist(), out).view(3, 1, 1) for values in (scale, shift))
    return out.mul_(scale).sub_(shift)


def _channel_constants(values: list[float], like: torch.Tensor) -> torch.Tensor:
    """``values`` as a float32 (C,) tensor on ``like``'s device, written by fill kernels: a copy from host memory
    could make the host wait for every kernel queued on the GPU, once per batch."""
    return torch.stack([torch.full((), value, dtype=torch.float32, device=like.device) for value in values])


def evaluation_views(
    frames,
    crop_size: int,
    short_side: int,
    num_crops: int,
    image_mean,
    image_std,
    normalized: bool = True,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Deterministic evaluation views of one clip: (T, H, W, 3) uint8 -> (num_crops, T, C, crop, crop).

    The short side is resized to ``short_side`` (bilinear, antialiased; up or down), then one centre crop
    (``num_crops=1``) or three crops along the long side (``num_crops=3``) are cut and, with ``normalized``,
    normalised to float32 with ``image_mean`` / ``image_std``; otherwise the views stay uint8. ``out`` receives them
    when given.
    """
    if num_crops not in (1, 3):
        raise ValueError(f"num_crops must be 1 or 3, got {num_crops!r}")
    video = resize_short_side(as_uint8_video(frames), short_side)
    crops = [center_crop(video, crop_size)] if num_crops == 1 else three_crops(video, crop_size)
    if out is None:
        out = torch.empty((len(crops), *crops[0].shape), dtype=torch.float32 if normalized else torch.uint8)
    for crop_index, crop in enumerate(crops):
        if normalized:
            normalize(crop, image_mean, image_std, out=out[crop_index])
        else:
            out[crop_index].copy_(crop)
    return out
