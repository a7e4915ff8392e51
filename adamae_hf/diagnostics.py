"""Sampler diagnostics: is the adaptive sampler learning where the motion is?

Computed from one batch at logging steps only (they read values back to the host, which a training step never does):

- `sampler/entropy`: entropy of p divided by log N: 1 for a uniform p, 0 for a p on a single token;
- `sampler/top5_mass`: probability mass on the top 5% of tokens (0.05 for a uniform p);
- `sampler/spearman_error`: Spearman correlation, per video, between p and the per-token reconstruction error over the
  masked tokens (the only ones with an error); the REINFORCE loss pushes it up;
- `sampler/spearman_motion`: Spearman correlation, per video, between p and the per-token motion energy over all tokens;
- `mask/visible_motion_ratio`: mean motion energy of the visible tokens over that of all tokens, per video (1 for a
  motion-blind mask; above 1 when the visible tokens sit on motion). Reported for every mask type.

Motion energy of a token is the mean absolute difference between consecutive frames inside its tubelet, over the
pixels and channels of its patch, on un-normalised frames in [0, 1]. Spearman correlation is the Pearson correlation
of ranks, ties given their average rank. Per-video values are averaged over the videos where they are defined (a video
with no motion has no motion correlation). The `sampler/` values exist only for `mask_type="adaptive"`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from transformers.utils.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from modeling_adamae import patchify, split_visible_and_masked

from .data import unnormalize


def average_ranks(values: torch.Tensor) -> torch.Tensor:
    """Ranks along the last dimension, 0-based, ties sharing the mean of their positions: `(B, L)` -> `(B, L)` float64.

    Example: `[[10., 30., 20., 20.]]` -> `[[0., 3., 1.5, 1.5]]`.
    """
    batch_size, length = values.shape
    sorted_values, order = values.sort(dim=-1, stable=True)
    positions = torch.arange(length, device=values.device).expand(batch_size, length)
    starts_group = torch.ones_like(sorted_values, dtype=torch.bool)
    starts_group[:, 1:] = sorted_values[:, 1:] != sorted_values[:, :-1]
    group = starts_group.long().cumsum(dim=-1) - 1  # (B, L): tie-group id of each sorted position
    first = torch.full_like(positions, length).scatter_reduce(1, group, positions, reduce="amin")
    last = torch.zeros_like(positions).scatter_reduce(1, group, positions, reduce="amax")
    group_rank = (first + last).double() / 2  # (B, L), indexed by group id
    sorted_ranks = group_rank.gather(1, group)
    return torch.empty_like(sorted_ranks).scatter_(1, order, sorted_ranks)


def pearson_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row Pearson correlation of `(B, L)` tensors -> `(B,)` float64; NaN where a row is constant."""
    x = x.double() - x.double().mean(dim=-1, keepdim=True)
    y = y.double() - y.double().mean(dim=-1, keepdim=True)
    denominator = (x.pow(2).sum(dim=-1) * y.pow(2).sum(dim=-1)).sqrt()
    covariance = (x * y).sum(dim=-1)
    correlation = covariance / denominator.clamp_min(1e-300)
    return torch.where(denominator > 0, correlation, torch.full_like(covariance, math.nan))


def spearman_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-row Spearman correlation (Pearson correlation of average ranks) of `(B, L)` tensors -> `(B,)` float64."""
    if x.shape != y.shape or x.ndim != 2:
        raise ValueError(
            f"x and y must be (batch, length) tensors of the same shape, got {tuple(x.shape)} and {tuple(y.shape)}."
        )
    return pearson_correlation(average_ranks(x), average_ranks(y))


def normalized_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Entropy of each row of `(B, N)` probabilities divided by log N -> `(B,)`: 1 uniform, 0 one-hot."""
    probs = probs.double()
    entropy = -torch.special.xlogy(probs, probs).sum(dim=-1)
    return entropy / math.log(probs.shape[-1])


def top_mass(probs: torch.Tensor, fraction: float = 0.05) -> torch.Tensor:
    """Probability mass on the `ceil(fraction * N)` most probable tokens of each row -> `(B,)`."""
    count = max(1, math.ceil(fraction * probs.shape[-1]))
    return probs.double().topk(count, dim=-1).values.sum(dim=-1)


