"""How much each token moves: two measures of motion per spatiotemporal token.

Both work on un-normalised frames in [0, 1] and give one value per token, in the model's token order (time-major,
then row, column), from the absolute differences of consecutive frames inside the token's tubelet, averaged over the
pixels and channels of its patch:

- `token_motion_energy` (*frame difference*): |frame[t+1] - frame[t]|. Everything that changes counts, so a
  panning or shaking camera makes every textured token "move".
- `compensated_motion_energy` (*camera-motion compensated*): the global translation between the two frames (the one
  most pixels follow, proposed by phase correlation: `estimate_global_shift`) is estimated first, frame t is shifted by
  it, and only then are the frames
  differenced. What is left is what moves relative to the dominant (background) motion, e.g. an object followed by a
  panning camera. Pixels that the shift brings in from outside the frame have no partner and are left out of the
  average. Shifts are whole pixels: a pan of a fraction of a pixel per frame leaves a small residual on textured
  regions, far below the difference the pan itself causes.

A tubelet of `t` frames has `t - 1` frame pairs inside it; with a tubelet of one frame each frame is paired with the
next one (the last with the one before).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from transformers.utils.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from modeling_adamae import patchify

from .data import unnormalize


MOTION_MEASURES = ("frame_difference", "compensated")


def phase_correlation_peaks(grey: torch.Tensor, num_peaks: int) -> torch.Tensor:
    """The `num_peaks` strongest whole-pixel translations between consecutive frames, by phase correlation.

    Args:
        grey: `(B, T, H, W)` frames.

    Returns:
        `(B, T - 1, 2 * num_peaks, 2)` int64 `(dy, dx)`, signed, in `[-H/2, H/2)` x `[-W/2, W/2)`: the `num_peaks`
        largest values of the correlation, then its `num_peaks` largest local maxima (3 x 3).

    The normalised cross-power spectrum of two shifted images is a pure phase ramp whose inverse transform peaks at the
    shift; each moving layer (background, object) gives its own peak.  A Hann window keeps the image borders, which a
    shift does not wrap around, from dominating the spectrum.
    """
    height, width = grey.shape[-2:]
    window = torch.outer(
        torch.hann_window(height, periodic=False, device=grey.device),
        torch.hann_window(width, periodic=False, device=grey.device),
    )
    spectra = torch.fft.fft2((grey - grey.mean(dim=(-2, -1), keepdim=True)) * window)  # (B, T, H, W) complex
    cross_power = spectra[:, 1:] * spectra[:, :-1].conj()
    cross_power = cross_power / cross_power.abs().clamp_min(1e-12)
    correlation = torch.fft.ifft2(cross_power).real  # (B, T-1, H, W), periodic
    # The strongest values, and the strongest local maxima (3 x 3, wrapping around): a broad peak would otherwise
    # crowd out a weaker one, and two motions one pixel apart share a local maximum.
    wrapped = F.pad(correlation.reshape(-1, 1, height, width), (1, 1, 1, 1), mode="circular")
    local_maximum = F.max_pool2d(wrapped, 3, stride=1).view_as(correlation)
    maxima = correlation.masked_fill(correlation < local_maximum, -math.inf)
    count = min(num_peaks, height * width)
    peaks = torch.cat(
        [values.flatten(-2).topk(count, dim=-1).indices for values in (correlation, maxima)], dim=-1
    )  # (B, T-1, 2 * count)
    dy, dx = peaks // width, peaks % width
    dy = torch.where(dy >= (height + 1) // 2, dy - height, dy)  # wrap to signed shifts
    dx = torch.where(dx >= (width + 1) // 2, dx - width, dx)
    return torch.stack([dy, dx], dim=-1)


def estimate_global_shift(frames: torch.Tensor, num_candidates: int = 5) -> torch.Tensor:
    """The whole-pixel translation that most pixels follow between each pair of consecutive frames.

    Phase correlation proposes candidates (`phase_correlation_peaks`, and no shift); the candidate with the
    smallest median absolute difference after aligning wins. The median makes it the motion of the majority of the
    pixels (the background, under a pan) even when a small high-contrast object gives the strongest peak.

    Args:
        frames: `(B, T, C, H, W)` (or `(B, T, H, W)`) frames; channels are averaged to grey.

    Returns:
        `(B, T - 1, 2)` int64 `(dy, dx)` such that `frames[:, t + 1](y, x) ~ frames[:, t](y - dy, x - dx)`.
    """
    grey = frames.float().mean(dim=2) if frames.ndim == 5 else frames.float()  # (B, T, H, W)
    batch_size, num_frames, height, width = grey.shape
    if num_frames < 2:
        return torch.zeros(batch_size, 0, 2, dtype=torch.long, device=grey.device)
    peaks = phase_correlation_peaks(grey, num_candidates)  # (B, P, K, 2)
    candidates = torch.cat([torch.zeros_like(peaks[:, :, :1]), peaks], dim=2)  # (B, P, 1 + K, 2)
    previous, following = grey[:, :-1, None], grey[:, 1:]  # (B, P, 1, H, W), (B, P, H, W)
    medians = []
    for candidate in candidates.unbind(dim=2):  # one candidate at a time: memory of one shifted clip
        aligned, valid = shift_frames(previous, candidate)
        residual = (following - aligned[:, :, 0]).abs().masked_fill(valid[:, :, 0] == 0, float("nan"))
        medians.append(residual.flatten(-2).nanmedian(dim=-1).values.nan_to_num(float("inf")))  # (B, P)
    best = torch.stack(medians, dim=-1).argmin(dim=-1)  # (B, P): the first of equal medians
    return candidates.gather(2, best[:, :, None, None].expand(-1, -1, 1, 2)).squeeze(2)


def shift_frames(frames: torch.Tensor, shifts: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Translate each frame by its own whole-pixel shift, without wrapping around.

    Args:
        frames: `(B, P, C, H, W)`.
        shifts: `(B, P, 2)` integer `(dy, dx)`: `out(y, x) = frames(y - dy, x - dx)`.

    Returns:
        `(shifted, valid)`: `(B, P, C, H, W)` and a `(B, P, 1, H, W)` float 0/1 map of the pixels that have a source
        inside the frame (the others are 0 in `shifted`).
    """
    batch_size, pairs, channels, height, width = frames.shape
    rows = torch.arange(height, device=frames.device) - shifts[..., :1]  # (B, P, H): source row of each row
    columns = torch.arange(width, device=frames.device) - shifts[..., 1:]  # (B, P, W)
    valid = ((rows >= 0) & (rows < height))[..., :, None] & ((columns >= 0) & (columns < width))[..., None, :]
    row_index = rows.clamp(0, height - 1)[:, :, None, :, None].expand(-1, -1, channels, -1, width)
    column_index = columns.clamp(0, width - 1)[:, :, None, None, :].expand(-1, -1, channels, height, -1)
    shifted = frames.gather(3, row_index).gather(4, column_index)
    valid = valid[:, :, None].to(frames.dtype)
    return shifted * valid, valid


