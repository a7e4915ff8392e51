"""Does the sampler learn where the motion is? A held-out evaluation of a pretraining model, with error bars.

For every held-out clip (the evaluation transform's centre clip, centre crop) the model runs in eval mode (no sampler
dropout) once per mask type: the adaptive mask drawn from its sampler's p, and, with the same encoder and decoder, the
paper's baselines (random 0.9, tube 0.9, frame 0.875 by default). Per clip it measures:

- of the sampler's p (mask-independent, group `sampler`): `spearman_p_motion` (and `_compensated`), the rank
  correlation of p with each token's motion; `entropy`, entropy of p / log N (1 = uniform); `top5_mass`, the mass on
  the ceil(0.05 N) most probable tokens (ceil(0.05 N) / N for a uniform p, 1 for a p on that many tokens or fewer);
- of each mask: `spearman_p_error`, rank correlation of p with the reconstruction error of the masked tokens (what the
  sampler's REINFORCE loss rewards); `spearman_error_motion` (and `_compensated`), rank correlation of the error with
  motion over the masked tokens (is motion what is hard to reconstruct?); `visible_motion_ratio` (and `_compensated`),
  the visible tokens' mean motion over all tokens' mean motion, i.e. over the expected mean motion of a visible set of
  the same size drawn uniformly at random (1 = motion-blind, above 1 = the visible tokens sit on motion);
  `reconstruction_error`, the mean per-token MSE of the masked tokens in the loss's target space.

Motion is measured twice (`adamae_hf.motion`): by frame difference inside each tubelet, and (`_compensated`) after
removing each frame pair's global translation, so that a panning camera does not count as motion everywhere. Each
measure is summarised by its mean over the clips where it is defined with a percentile bootstrap confidence interval
over clips (seeded). Masks are drawn with noise that depends only on (seed, video), so results do not depend on the
batch size or the device.

Command line (writes `sampler_evaluation.json` and `sampler_evaluation.png` into the output folder and prints the
table)::

    adamae-evaluate-sampler --model outputs/demo --index heldout/index.csv --output_dir outputs/demo/sampler-eval

From Python::

    from adamae_hf.sampler_evaluation import evaluate_sampler
    evaluation = evaluate_sampler(model, pixel_values, seed=0)  # (B, T, C, H, W) clips, or batches of them
    print(evaluation.format_table())
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers.utils import logging

from configuration_adamae import MASK_TYPES

from .data import VideoClipConfig, VideoClipDataset, clip_dataloader
from .diagnostics import clip_statistics
from .errors import UserError, check_model_source, run_cli
from .motion import motion_measures
from .training import derived_seed, quiet_library_output


logger = logging.get_logger(__name__)

DEFAULT_MASK_TYPES = ("adaptive", "random", "tube", "frame")
BASELINE_MASK_RATIOS = {"random": 0.9, "tube": 0.9, "frame": 0.875}  # the paper's baselines
SAMPLER_GROUP = "sampler"  # the row of measures of p alone, the same for every mask
COMPENSATED_SUFFIX = "_compensated"
MOTION_STATISTICS = ("spearman_p_motion", "spearman_error_motion", "visible_motion_ratio")
SAMPLER_MEASURES = ("spearman_p_motion", "spearman_p_motion_compensated", "entropy", "top5_mass")
MASK_MEASURES = (
    "spearman_p_error",
    "spearman_error_motion",
    "spearman_error_motion_compensated",
    "visible_motion_ratio",
    "visible_motion_ratio_compensated",
    "reconstruction_error",
)
MEASURE_DESCRIPTIONS = {
    "spearman_p_motion": "Spearman(p, motion) over all tokens; motion by frame difference",
    "spearman_p_motion_compensated": "Spearman(p, motion) over all tokens; camera-motion-compensated motion",
    "entropy": "entropy of p / log N (1 = uniform, 0 = one token)",
    "top5_mass": "mass of p on the ceil(0.05 N) most probable tokens (ceil(0.05 N) / N when p is uniform)",
    "spearman_p_error": "Spearman(p, reconstruction error) over the masked tokens",
    "spearman_error_motion": "Spearman(reconstruction error, motion) over the masked tokens; frame difference",
    "spearman_error_motion_compensated": "Spearman(reconstruction error, motion) over the masked tokens; compensated",
    "visible_motion_ratio": "mean motion of the visible tokens / mean motion of all tokens (= of a uniformly random "
    "visible set of the same size, in expectation); 1 = motion-blind; frame difference",
    "visible_motion_ratio_compensated": "as visible_motion_ratio, with camera-motion-compensated motion",
    "reconstruction_error": "mean per-token MSE of the masked tokens (the loss's targets)",
}
RESULTS_NAME = "sampler_evaluation.json"
FIGURE_NAME = "sampler_evaluation.png"
_NOISE_STREAM = 11  # domain tag of the mask noise seeds


@dataclass
class MeasureSummary:
    """Mean of a measure over the clips where it is defined, with its bootstrap confidence interval (NaN if none)."""

    mean: float
    ci_low: float
    ci_high: float
    num_clips: int


@dataclass
class SamplerEvaluation:
    """Per-clip values and their summaries.

    Attributes:
        per_clip: `{group: {measure: [value per clip]}}`, NaN where undefined; groups are `"sampler"` (measures of p
            alone) and the mask types; clips in `clip_ids` order.
        summary: `{group: {measure: MeasureSummary}}`, the same keys.
        clip_ids: The video (row of the index) of each clip, or its position when no index was given.
        mask_ratios: The ratio each mask type ran at; `visible_tokens`: how many tokens it left visible.
        num_tokens: N, tokens per clip. `seed`, `num_bootstrap`, `confidence`: as given.
    """

    per_clip: dict[str, dict[str, list[float]]]
    summary: dict[str, dict[str, MeasureSummary]]
    clip_ids: list[int]
    mask_ratios: dict[str, float]
    visible_tokens: dict[str, int]
    num_tokens: int
    seed: int
    num_bootstrap: int
    confidence: float
    metadata: dict = field(default_factory=dict)

    @property
    def num_clips(self) -> int:
        return len(self.clip_ids)

    def to_dict(self) -> dict:
        """A JSON-ready dict (NaN as null)."""
        return _json_ready(
            {
                **self.metadata,
                "seed": self.seed,
                "num_clips": self.num_clips,
                "num_tokens": self.num_tokens,
                "num_bootstrap": self.num_bootstrap,
                "confidence": self.confidence,
                "mask_ratios": self.mask_ratios,
                "visible_tokens": self.visible_tokens,
                "measures": {name: MEASURE_DESCRIPTIONS[name] for name in SAMPLER_MEASURES + MASK_MEASURES},
                "summary": {
                    group: {name: vars(summary) for name, summary in measures.items()}
                    for group, measures in self.summary.items()
                },
                "clip_ids": self.clip_ids,
                "per_clip": self.per_clip,
            }
        )

    def format_table(self) -> str:
        """The summary as a text table: one row per measure, one column per group, `mean [low, high]`."""
        groups = list(self.summary)
        header = ["measure"] + [
            group if group == SAMPLER_GROUP else f"{group} {self.mask_ratios[group]:g}" for group in groups
        ]
        rows = [header]
        for name in SAMPLER_MEASURES + MASK_MEASURES:
            cells = [_format_summary(self.summary[group].get(name)) for group in groups]
            if any(cells):
                rows.append([name] + [cell or "-" for cell in cells])
        widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
        lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
        level = f"{self.confidence:.0%}"
        footer = f"mean [{level} bootstrap interval] over {self.num_clips} clips; N = {self.num_tokens} tokens"
        return "\n".join(lines + [footer])


def _format_summary(summary: MeasureSummary | None) -> str:
    if summary is None:
        return ""
    if math.isnan(summary.mean):
        return "undefined"
    return f"{summary.mean:.3f} [{summary.ci_low:.3f}, {summary.ci_high:.3f}]"


def _json_ready(value):
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Mapping):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return value


# ---------------------------------------------------------------------------------------------------------------------
# Statistics


def bootstrap_interval(
    values: Sequence[float], num_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
) -> MeasureSummary:
    """Mean of the defined (non-NaN) values and its percentile bootstrap interval.

    The defined values are resampled with replacement `num_bootstrap` times (`numpy.random.default_rng(seed)`,
    `integers(0, n, size=(num_bootstrap, n))`); the interval is the `(1 - confidence) / 2` and `(1 + confidence) / 2`
    quantiles (numpy's default linear interpolation) of the resampled means.
    """
    values = np.asarray(values, dtype=np.float64)
    defined = values[~np.isnan(values)]
    if defined.size == 0:
        return MeasureSummary(math.nan, math.nan, math.nan, 0)
    indices = np.random.default_rng(seed).integers(0, defined.size, size=(num_bootstrap, defined.size))
    low, high = np.quantile(defined[indices].mean(axis=1), [(1 - confidence) / 2, (1 + confidence) / 2])
    return MeasureSummary(float(defined.mean()), float(low), float(high), int(defined.size))


def clip_noise(seed: int, clip_id: int, num_tokens: int) -> torch.Tensor:
    """Uniform mask noise `(num_tokens,)` for one clip, a function of (seed, clip) only, drawn on the CPU."""
    generator = torch.Generator().manual_seed(derived_seed(seed, _NOISE_STREAM, clip_id))
    return torch.rand(num_tokens, generator=generator)


def _with_compensated(model, pixel_values, outputs, motions) -> dict[str, torch.Tensor]:
    """`clip_statistics` under the frame-difference motion, plus its motion statistics under the compensated one."""
    statistics = clip_statistics(model, pixel_values, outputs, motions["frame_difference"])
    compensated = clip_statistics(model, pixel_values, outputs, motions["compensated"])
    for name in MOTION_STATISTICS:
        if name in compensated:
            statistics[name + COMPENSATED_SUFFIX] = compensated[name]
    return statistics


@torch.no_grad()
def batch_statistics(
    model, pixel_values: torch.Tensor, noise: torch.Tensor, mask_ratios: Mapping[str, float]
) -> dict[str, dict[str, torch.Tensor]]:
    """Per-clip measures of one batch: `{group: {measure: (B,)}}` for the `"sampler"` group (when the model has a
    sampler) and every mask type of `mask_ratios`. The model should be in eval mode; `noise` is `(B, N)`."""
    batch_size = pixel_values.shape[0]
    sampler_logits = None
    if model.sampler is not None:
        sampler_logits = model.sampler(model.videomae.embeddings.embed_patches(model.patchify(pixel_values)))
    motions = motion_measures(pixel_values, model.config)
    groups = {}
    for mask_type, ratio in mask_ratios.items():
        logits = sampler_logits if mask_type == "adaptive" else None
        mask = model.generate_mask(batch_size, logits, noise, mask_type=mask_type, mask_ratio=ratio)
        outputs = model(pixel_values, bool_masked_pos=mask, return_dict=True)
        statistics = _with_compensated(model, pixel_values, outputs, motions)
        if sampler_logits is not None and SAMPLER_GROUP not in groups:
            groups[SAMPLER_GROUP] = {name: statistics[name] for name in SAMPLER_MEASURES}
        groups[mask_type] = {name: statistics[name] for name in MASK_MEASURES if name in statistics}
    return groups


def resolve_mask_ratios(model, mask_types: Sequence[str], overrides: Mapping[str, float] | None = None) -> dict:
    """The ratio of each mask type: `overrides`, else the model's own for adaptive and the paper's for the baselines.
    A model without a sampler has no adaptive row (a warning says so); each ratio is checked against the model."""
    unknown = [mask_type for mask_type in mask_types if mask_type not in MASK_TYPES]
    if unknown or not mask_types:
        raise ValueError(f"mask_types must be a non-empty subset of {MASK_TYPES}, got {list(mask_types)}.")
    if "adaptive" in mask_types and model.sampler is None:
        logger.warning(f"No adaptive row: the model has no sampler (trained with mask_type={model.config.mask_type}).")
        mask_types = [mask_type for mask_type in mask_types if mask_type != "adaptive"]
        if not mask_types:
            raise ValueError("Nothing to evaluate: only adaptive masking was asked for, and the model has no sampler.")
    defaults = {"adaptive": model.config.mask_ratio, **BASELINE_MASK_RATIOS}
    chosen = {**defaults, **(overrides or {})}
    ratios = {mask_type: float(chosen[mask_type]) for mask_type in dict.fromkeys(mask_types)}
    for mask_type, ratio in ratios.items():
        model.config.check_mask(mask_type, ratio)
    return ratios


def _batches(clips) -> Iterable[tuple[torch.Tensor, list[int] | None]]:
    """`(pixel_values, video ids or None)` from a `(B, T, C, H, W)` tensor, an iterable of them, or of DataLoader
    batches (dicts with `pixel_values` and `video_index`)."""
    for batch in [clips] if isinstance(clips, torch.Tensor) else clips:
        if isinstance(batch, Mapping):
            video_index = batch.get("video_index")
            yield batch["pixel_values"], None if video_index is None else [int(i) for i in video_index]
        else:
            yield batch, None


@torch.no_grad()
def evaluate_sampler(
    model,
    clips,
    mask_types: Sequence[str] = DEFAULT_MASK_TYPES,
    mask_ratios: Mapping[str, float] | None = None,
    seed: int = 0,
    num_bootstrap: int = 1000,
    confidence: float = 0.95,
) -> SamplerEvaluation:
    """Evaluate an `AdaMaeForPreTraining` (in eval mode for the call; its mode is restored) on held-out clips.

    Args:
        model: The model; its sampler gives the `"sampler"` group and the adaptive mask (a baseline model has neither).
        clips: Normalised `(B, T, C, H, W)` clips (the model's `image_mean` / `image_std`): one tensor, an iterable of
            them, or DataLoader batches of `VideoClipDataset` (dicts with `pixel_values` and `video_index`; a video
            met twice, e.g. as the replacement of an undecodable one, counts once).
        mask_types: Any of `MASK_TYPES`; adaptive is skipped (with a warning) for a model without a sampler.
        mask_ratios: Per mask type; default: the model's ratio for adaptive, `BASELINE_MASK_RATIOS` for the others.
        seed: Seeds the mask noise of each clip (with the clip's video index, or its position among the clips) and
            the bootstrap.
        num_bootstrap, confidence: Bootstrap resamples and the interval's level (`bootstrap_interval`).
    """
    if not isinstance(num_bootstrap, int) or num_bootstrap < 1:
        raise ValueError(f"num_bootstrap must be a positive integer, got {num_bootstrap!r}.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    ratios = resolve_mask_ratios(model, mask_types, mask_ratios)
    parameter = next(model.parameters())
    collected: dict[str, dict[str, list[torch.Tensor]]] = {}
    clip_ids: list[int] = []
    was_training = model.training
    model.eval()
    try:
        for pixel_values, video_ids in _batches(clips):
            ids = video_ids if video_ids is not None else list(range(len(clip_ids), len(clip_ids) + len(pixel_values)))
            seen = set(clip_ids)
            keep = [row for row, clip_id in enumerate(ids) if clip_id not in seen and clip_id not in ids[:row]]
            if not keep:
                continue
            ids = [ids[row] for row in keep]
            noise = torch.stack([clip_noise(seed, clip_id, model.config.num_patches) for clip_id in ids])
            groups = batch_statistics(
                model, pixel_values[keep].to(parameter.device, parameter.dtype), noise.to(parameter.device), ratios
            )
            for group, measures in groups.items():
                for name, values in measures.items():
                    collected.setdefault(group, {}).setdefault(name, []).append(values.double().cpu())
            clip_ids.extend(ids)
    finally:
        model.train(was_training)
    if not clip_ids:
        raise ValueError("No clips to evaluate: the clips given are empty.")
    per_clip = {
        group: {name: torch.cat(parts).tolist() for name, parts in measures.items()}
        for group, measures in collected.items()
    }
    summary = {
        group: {name: bootstrap_interval(values, num_bootstrap, confidence, seed) for name, values in measures.items()}
        for group, measures in per_clip.items()
    }
    visible = {mask_type: model.config.get_num_visible_tokens(mask_type, ratio) for mask_type, ratio in ratios.items()}
    return SamplerEvaluation(
        per_clip, summary, clip_ids, ratios, visible, model.config.num_patches, seed, num_bootstrap, confidence
    )


# ---------------------------------------------------------------------------------------------------------------------
# Held-out videos


def held_out_clip_config(model_source: str, model_config) -> VideoClipConfig:
    """The clip geometry a model was trained with: its `clip_config.json` (folder or Hub repo) when it has one, else
    the model config's frames, frame size and normalisation (sampling rate: `VideoClipConfig`'s default). One centre
    clip, one centre crop per video."""
    from .finetune_arguments import saved_clip_geometry  # the Trainer stack only when loading from files

    height, width = model_config.frame_size
    geometry = saved_clip_geometry(model_source) or {
        "num_frames": model_config.num_frames,
        "crop_size": max(height, width),
        "image_mean": list(model_config.image_mean),
        "image_std": list(model_config.image_std),
    }
    clip_config = VideoClipConfig(**geometry)
    if clip_config.num_frames != model_config.num_frames or clip_config.crop_size != max(height, width):
        raise ValueError(
            f"The model's clip_config.json asks for {clip_config.num_frames} frames of {clip_config.crop_size}^2, "
            f"but the model takes {model_config.num_frames} frames of {height}x{width}."
        )
    return clip_config


def _centre_crop(batch: dict, frame_size: tuple[int, int]) -> dict:
    """Cut a non-square model frame from the centre of the square eval crop (as `adamae_hf.visualize.load_clip`)."""
    from .mask_figure import centre_crop

    return {**batch, "pixel_values": centre_crop(batch["pixel_values"], frame_size)}


def resolve_device(device: str) -> torch.device:
    """`"auto"`: CUDA when available, else the CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device: expected a device this machine has, got {device!r} but CUDA is not available.")
    return torch.device(device)


def evaluate_sampler_on_index(
    model_source: str,
    index: str,
    data_root: str | None = None,
    max_videos: int | None = None,
    batch_size: int = 8,
    num_workers: int = 0,
    device: str = "auto",
    **evaluate_kwargs,
) -> SamplerEvaluation:
    """`evaluate_sampler` of a pretraining folder or Hub id on the videos of an index (CSV / JSON-lines file or
    `<class>/<video>` folder; the first `max_videos`), one evaluation clip each; `evaluate_kwargs` go to
    `evaluate_sampler`. The result's `metadata` names the model, the index, the clip geometry and each clip's video."""
    from .finetune_data import load_video_index
    from .mask_figure import load_pretraining_model

    check_model_source(model_source, "--model")
    if max_videos is not None and max_videos < 1:
        raise UserError(f"--max_videos: expected a positive number of videos, got {max_videos}.")
    if batch_size < 1:
        raise UserError(f"--batch_size: expected a positive number of clips, got {batch_size}.")
    model = load_pretraining_model(model_source, resolve_device(device))
    clip_config = held_out_clip_config(model_source, model.config)
    video_index = load_video_index(index, data_root, require_labels=False)
    if max_videos is not None:
        video_index = video_index.select(range(min(max_videos, len(video_index))))
    dataset = VideoClipDataset(video_index, clip_config, train=False)
    loader = clip_dataloader(dataset, clips_per_batch=batch_size, num_workers=num_workers, shuffle=False)
    batches = (_centre_crop(batch, model.config.frame_size) for batch in loader)
    evaluation = evaluate_sampler(model, batches, **evaluate_kwargs)
    evaluation.metadata = {
        "model": str(model_source),
        "index": str(index),
        "data_root": data_root,
        "device": str(next(model.parameters()).device),
        "clip_geometry": {
            name: getattr(clip_config, name)
            for name in ("num_frames", "sampling_rate", "sampling_mode", "crop_size", "short_side_size")
        },
        "motion_measures": {
            "frame_difference": "mean |frame[t+1] - frame[t]| over the frame pairs inside a token's tubelet and the "
            "pixels and channels of its patch, frames in [0, 1]",
            "compensated": "the same after shifting frame t by the whole-pixel global translation of the pair "
            "(phase-correlation candidates, the one with the smallest median residual), over the pixels with a source",
        },
        "videos": [dataset.paths[clip_id] for clip_id in evaluation.clip_ids],
        "skipped_videos": dataset.skipped.num_videos,
    }
    return evaluation


def write_evaluation(evaluation: SamplerEvaluation, output_dir: str | os.PathLike) -> list[Path]:
    """Write `sampler_evaluation.json` and `sampler_evaluation.png` into `output_dir`; returns both paths."""
    from .sampler_evaluation_figure import save_evaluation_figure

    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    results = output_dir / RESULTS_NAME
    results.write_text(json.dumps(evaluation.to_dict(), indent=1) + "\n")
    return [results, save_evaluation_figure(evaluation, output_dir / FIGURE_NAME)]


# ---------------------------------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adamae-evaluate-sampler",
        description=(
            "Does the sampler learn where the motion is? Evaluates an AdaMAE pretraining model on held-out videos: "
            "per clip, rank correlations of the sampler's p with motion and reconstruction error, the visible "
            "tokens' motion, entropy and top-5% mass of p, for the adaptive mask and the random / tube / frame "
            "baselines, with bootstrap 95% intervals over clips. Writes sampler_evaluation.json and "
            "sampler_evaluation.png into --output_dir and prints the table."
        ),
    )
    parser.add_argument("--model", required=True, help="AdaMAE pretraining folder or Hub id.")
    parser.add_argument(
        "--index",
        required=True,
        help="Held-out videos: a CSV / JSON-lines index (path[,label]) or a <class>/<video> folder.",
    )
    parser.add_argument("--output_dir", required=True, help="Folder for sampler_evaluation.json and .png.")
    parser.add_argument("--data_root", default=None, help="Folder the index's relative paths start from.")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the masks and of the bootstrap.")
    parser.add_argument("--max_videos", type=int, default=None, help="Evaluate the first N videos of the index only.")
    parser.add_argument("--batch_size", type=int, default=8, help="Clips per forward pass.")
    parser.add_argument("--num_bootstrap", type=int, default=1000, help="Bootstrap resamples of the clips.")
    parser.add_argument(
        "--mask_types",
        nargs="+",
        choices=DEFAULT_MASK_TYPES,
        default=list(DEFAULT_MASK_TYPES),
        help="Masks to evaluate (adaptive is skipped for a model without a sampler).",
    )
    for mask_type in DEFAULT_MASK_TYPES:
        default = BASELINE_MASK_RATIOS.get(mask_type)
        shown = default if default is not None else "the model's own"
        parser.add_argument(
            f"--{mask_type}_mask_ratio",
            type=float,
            default=default,
            help=f"Mask ratio of {mask_type} masking (default: {shown}).",
        )
    parser.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N.")
    parser.add_argument("--num_workers", type=int, default=0, help="DataLoader workers decoding the videos.")
    return parser


def run(argv: list[str]) -> SamplerEvaluation:
    """The command line's work: evaluate, write the files, print the table."""
    args = build_parser().parse_args(argv)
    quiet_library_output()  # no weight-loading bar
    ratios = {mask_type: getattr(args, f"{mask_type}_mask_ratio") for mask_type in DEFAULT_MASK_TYPES}
    evaluation = evaluate_sampler_on_index(
        args.model,
        args.index,
        data_root=args.data_root,
        max_videos=args.max_videos,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        device=args.device,
        mask_types=args.mask_types,
        mask_ratios={name: ratio for name, ratio in ratios.items() if ratio is not None},
        seed=args.seed,
        num_bootstrap=args.num_bootstrap,
    )
    written = write_evaluation(evaluation, args.output_dir)
    print(evaluation.format_table())
    for path in written:
        print(path)
    return evaluation


def main(argv: list[str] | None = None) -> int:
    """`adamae-evaluate-sampler`: 0 on success, 1 with one `error: ...` line for a user mistake."""
    return run_cli(run, argv)


__all__ = [
    "BASELINE_MASK_RATIOS",
    "DEFAULT_MASK_TYPES",
    "MASK_MEASURES",
    "MEASURE_DESCRIPTIONS",
    "MeasureSummary",
    "SAMPLER_MEASURES",
    "SamplerEvaluation",
    "batch_statistics",
    "bootstrap_interval",
    "build_parser",
    "clip_noise",
    "evaluate_sampler",
    "evaluate_sampler_on_index",
    "held_out_clip_config",
    "main",
    "resolve_mask_ratios",
    "write_evaluation",
]


if __name__ == "__main__":
    sys.exit(main())