def token_motion_energy(
    pixel_values: torch.Tensor,
    tubelet_size: int,
    patch_size: int,
    image_mean: Sequence[float] = IMAGENET_DEFAULT_MEAN,
    image_std: Sequence[float] = IMAGENET_DEFAULT_STD,
) -> torch.Tensor:
    """Motion energy of every token: `(B, T, C, H, W)` normalised frames -> `(B, N)`, tokens in the model's order
    (time-major, then row, column).

    The frames are un-normalised to [0, 1]; a token's energy is |frame[i+1] - frame[i]| averaged over the frame pairs
    inside its tubelet and over the pixels and channels of its patch. With a tubelet of one frame, each frame is paired
    with the next one (the last with the one before).
    """
    frames = unnormalize(pixel_values.float(), image_mean, image_std)  # (B, T, C, H, W) in [0, 1]
    if tubelet_size > 1:
        patches = patchify(frames, tubelet_size, patch_size)  # (B, N, t*p*p, C), pixels ordered (t, y, x)
        patches = patches.reshape(*patches.shape[:2], tubelet_size, -1, patches.shape[-1])  # (B, N, t, p*p, C)
        return (patches[:, :, 1:] - patches[:, :, :-1]).abs().mean(dim=(2, 3, 4))
    # A tubelet of one frame: pair each frame with the next one (the last with the one before).
    differences = (frames[:, 1:] - frames[:, :-1]).abs() if frames.shape[1] > 1 else torch.zeros_like(frames)
    differences = torch.cat([differences, differences[:, -1:]], dim=1)[:, : frames.shape[1]]  # (B, T, C, H, W)
    return patchify(differences, 1, patch_size).mean(dim=(2, 3))


def masked_token_errors(model, pixel_values: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor):
    """Per-token reconstruction error of the masked tokens, as the loss computes it.

    Returns `(masked_indices, errors)`, both `(B, M)`: the masked token indices in ascending order (the order of
    `logits`) and the mean squared error of each against its target (`model.compute_targets`, with `norm_pix_loss`).
    """
    _, masked_indices = split_visible_and_masked(mask, mask.shape[1] - logits.shape[1])  # (B, M), ascending
    targets = model.compute_targets(pixel_values, masked_indices)  # (B, M, patch_dim) float32
    return masked_indices, (logits.float() - targets).pow(2).mean(dim=-1)


def _mean_defined(values: torch.Tensor) -> float:
    """Mean over the entries that are not NaN; NaN when none is defined."""
    defined = values[~values.isnan()]
    return float(defined.mean()) if defined.numel() else math.nan


@torch.no_grad()
def sampler_diagnostics(model, pixel_values: torch.Tensor, outputs) -> dict[str, float]:
    """The diagnostics of the module docstring for one batch.

    Args:
        model: the (unwrapped) `AdaMaeForPreTraining` that produced `outputs`.
        pixel_values: its input, `(B, T, C, H, W)`, normalised with the model's `config.image_mean` / `image_std`.
        outputs: its `AdaMaeForPreTrainingOutput` (`logits`, `mask`, `token_probs`).

    Returns:
        Plain floats (NaN where undefined); the `sampler/` keys only when `outputs.token_probs` is not None.
    """
    config = model.config
    mask = outputs.mask.bool()
    motion = token_motion_energy(
        pixel_values, config.tubelet_size, config.patch_size, config.image_mean, config.image_std
    )  # (B, N)
    visible = (~mask).double()
    visible_motion = (motion.double() * visible).sum(dim=-1) / visible.sum(dim=-1)
    all_motion = motion.double().mean(dim=-1)
    ratio = visible_motion / all_motion.clamp_min(1e-300)
    ratio = torch.where(all_motion > 0, ratio, torch.full_like(all_motion, math.nan))  # no motion: undefined
    diagnostics = {"mask/visible_motion_ratio": _mean_defined(ratio)}
    if outputs.token_probs is None:
        return diagnostics

    probs = outputs.token_probs.detach().float()  # (B, N)
    masked_indices, errors = masked_token_errors(model, pixel_values, outputs.logits.detach(), mask)
    diagnostics.update(
        {
            "sampler/entropy": float(normalized_entropy(probs).mean()),
            "sampler/top5_mass": float(top_mass(probs, 0.05).mean()),
            "sampler/spearman_error": _mean_defined(spearman_correlation(probs.gather(1, masked_indices), errors)),
            "sampler/spearman_motion": _mean_defined(spearman_correlation(probs, motion)),
        }
    )
    return diagnostics


__all__ = [
    "average_ranks",
    "masked_token_errors",
    "normalized_entropy",
    "pearson_correlation",
    "sampler_diagnostics",
    "spearman_correlation",
    "token_motion_energy",
    "top_mass",
]
