"""Clip transforms on uint8 tensors: crops, flips, RandAugment, normalisation and random erasing.

Frames stay uint8 (T, C, H, W) until normalisation, so every resize runs on PyTorch's uint8 bilinear kernel with
antialiasing (``F.interpolate(..., antialias=True)``), which is also what transformers' torchvision-backed
VideoMAE processors use; no PIL round trip anywhere. A clip always gets the same crop, flip and RandAugment ops
on all its frames, so motion is preserved.

Training (:class:`TrainTransform`): VideoMAE's multi-scale crop (pretraining) or a random resized crop
(fine-tuning), optional flip, optional RandAugment, normalisation, optional random erasing.
Evaluation (:class:`EvalTransform`): short-side resize, then a centre crop or three crops along the long side,
normalisation. Frames smaller than the crop are resized up. The evaluation views, the resizes and crops they use and
:func:`normalize` live in the top-level ``video_clips_adamae.py``, which the Hub pipeline (``pipeline_adamae.py``)
shares.
"""

from __future__ import annotations

import math
import re

import numpy as np
import torch
import torch.nn.functional as F

from video_adamae import short_side_resize_shape
from video_clips_adamae import (
    as_uint8_video,
    center_crop,
    evaluation_views,
    normalize,
    resize,
    resize_short_side,
    three_crops,
)

from .config import IMAGENET_DEFAULT_MEAN, VideoClipConfig


__all__ = [
    "EvalTransform",
    "TrainTransform",
    "VideoRandAugment",
    "as_uint8_video",
    "center_crop",
    "check_uint8_output",
    "decode_short_side",
    "evaluation_views",
    "multiscale_crop",
    "multiscale_crop_box",
    "normalize",
    "random_erasing",
    "random_resized_crop",
    "random_resized_crop_box",
    "resize",
    "resize_short_side",
    "short_side_resize_shape",
    "three_crops",
    "unnormalize",
]


def multiscale_crop_box(
    height: int,
    width: int,
    crop_size: int,
    scales: list[float],
    rng: np.random.Generator,
    max_distort: int = 1,
) -> tuple[int, int, int, int]:
    """VideoMAE's ``GroupMultiScaleCrop`` box: (top, left, crop_height, crop_width).

    Crop sides are fractions ``scales`` of the short side (snapped to ``crop_size`` when within 2 pixels), height
    and width scale indices differ by at most ``max_distort``, and the box sits at one of 13 fixed positions
    (corners, centre, edge midpoints, quarter points).
    """
    base = min(height, width)
    sides = [max(1, int(base * scale)) for scale in scales]
    sides = [crop_size if abs(side - crop_size) < 3 else side for side in sides]
    pairs = [
        (crop_height, crop_width)
        for i, crop_height in enumerate(sides)
        for j, crop_width in enumerate(sides)
        if abs(i - j) <= max_distort
    ]
    crop_height, crop_width = pairs[int(rng.integers(len(pairs)))]
    # Snapping to crop_size may exceed a frame smaller than the crop: keep the box inside the frame.
    crop_height, crop_width = min(crop_height, height), min(crop_width, width)
    step_height, step_width = (height - crop_height) // 4, (width - crop_width) // 4
    offsets = [
        (0, 0),
        (0, 4),
        (4, 0),
        (4, 4),
        (2, 2),  # corners and centre, as (row quarter, column quarter)
        (2, 0),
        (2, 4),
        (4, 2),
        (0, 2),  # edge midpoints
        (1, 1),
        (1, 3),
        (3, 1),
        (3, 3),  # quarter points
    ]
    row_quarter, column_quarter = offsets[int(rng.integers(len(offsets)))]
    return row_quarter * step_height, column_quarter * step_width, crop_height, crop_width


def multiscale_crop(
    video: torch.Tensor, crop_size: int, scales: list[float], rng: np.random.Generator
) -> torch.Tensor:
    """Multi-scale crop of a uint8 (T, C, H, W) video, resized to (crop_size, crop_size)."""
    top, left, crop_height, crop_width = multiscale_crop_box(video.shape[-2], video.shape[-1], crop_size, scales, rng)
    cropped = video[..., top : top + crop_height, left : left + crop_width]
    return resize(cropped, crop_size, crop_size)