def _tubelet_pair_indices(num_frames: int, tubelet_size: int) -> tuple[list[int], int]:
    """Which consecutive-frame pairs (pair i = frames i, i+1) each tubelet averages, time-major, and how many per
    tubelet: the `t - 1` pairs inside a tubelet of `t > 1` frames, or one pair per single-frame tubelet."""
    if tubelet_size > 1:
        pairs = [start + i for start in range(0, num_frames, tubelet_size) for i in range(tubelet_size - 1)]
        return pairs, tubelet_size - 1
    return [min(frame, num_frames - 2) for frame in range(num_frames)], 1


def token_pair_average(
    differences: torch.Tensor, valid: torch.Tensor, tubelet_size: int, patch_size: int
) -> torch.Tensor:
    """Average per-pair difference maps into tokens, over the valid pixels only.

    Args:
        differences: `(B, T - 1, C, H, W)` |difference| of each consecutive frame pair.
        valid: `(B, T - 1, 1, H, W)` 0/1 weight of each pixel of each pair.

    Returns:
        `(B, N)` float32: per token, the mean of `differences` over the pairs inside its tubelet and the pixels and
        channels of its patch that are valid; 0 for a token with no valid pixel.
    """
    num_frames = differences.shape[1] + 1
    pairs, per_tubelet = _tubelet_pair_indices(num_frames, tubelet_size)
    index = torch.tensor(pairs, device=differences.device)
    weights = valid.expand_as(differences)[:, index]
    total = patchify((differences * valid)[:, index], per_tubelet, patch_size).sum(dim=(2, 3))  # (B, N)
    count = patchify(weights, per_tubelet, patch_size).sum(dim=(2, 3))
    return torch.where(count > 0, total / count.clamp_min(1), torch.zeros_like(total))


