"""Sampler diagnostics: is the adaptive sampler learning where the motion is?

Per clip (`clip_statistics`), for one forward pass; the training loop logs their means over clips, either for the
batch at hand (`sampler_diagnostics`) or, with the model in eval mode, over several batches and all processes
(`averaged_sampler_diagnostics`), so the logged curve does not swing with one micro-batch and the sampler's dropout:

- `sampler/entropy`: entropy of p divided by log N: 1 for a uniform p, 0 for a p on a single token;
- `sampler/top5_mass`: probability mass on the ceil(0.05 N) most probable tokens: ceil(0.05 N) / N for a uniform p
  (0.05 when 20 divides N), 1 for a p on at most that many tokens;
- `sampler/spearman_error`: Spearman correlation, per video, between p and the per-token reconstruction error over the
  masked tokens (the only ones with an error); the REINFORCE loss pushes it up;
- `sampler/spearman_motion`: Spearman correlation, per video, between p and the per-token motion energy, all tokens;
- `mask/visible_motion_ratio`: mean motion energy of the visible tokens over that of all tokens, per video (1 for a
  motion-blind mask; above 1 when the visible tokens sit on motion). Reported for every mask type.

Motion energy of a token is the mean absolute difference between consecutive frames inside its tubelet, over the
pixels and channels of its patch, on un-normalised frames in [0, 1] (`adamae_hf.motion.token_motion_energy`). Spearman
correlation is the Pearson correlation of ranks, ties given their average rank. Per-video values are averaged over the
videos where they are defined (a video with no motion has no motion correlation). The `sampler/` values exist only for
`mask_type="adaptive"`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from modeling_adamae import split_visible_and_masked

from .motion import token_motion_energy


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


def masked_token_errors(model, pixel_values: torch.Tensor, logits: torch.Tensor, mask: torch.Tensor):
    """Per-token reconstruction error of the masked tokens, as the loss computes it.

    Returns `(masked_indices, errors)`, both `(B, M)`: the masked token indices in ascending order (the order of
    `logits`) and the mean squared error of each against its target (`model.compute_targets`, with `norm_pix_loss`).
    """
    _, masked_indices = split_visible_and_masked(mask, mask.shape[1] - logits.shape[1])  # (B, M), ascending
    targets = model.compute_targets(pixel_values, masked_indices)  # (B, M, patch_dim) float32
    return masked_indices, (logits.float() - targets).pow(2).mean(dim=-1)


def visible_motion_ratio(mask: torch.Tensor, motion: torch.Tensor) -> torch.Tensor:
    """Mean motion of the visible tokens over the mean motion of all tokens, per clip: `(B, N)` -> `(B,)` float64.

    The denominator is the expected mean motion of a visible set drawn uniformly at random (any size), so a
    motion-blind mask scores 1 on average and a mask whose visible tokens sit on motion scores above 1. NaN for a clip
    without motion.
    """
    motion = motion.double()
    visible = (~mask.bool()).double()
    visible_motion = (motion * visible).sum(dim=-1) / visible.sum(dim=-1)
    all_motion = motion.mean(dim=-1)
    ratio = visible_motion / all_motion.clamp_min(1e-300)
    return torch.where(all_motion > 0, ratio, torch.full_like(all_motion, math.nan))


@torch.no_grad()
def clip_statistics(model, pixel_values: torch.Tensor, outputs, motion: torch.Tensor) -> dict[str, torch.Tensor]:
    """Every per-clip statistic of one forward pass, `(B,)` float64 each, NaN where undefined.

    Args:
        model: the (unwrapped) `AdaMaeForPreTraining` that produced `outputs`.
        pixel_values: its input, `(B, T, C, H, W)`, normalised with the model's `config.image_mean` / `image_std`.
        outputs: its `AdaMaeForPreTrainingOutput` (`logits`, `mask`, `token_probs`).
        motion: `(B, N)` motion of every token (`adamae_hf.motion`).

    Returns:
        For every mask: `visible_motion_ratio`, `reconstruction_error` (mean per-token MSE of the masked tokens, in
        the loss's target space), `spearman_error_motion` (masked tokens). With `outputs.token_probs`, also `entropy`,
        `top5_mass`, `spearman_p_error` (masked tokens) and `spearman_p_motion` (all tokens).
    """
    mask = outputs.mask.bool()
    motion = motion.to(mask.device)
    masked_indices, errors = masked_token_errors(model, pixel_values, outputs.logits.detach(), mask)
    statistics = {
        "visible_motion_ratio": visible_motion_ratio(mask, motion),
        "reconstruction_error": errors.double().mean(dim=-1),
        "spearman_error_motion": spearman_correlation(errors, motion.gather(1, masked_indices)),
    }
    if outputs.token_probs is not None:
        probs = outputs.token_probs.detach().float()  # (B, N)
        statistics.update(
            {
                "entropy": normalized_entropy(probs),
                "top5_mass": top_mass(probs, 0.05),
                "spearman_p_error": spearman_correlation(probs.gather(1, masked_indices), errors),
                "spearman_p_motion": spearman_correlation(probs, motion),
            }
        )
    return statistics


# The logged keys and the `clip_statistics` they average.
LOGGED_STATISTICS = {
    "mask/visible_motion_ratio": "visible_motion_ratio",
    "sampler/entropy": "entropy",
    "sampler/top5_mass": "top5_mass",
    "sampler/spearman_error": "spearman_p_error",
    "sampler/spearman_motion": "spearman_p_motion",
}


def _mean_defined(values: torch.Tensor) -> float:
    """Mean over the entries that are not NaN; NaN when none is defined."""
    defined = values[~values.isnan()]
    return float(defined.mean()) if defined.numel() else math.nan


def _logged_motion(model, pixel_values: torch.Tensor) -> torch.Tensor:
    config = model.config
    return token_motion_energy(
        pixel_values, config.tubelet_size, config.patch_size, config.image_mean, config.image_std
    )  # (B, N)


@torch.no_grad()
def sampler_diagnostics(model, pixel_values: torch.Tensor, outputs) -> dict[str, float]:
    """The diagnostics of the module docstring for one batch, as they come (the model's mode is the caller's).

    Args:
        model: the (unwrapped) `AdaMaeForPreTraining` that produced `outputs`.
        pixel_values: its input, `(B, T, C, H, W)`, normalised with the model's `config.image_mean` / `image_std`.
        outputs: its `AdaMaeForPreTrainingOutput` (`logits`, `mask`, `token_probs`).

    Returns:
        Plain floats (NaN where undefined); the `sampler/` keys only when `outputs.token_probs` is not None.
    """
    statistics = clip_statistics(model, pixel_values, outputs, _logged_motion(model, pixel_values))
    return {key: _mean_defined(statistics[name]) for key, name in LOGGED_STATISTICS.items() if name in statistics}


@torch.no_grad()
def averaged_sampler_diagnostics(
    model, batches: Iterable[torch.Tensor], accelerator=None, seed: int = 0
) -> dict[str, float]:
    """The diagnostics of the module docstring, averaged over every clip of several batches and of all processes, with
    the model in eval mode (no sampler dropout, no drop path) for the duration of the call.

    Args:
        model: an `AdaMaeForPreTraining`, or the model `accelerator.prepare` returned (DDP, FSDP, compiled: the forward
            goes through it, under no_grad, with its mixed precision; the config and targets come from the unwrapped
            model). Its train/eval mode is restored afterwards. A `torch.compile`d model would compile an eval graph:
            pass `accelerator.unwrap_model(model)` instead where the wrapper is not needed (DDP, one process).
        batches: `pixel_values` tensors `(B, T, C, H, W)`, normalised with the model's `image_mean` / `image_std`,
            on the model's device; every process passes its own (the counts may differ).
        accelerator: an `accelerate.Accelerator` whose processes all call this together (a collective reduce), or
            None for this process alone.
        seed: seed of the mask noise (the global random state is left untouched): the same seed and clips give the
            same values.

    Returns:
        The keys of `sampler_diagnostics`: each a mean over all clips where it is defined (NaN where none is); the
        `sampler/` keys only for a model with a sampler (`config.mask_type == "adaptive"`).
    """
    network = model
    model = accelerator.unwrap_model(network) if accelerator is not None else network
    keys = [key for key in LOGGED_STATISTICS if key.startswith("mask/") or model.config.mask_type == "adaptive"]
    totals = torch.zeros(len(keys), 2, dtype=torch.float64, device=model.device)  # (sum, count) of defined values
    generator = torch.Generator(device=model.device).manual_seed(seed)
    was_training = network.training
    network.eval()
    try:
        for pixel_values in batches:
            noise = torch.rand(
                pixel_values.shape[0], model.config.num_patches, generator=generator, device=model.device
            )
            outputs = network(pixel_values, noise=noise, return_dict=True)
            statistics = clip_statistics(model, pixel_values, outputs, _logged_motion(model, pixel_values))
            for row, key in enumerate(keys):
                values = statistics[LOGGED_STATISTICS[key]]
                defined = values[~values.isnan()]
                totals[row, 0] += defined.sum()
                totals[row, 1] += defined.numel()
    finally:
        network.train(was_training)
    if accelerator is not None and accelerator.num_processes > 1:
        totals = accelerator.reduce(totals, reduction="sum")
    return {key: float(total / count) if count > 0 else math.nan for key, (total, count) in zip(keys, totals.tolist())}


__all__ = [
    "LOGGED_STATISTICS",
    "average_ranks",
    "averaged_sampler_diagnostics",
    "clip_statistics",
    "masked_token_errors",
    "normalized_entropy",
    "pearson_correlation",
    "sampler_diagnostics",
    "spearman_correlation",
    "token_motion_energy",
    "top_mass",
    "visible_motion_ratio",
]