def random_resized_crop_box(
    height: int, width: int, scale: list[float], ratio: list[float], rng: np.random.Generator
) -> tuple[int, int, int, int]:
    """Inception-style box (top, left, crop_height, crop_width): area fraction in ``scale``, log-uniform aspect
    ratio in ``ratio``; after 10 misses, the largest centred box within the ratio range."""
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target_area = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        crop_width = int(round(math.sqrt(target_area * aspect)))
        crop_height = int(round(math.sqrt(target_area / aspect)))
        if 0 < crop_width <= width and 0 < crop_height <= height:
            top = int(rng.integers(0, height - crop_height + 1))
            left = int(rng.integers(0, width - crop_width + 1))
            return top, left, crop_height, crop_width
    in_ratio = width / height
    if in_ratio < ratio[0]:
        crop_width, crop_height = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        crop_height, crop_width = height, int(round(height * ratio[1]))
    else:
        crop_height, crop_width = height, width
    return (height - crop_height) // 2, (width - crop_width) // 2, crop_height, crop_width


def random_resized_crop(
    video: torch.Tensor, crop_size: int, scale: list[float], ratio: list[float], rng: np.random.Generator
) -> torch.Tensor:
    """Random resized crop of a uint8 (T, C, H, W) video to (crop_size, crop_size)."""
    top, left, crop_height, crop_width = random_resized_crop_box(video.shape[-2], video.shape[-1], scale, ratio, rng)
    return resize(video[..., top : top + crop_height, left : left + crop_width], crop_size, crop_size)


def unnormalize(pixel_values: torch.Tensor, mean, std) -> torch.Tensor:
    """Invert :func:`normalize`: float (..., C, H, W) back to [0, 1] (clamped), for display."""
    mean = torch.tensor(mean, dtype=pixel_values.dtype, device=pixel_values.device).view(3, 1, 1)
    std = torch.tensor(std, dtype=pixel_values.dtype, device=pixel_values.device).view(3, 1, 1)
    return (pixel_values * std + mean).clamp(0.0, 1.0)


# ----------------------------------------------------------------------------------------------- RandAugment


def _blend(degenerate: torch.Tensor, video: torch.Tensor, factor: float) -> torch.Tensor:
    """PIL's ImageEnhance blend on uint8: degenerate + factor * (video - degenerate), rounded and clipped."""
    blended = degenerate.float() + factor * (video.float() - degenerate.float())
    return blended.round_().clamp_(0, 255).to(torch.uint8)