def _frames_in_unit_range(pixel_values: torch.Tensor, image_mean, image_std) -> torch.Tensor:
    return unnormalize(pixel_values.float(), image_mean, image_std)  # (B, T, C, H, W) in [0, 1]


def token_motion_energy(
    pixel_values: torch.Tensor,
    tubelet_size: int,
    patch_size: int,
    image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> torch.Tensor:
    """Frame-difference motion of every token: `(B, T, C, H, W)` normalised frames -> `(B, N)`.

    The frames are un-normalised to [0, 1]; a token's energy is |frame[i+1] - frame[i]| averaged over the frame pairs
    inside its tubelet and over the pixels and channels of its patch (see the module docstring for one-frame tubelets).
    """
    frames = _frames_in_unit_range(pixel_values, image_mean, image_std)
    if frames.shape[1] < 2:
        return patchify(torch.zeros_like(frames), tubelet_size, patch_size).mean(dim=(2, 3))
    differences = (frames[:, 1:] - frames[:, :-1]).abs()
    return token_pair_average(differences, torch.ones_like(differences[:, :, :1]), tubelet_size, patch_size)


def compensated_motion_energy(
    pixel_values: torch.Tensor,
    tubelet_size: int,
    patch_size: int,
    image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> torch.Tensor:
    """Camera-motion-compensated motion of every token: `(B, T, C, H, W)` normalised frames -> `(B, N)`.

    As `token_motion_energy`, but each pair's global translation (`estimate_global_shift`) is undone before
    differencing: |frame[i+1](y, x) - frame[i](y - dy, x - dx)|, over the pixels whose source lies inside the frame.
    """
    frames = _frames_in_unit_range(pixel_values, image_mean, image_std)
    if frames.shape[1] < 2:
        return patchify(torch.zeros_like(frames), tubelet_size, patch_size).mean(dim=(2, 3))
    aligned_previous, valid = shift_frames(frames[:, :-1], estimate_global_shift(frames))
    differences = (frames[:, 1:] - aligned_previous).abs() * valid
    return token_pair_average(differences, valid, tubelet_size, patch_size)


def motion_measures(pixel_values: torch.Tensor, config) -> dict[str, torch.Tensor]:
    """Both measures for a model config (tubelet, patch, normalisation): `{name in MOTION_MEASURES: (B, N)}`."""
    arguments = (pixel_values, config.tubelet_size, config.patch_size, config.image_mean, config.image_std)
    return {"frame_difference": token_motion_energy(*arguments), "compensated": compensated_motion_energy(*arguments)}


__all__ = [
    "MOTION_MEASURES",
    "compensated_motion_energy",
    "estimate_global_shift",
    "motion_measures",
    "phase_correlation_peaks",
    "shift_frames",
    "token_motion_energy",
    "token_pair_average",
]