def _grayscale(video: torch.Tensor) -> torch.Tensor:
    """ITU-R 601 luma (PIL's "L"), float (T, 1, H, W)."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (video.float() * weights).sum(dim=1, keepdim=True)


def _autocontrast(video: torch.Tensor) -> torch.Tensor:
    flat = video.reshape(video.shape[0], 3, -1)  # (T, C, H*W)
    low = flat.amin(dim=-1).float().view(-1, 3, 1, 1)
    high = flat.amax(dim=-1).float().view(-1, 3, 1, 1)
    scale = torch.where(high > low, 255.0 / (high - low).clamp(min=1), torch.ones_like(high))
    shift = torch.where(high > low, low, torch.zeros_like(low))
    return ((video.float() - shift) * scale).floor_().clamp_(0, 255).to(torch.uint8)


def _equalize(video: torch.Tensor) -> torch.Tensor:
    """Histogram equalisation per frame and channel, as PIL's ImageOps.equalize."""
    channels = video.reshape(-1, video.shape[-2] * video.shape[-1]).long()  # (T*C, H*W)
    histograms = torch.zeros(channels.shape[0], 256, dtype=torch.long).scatter_add_(
        1, channels, torch.ones_like(channels)
    )
    equalized = torch.empty_like(channels)
    for row in range(channels.shape[0]):
        histogram = histograms[row]
        nonzero = histogram[histogram > 0]
        step = int(nonzero[:-1].sum()) // 255
        if step == 0:
            equalized[row] = channels[row]
            continue
        lookup = (torch.cumsum(histogram, 0) + step // 2) // step
        lookup = torch.cat([lookup.new_zeros(1), lookup[:-1]]).clamp(0, 255)
        equalized[row] = lookup[channels[row]]
    return equalized.view_as(video).to(torch.uint8)


def _sharpness(video: torch.Tensor, factor: float) -> torch.Tensor:
    kernel = torch.tensor([[1.0, 1.0, 1.0], [1.0, 5.0, 1.0], [1.0, 1.0, 1.0]]) / 13.0
    kernel = kernel.view(1, 1, 3, 3).repeat(3, 1, 1, 1)
    smoothed = F.conv2d(video.float(), kernel, groups=3).round_()
    # PIL leaves the one-pixel border unfiltered.
    degenerate = video.float().clone()
    degenerate[..., 1:-1, 1:-1] = smoothed
    return _blend(degenerate, video, factor)


def _affine(video: torch.Tensor, matrix: tuple[float, ...], fill: torch.Tensor) -> torch.Tensor:
    """Warp with output pixel (x, y) sampled at input (a x + b y + c, d x + e y + f), pixel-centre coordinates."""
    height, width = video.shape[-2:]
    a, b, c, d, e, f = matrix
    rows, cols = torch.meshgrid(
        torch.arange(height, dtype=torch.float32) + 0.5, torch.arange(width, dtype=torch.float32) + 0.5, indexing="ij"
    )
    source_x = a * cols + b * rows + c
    source_y = d * cols + e * rows + f
    # grid_sample wants (x, y) in [-1, 1] with align_corners=False: -1 is the left edge of the first pixel.
    grid = torch.stack([source_x / width * 2 - 1, source_y / height * 2 - 1], dim=-1)  # (H, W, 2)
    grid = grid.unsqueeze(0).expand(video.shape[0], -1, -1, -1)  # (T, H, W, 2)
    shifted = video.float() - fill  # zero padding then lands on the fill colour
    warped = F.grid_sample(shifted, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + fill
    return warped.round_().clamp_(0, 255).to(torch.uint8)


def _rotation_matrix(degrees: float, height: int, width: int) -> tuple[float, ...]:
    angle = math.radians(degrees)
    centre_x, centre_y = width / 2, height / 2
    cos, sin = math.cos(angle), math.sin(angle)
    # Inverse map: rotate the output position back around the centre.
    return (
        cos,
        sin,
        centre_x - cos * centre_x - sin * centre_y,
        -sin,
        cos,
        centre_y + sin * centre_x - cos * centre_y,
    )


class VideoRandAugment:
    """timm's RandAugment (``rand-m{M}-n{N}-mstd{S}-inc{0|1}``) for uint8 (T, C, H, W) clips.

    Each call picks ``N`` ops (with replacement), each applied with probability 0.5 at a magnitude drawn from
    N(M, S) clipped to [0, 10]; the choice is made once per clip so every frame gets the same op. The op set and
    magnitude-to-argument mapping follow timm (``inc1``: the increasing-severity variants that VideoMAE uses).
    Geometric ops fill with the ImageNet mean colour.
    """

    _OPS = (
        "AutoContrast",
        "Equalize",
        "Invert",
        "Rotate",
        "Posterize",
        "Solarize",
        "SolarizeAdd",
        "Color",
        "Contrast",
        "Brightness",
        "Sharpness",
        "ShearX",
        "ShearY",
        "TranslateXRel",
        "TranslateYRel",
    )

    def __init__(self, spec: str = "rand-m9-n2-mstd0.5", fill=IMAGENET_DEFAULT_MEAN):
        self.magnitude, self.num_ops, self.magnitude_std, self.increasing = 10.0, 2, 0.0, False
        for part in spec.split("-")[1:]:
            key, value = re.match(r"([a-z]+)([\d.]+)", part).groups()
            if key == "m":
                self.magnitude = float(value)
            elif key == "n":
                self.num_ops = int(value)
            elif key == "mstd":
                self.magnitude_std = float(value)
            elif key == "inc":
                self.increasing = bool(int(value))
        self.fill = torch.tensor([round(value * 255) for value in fill], dtype=torch.float32).view(1, 3, 1, 1)

    def __call__(self, video: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        for op_index in rng.integers(len(self._OPS), size=self.num_ops):
            if rng.random() >= 0.5:
                continue
            magnitude = self.magnitude
            if self.magnitude_std > 0:
                magnitude = rng.normal(self.magnitude, self.magnitude_std)
            level = float(np.clip(magnitude, 0.0, 10.0)) / 10.0
            video = self._apply(self._OPS[op_index], video, level, rng)
        return video

    def _apply(self, name: str, video: torch.Tensor, level: float, rng: np.random.Generator) -> torch.Tensor:
        sign = -1.0 if rng.random() < 0.5 else 1.0
        height, width = video.shape[-2:]
        if name == "AutoContrast":
            return _autocontrast(video)
        if name == "Equalize":
            return _equalize(video)
        if name == "Invert":
            return 255 - video
        if name == "Rotate":
            return _affine(video, _rotation_matrix(sign * level * 30.0, height, width), self.fill)
        if name == "ShearX":
            return _affine(video, (1.0, sign * level * 0.3, 0.0, 0.0, 1.0, 0.0), self.fill)
        if name == "ShearY":
            return _affine(video, (1.0, 0.0, 0.0, sign * level * 0.3, 1.0, 0.0), self.fill)
        if name == "TranslateXRel":
            return _affine(video, (1.0, 0.0, sign * level * 0.45 * width, 0.0, 1.0, 0.0), self.fill)
        if name == "TranslateYRel":
            return _affine(video, (1.0, 0.0, 0.0, 0.0, 1.0, sign * level * 0.45 * height), self.fill)
        if name == "Posterize":
            bits = 4 - int(level * 4) if self.increasing else int(level * 4)
            if bits >= 8:
                return video
            return video & ((0xFF << (8 - bits)) & 0xFF)
        if name == "Solarize":
            threshold = 256 - int(level * 256) if self.increasing else int(level * 256)
            return torch.where(video >= threshold, 255 - video, video)
        if name == "SolarizeAdd":
            added = (video.short() + int(level * 110)).clamp(0, 255).to(torch.uint8)
            return torch.where(video < 128, added, video)
        factor = 1.0 + sign * level * 0.9 if self.increasing else level * 1.8 + 0.1
        if name == "Color":
            return _blend(_grayscale(video).round(), video, factor)
        if name == "Contrast":
            frame_means = _grayscale(video).mean(dim=(1, 2, 3), keepdim=True).add(0.5).floor()
            return _blend(frame_means.expand_as(video.float()), video, factor)
        if name == "Brightness":
            return _blend(torch.zeros_like(video), video, factor)
        if name == "Sharpness":
            return _sharpness(video, factor)
        raise ValueError(f"unknown RandAugment op {name!r}")


def random_erasing(
    pixel_values: torch.Tensor,
    probability: float,
    rng: np.random.Generator,
    min_area: float = 0.02,
    max_area: float = 1 / 3,
    min_aspect: float = 0.3,
) -> torch.Tensor:
    """timm's RandomErasing in "pixel" mode on normalised float (T, C, H, W), in place.

    As in VideoMAE, each frame is considered independently: with ``probability`` it gets one rectangle (area
    fraction in [min_area, max_area], log-uniform aspect ratio) filled with standard-normal noise.
    """
    num_frames, channels, height, width = pixel_values.shape
    log_aspect = (math.log(min_aspect), math.log(1 / min_aspect))
    for frame_index in range(num_frames):
        if rng.random() >= probability:
            continue
        for _ in range(10):
            target_area = rng.uniform(min_area, max_area) * height * width
            aspect = math.exp(rng.uniform(*log_aspect))
            erase_height = int(round(math.sqrt(target_area * aspect)))
            erase_width = int(round(math.sqrt(target_area / aspect)))
            if 0 < erase_height < height and 0 < erase_width < width:
                top = int(rng.integers(0, height - erase_height + 1))
                left = int(rng.integers(0, width - erase_width + 1))
                noise = rng.standard_normal((channels, erase_height, erase_width), dtype=np.float32)
                pixel_values[frame_index, :, top : top + erase_height, left : left + erase_width] = torch.from_numpy(
                    noise
                )
                break
    return pixel_values


# ----------------------------------------------------------------------------------------------- composed


def decode_short_side(config: VideoClipConfig, train: bool) -> int:
    """The short side a frame can be scaled to before the transform without losing detail it would keep: evaluation
    resizes to ``eval_short_side`` anyway, and in training even the smallest crop any draw can cut keeps at least
    ``crop_size`` pixels a side, so the crop is never enlarged where the full frame would have been reduced.

    Multi-scale crops are ``scale x short side``; a random resized crop of area fraction s and aspect ratio r on a
    frame of short side S and aspect a >= 1 is at least ``S sqrt(a s min(r, 1 / r))`` a side, smallest at a = 1.
    """
    if not train:
        return config.eval_short_side
    if config.train_crop == "multiscale":
        smallest_fraction = min(config.multiscale_scales)
    else:
        low_ratio, high_ratio = config.random_resized_ratio
        smallest_fraction = math.sqrt(config.random_resized_scale[0] * min(low_ratio, 1 / high_ratio))
    return math.ceil(config.crop_size / smallest_fraction)


def check_uint8_output(config: VideoClipConfig) -> None:
    """uint8 output leaves normalisation to the consumer, and with it random erasing, which works on normalised
    values; a config that asks for it cannot have uint8 output."""
    if config.random_erasing_prob > 0:
        raise ValueError(
            f"uint8 clips (normalize=False) leave normalisation to the consumer, but random erasing "
            f"(random_erasing_prob={config.random_erasing_prob}) needs normalised clips: set it to 0 or normalize=True."
        )


class TrainTransform:
    """Training augmentation: (T, H, W, 3) uint8 frames -> float32 (T, C, crop, crop) ``pixel_values``.

    Order: crop (multi-scale or random resized, resized to ``crop_size``), horizontal flip (p = 0.5, if enabled),
    RandAugment (if configured; applied after the crop, where it is cheaper), normalisation, random erasing.
    With ``normalize=False`` it stops before normalisation and returns the uint8 clip (see :func:`normalize`).
    """

    def __init__(self, config: VideoClipConfig, normalize: bool = True):
        if not normalize:
            check_uint8_output(config)
        self.config = config
        self.normalize = normalize
        self.rand_augment = VideoRandAugment(config.rand_augment, config.image_mean) if config.rand_augment else None

    def __call__(self, frames, rng: np.random.Generator, out: torch.Tensor | None = None) -> torch.Tensor:
        """Augment one clip; ``out`` ((T, C, crop, crop), float32, or uint8 without normalisation) receives the
        result when given."""
        config = self.config
        video = as_uint8_video(frames)  # (T, 3, H, W)
        if config.train_crop == "multiscale":
            video = multiscale_crop(video, config.crop_size, config.multiscale_scales, rng)
        else:
            video = random_resized_crop(
                video, config.crop_size, config.random_resized_scale, config.random_resized_ratio, rng
            )
        if config.horizontal_flip and rng.random() < 0.5:
            video = video.flip(-1)
        if self.rand_augment is not None:
            video = self.rand_augment(video, rng)
        if not self.normalize:
            return video.contiguous() if out is None else out.copy_(video)  # (T, 3, crop, crop) uint8
        pixel_values = normalize(video, config.image_mean, config.image_std, out=out)  # (T, 3, crop, crop) float32
        if config.random_erasing_prob > 0:
            pixel_values = random_erasing(pixel_values, config.random_erasing_prob, rng)
        return pixel_values


class EvalTransform:
    """Deterministic evaluation views: (T, H, W, 3) uint8 -> float32 (num_crops, T, C, crop, crop).

    The short side is resized to ``config.eval_short_side`` (bilinear, antialiased; up or down), then one centre
    crop or three crops along the long side are cut, then normalised. With ``num_crops=1`` this is exactly what the
    processor from :func:`adamae_hf.data.processor.build_video_processor` computes. With ``normalize=False`` the
    views stay uint8.
    """

    def __init__(self, config: VideoClipConfig, normalize: bool = True):
        self.config = config
        self.normalize = normalize

    def __call__(
        self, frames, rng: np.random.Generator | None = None, out: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Views of one clip; ``out`` ((num_crops, T, C, crop, crop), float32, or uint8 without normalisation)
        receives them when given. ``rng`` is unused (evaluation is deterministic); it keeps the signature of
        :class:`TrainTransform`."""
        config = self.config
        return evaluation_views(
            frames,
            config.crop_size,
            config.eval_short_side,
            config.num_crops,
            config.image_mean,
            config.image_std,
            normalized=self.normalize,
            out=out,
        )
