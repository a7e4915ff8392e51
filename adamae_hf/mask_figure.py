"""The AdaMAE picture: what the model sees, predicts and samples, per video and per frame.

Five panels side by side for every frame of a clip, as in the method's README:

1. the input frames (un-normalised);
2. the reconstruction: visible patches from the input, masked ones from the decoder's prediction (with
   `norm_pix_loss` the prediction is un-normalised with each patch's own mean and std from the input, as VideoMAE's
   visualiser does), clipped to [0, 1];
3. the per-patch error: MSE between reconstruction and input for each tubelet patch, on a fixed colour scale;
4. the sampler's categorical distribution p over the tokens, shown per time slice (tubelet), divided by its maximum;
5. the sampled mask: visible patches shown, masked ones grey.

A tubelet spans `tubelet_size` frames, so both of its frames show the same mask, p and error. `compare` renders the
paper's comparison figure: the same clip masked by adaptive, random patch, tube and frame masking at one ratio, one row
per mask type. This module loads the model and the clip and runs the model (`reconstruct`); `adamae_hf.figure_rendering`
draws the pixels; `adamae_hf.visualize` is the command line (`adamae-visualize`).

    from adamae_hf.mask_figure import visualize
    visualize("outputs/demo", "clip.mp4", "masks.gif")  # -> [Path("masks.gif"), Path("masks.png")]
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PretrainedConfig

from configuration_adamae import MASK_TYPES, AdaMaeConfig
from modeling_adamae import AdaMaeForPreTraining

from .data import VideoClipConfig, VideoDecodeError, load_eval_clip, probe_video, unnormalize
from .figure_rendering import (
    DEFAULT_ERROR_MAX,
    DEFAULT_FPS,
    DEFAULT_STRIP_FRAMES,
    MaskedReconstruction,
    check_output_path,
    render_comparison,
    render_panels,
    render_strip,
    save_animation,
    save_image,
    strip_frame_indices,
)


logger = logging.getLogger(__name__)

DEFAULT_SAMPLING_RATE = 4  # VideoMAE's Kinetics stride; lowered automatically for videos too short for it
COMPARE_MASK_RATIO = 0.8  # the paper's comparison figure
COMPARE_MASK_TYPES = ("adaptive", "random", "tube", "frame")  # the paper's row order
MIN_PANEL_SIDE = 128  # the automatic scale enlarges small clips to at least this many pixels per panel side
PRETRAINING_ARCHITECTURE = "AdaMaeForPreTraining"

# ---------------------------------------------------------------------------------------------------------------------
# Loading the model and the clip


def load_pretraining_model(
    name_or_path: str | os.PathLike, device: str | torch.device = "cpu"
) -> AdaMaeForPreTraining:
    """Load an AdaMAE pretraining folder (or Hub id) with its decoder, and the sampler if it was trained with one.

    `AdaMaeForPreTraining.from_pretrained` would load a fine-tuned classifier's folder too and initialise the missing
    decoder and sampler at random, which would draw a picture of noise; any weight that is not in the checkpoint is an
    error here.

    Raises:
        ValueError: The folder is not an AdaMAE model, or has no pretraining head (decoder / sampler) or misses weights.
    """
    name_or_path = str(name_or_path)
    if os.path.isfile(name_or_path):
        raise ValueError(
            f"The model must be a folder (config.json + weights) or a Hub id, got the file {name_or_path!r}."
        )
    try:
        config_dict, _ = PretrainedConfig.get_config_dict(name_or_path)
    except OSError as error:
        raise OSError(
            f"Can't load the model {name_or_path!r}: it is not a local folder with a config.json, and loading it as a "
            f"Hub id failed: {error}"
        ) from error
    model_type = config_dict.get("model_type")
    if model_type != AdaMaeConfig.model_type:
        hint = " Convert it first with `adamae-convert videomae`." if model_type == "videomae" else ""
        raise ValueError(
            f"{name_or_path} is not an AdaMAE model: expected model_type 'adamae', got {model_type!r}.{hint}"
        )
    architectures = config_dict.get("architectures") or []
    if architectures and PRETRAINING_ARCHITECTURE not in architectures:
        raise ValueError(
            f"{name_or_path} has no pretraining head: it was saved from {', '.join(architectures)}, but this "
            f"needs the decoder (and sampler) of an {PRETRAINING_ARCHITECTURE} folder, e.g. run_pretrain.py's output."
        )
    model, loading_info = AdaMaeForPreTraining.from_pretrained(name_or_path, output_loading_info=True)
    missing = list(loading_info.get("missing_keys", [])) + [key for key, *_ in loading_info.get("mismatched_keys", [])]
    if missing:
        shown = ", ".join(sorted(missing)[:6]) + (f", ... ({len(missing)} in all)" if len(missing) > 6 else "")
        raise ValueError(
            f"{name_or_path} has no complete pretraining head: these weights are missing from the checkpoint or have "
            f"the wrong shape: {shown}. Expected a folder saved from {PRETRAINING_ARCHITECTURE}."
        )
    return model.to(device).eval()


def fitted_sampling_rate(
    video_path: str | os.PathLike, num_frames: int, preferred: int = DEFAULT_SAMPLING_RATE
) -> int:
    """`preferred`, lowered until a window of `num_frames` frames fits in the video (at least 1).

    The eval sampler repeats the last frame of a video shorter than its window; a lower stride shows real motion
    instead of a frozen tail.
    """
    num_video_frames = probe_video(video_path).num_frames
    fitting = (num_video_frames - 1) // max(num_frames - 1, 1)
    return max(1, min(preferred, fitting))


def load_clip(
    video_path: str | os.PathLike,
    config: AdaMaeConfig,
    clip_config: VideoClipConfig | None = None,
    sampling_rate: int | None = None,
) -> torch.Tensor:
    """Decode a video into the model's clip with the data pipeline's eval transforms: normalised float32
    `(num_frames, 3, height, width)`.

    Centre window, short side resized, centre crop (`adamae_hf.data.load_eval_clip`); the frame count and crop size
    come from the model config. `sampling_rate` defaults to `clip_config`'s, or, without a `clip_config`, to 4 lowered
    to what the video's length allows. A non-square model frame is cut from the centre of a square crop of its long
    side.

    Raises:
        VideoDecodeError: The file cannot be decoded as a video.
    """
    if config.num_channels != 3:
        raise ValueError(f"The picture needs an RGB model (num_channels=3), got num_channels={config.num_channels}.")
    height, width = config.frame_size
    # the model's clip geometry and normalisation
    overrides = {
        "num_frames": config.num_frames,
        "crop_size": max(height, width),
        "image_mean": config.image_mean,
        "image_std": config.image_std,
    }
    if sampling_rate is not None:
        overrides["sampling_rate"] = sampling_rate
    elif clip_config is None:
        overrides["sampling_rate"] = fitted_sampling_rate(video_path, config.num_frames)
    pixel_values = load_eval_clip(video_path, clip_config, **overrides)  # (T, C, S, S), S = the long side
    return centre_crop(pixel_values, config.frame_size).contiguous()


def centre_crop(pixel_values: torch.Tensor, frame_size: tuple[int, int]) -> torch.Tensor:
    """The centre `(height, width)` of frames `(..., S, S)`: a non-square model frame cut from the square eval crop."""
    height, width = frame_size
    top, left = (pixel_values.shape[-2] - height) // 2, (pixel_values.shape[-1] - width) // 2
    return pixel_values[..., top : top + height, left : left + width]


# ---------------------------------------------------------------------------------------------------------------------
# Running the model


def _unwrap(model) -> AdaMaeForPreTraining:
    model = getattr(model, "_orig_mod", model)  # a torch.compile'd model
    if not isinstance(model, AdaMaeForPreTraining):
        raise TypeError(f"model must be an AdaMaeForPreTraining (or its folder), got {type(model).__name__}.")
    return model


def fill_masked_patches(
    input_patches: torch.Tensor, predictions: torch.Tensor, masked_indices: torch.Tensor, norm_pix_loss: bool
) -> torch.Tensor:
    """The reconstruction in patches: the input's visible patches, the predicted masked ones, clipped to [0, 1].

    Args:
        input_patches: `(N, t*p*p, C)` un-normalised input pixels in [0, 1] (`model.patchify` of the frames).
        predictions: `(N_masked, t*p*p*C)` the model's logits, masked tokens in ascending order.
        masked_indices: `(N_masked,)` ascending token indices.
        norm_pix_loss: The decoder predicts each patch normalised by its own per-channel mean and unbiased std; undo
            that with the input patch's statistics (VideoMAE's visualiser does the same).
    """
    num_channels = input_patches.shape[-1]
    # (N_masked, t*p*p*C) -> (N_masked, t*p*p, C)
    predicted = predictions.reshape(len(masked_indices), -1, num_channels)
    if norm_pix_loss:
        masked_patches = input_patches[masked_indices]
        mean = masked_patches.mean(dim=-2, keepdim=True)
        std = masked_patches.var(dim=-2, unbiased=True, keepdim=True).sqrt()
        predicted = predicted * (std + 1e-6) + mean
    reconstructed_patches = input_patches.clone()
    reconstructed_patches[masked_indices] = predicted.clamp(0.0, 1.0)
    return reconstructed_patches


@torch.inference_mode()
def reconstruct(
    model: AdaMaeForPreTraining,
    pixel_values: torch.Tensor,
    mask_type: str | None = None,
    mask_ratio: float | None = None,
    seed: int = 0,
) -> MaskedReconstruction:
    """Mask one clip, run the model on it and assemble what the panels show.

    Args:
        model: An `AdaMaeForPreTraining`; it runs in eval mode (no sampler dropout), then returns to its mode.
        pixel_values: `(T, C, H, W)` normalised clip (`load_clip`).
        mask_type: Defaults to the model config's. `"adaptive"` needs a model with a sampler.
        mask_ratio: Defaults to the model config's; overrides the adaptive sampler's ratio too.
        seed: Seeds the noise the mask is drawn with: the same seed gives the same mask.

    `pixel_values` carries the model's normalisation (`config.image_mean` / `image_std`), as `load_clip` gives it.
    """
    model = _unwrap(model)
    config = model.config
    mask_type = config.mask_type if mask_type is None else mask_type
    mask_ratio = config.mask_ratio if mask_ratio is None else float(mask_ratio)
    config.check_mask(mask_type, mask_ratio)
    if mask_type == "adaptive" and model.sampler is None:
        raise ValueError(
            f"Adaptive masking needs the token sampler, and this model has none (it was built with "
            f"mask_type={config.mask_type!r}). Choose one of {[m for m in MASK_TYPES if m != 'adaptive']}."
        )
    if pixel_values.ndim != 4:
        raise ValueError(f"pixel_values must be one clip (T, C, H, W), got shape {tuple(pixel_values.shape)}.")
    outputs, sampler_logits = run_masked(model, pixel_values, mask_type, mask_ratio, seed)
    mask = outputs.mask[0].cpu()  # (N,)
    masked_indices = mask.nonzero().squeeze(1)  # ascending: the order of the logits
    frames = unnormalize(pixel_values.detach().float().cpu(), config.image_mean, config.image_std)  # (T, C, H, W)
    input_patches = model.patchify(frames.unsqueeze(0))[0]  # (N, t*p*p, C)
    reconstructed_patches = fill_masked_patches(
        input_patches, outputs.logits[0].float().cpu(), masked_indices, config.norm_pix_loss
    )
    patch_error = (reconstructed_patches - input_patches).pow(2).mean(dim=(1, 2))  # (N,)
    reconstruction = model.unpatchify(reconstructed_patches.flatten(1).unsqueeze(0))[0]  # (T, C, H, W)

    token_grid = config.token_grid
    token_probs, note = None, None
    if mask_type == "adaptive":
        token_probs = sampler_logits[0].float().softmax(dim=-1).cpu().reshape(token_grid).numpy()
    elif model.sampler is None:
        note = f"no sampler\n(mask_type={config.mask_type})"
    else:
        note = f"p not used by\n{mask_type} masking"
    return MaskedReconstruction(
        frames=frames.permute(0, 2, 3, 1).numpy(),  # (T, C, H, W) -> (T, H, W, C)
        reconstruction=reconstruction.permute(0, 2, 3, 1).numpy(),
        mask=mask.reshape(token_grid).numpy(),
        patch_error=patch_error.reshape(token_grid).numpy(),
        token_probs=token_probs,
        mask_type=mask_type,
        mask_ratio=mask_ratio,
        tubelet_size=config.tubelet_size,
        patch_size=config.patch_size,
        reconstruction_loss=float(outputs.reconstruction_loss),
        note=note,
    )


def run_masked(model: AdaMaeForPreTraining, pixel_values: torch.Tensor, mask_type: str, mask_ratio: float, seed: int):
    """The model's outputs on clip `(T, C, H, W)` under a mask of `mask_type` drawn with noise seeded by `seed`, in
    eval mode (no sampler dropout), and the sampler's logits `(1, N)` (None without a sampler)."""
    parameter = next(model.parameters())
    video = pixel_values.unsqueeze(0).to(device=parameter.device, dtype=parameter.dtype)  # (1, T, C, H, W)
    # The noise is drawn on the CPU so that a seed gives the same mask on every device.
    noise = torch.rand(1, model.config.num_patches, generator=torch.Generator().manual_seed(seed))
    noise = noise.to(parameter.device)
    was_training = model.training
    model.eval()
    try:
        sampler_logits = None
        if model.sampler is not None:
            patch_embeddings = model.videomae.embeddings.embed_patches(model.patchify(video))
            sampler_logits = model.sampler(patch_embeddings)  # (1, N)
        mask = model.generate_mask(
            1, sampler_logits if mask_type == "adaptive" else None, noise, mask_type=mask_type, mask_ratio=mask_ratio
        )
        outputs = model(video, bool_masked_pos=mask, return_dict=True)
    finally:
        model.train(was_training)
    return outputs, sampler_logits


def auto_scale(config: AdaMaeConfig) -> int:
    """Smallest integer enlargement that makes a panel at least `MIN_PANEL_SIDE` pixels on its short side."""
    return max(1, math.ceil(MIN_PANEL_SIDE / min(config.frame_size)))


def _prepare(model, video_path, clip_config, sampling_rate, device):
    model = load_pretraining_model(model, device) if isinstance(model, (str, os.PathLike)) else _unwrap(model)
    pixel_values = load_clip(video_path, model.config, clip_config, sampling_rate)
    clip_config = clip_config if clip_config is not None else VideoClipConfig()
    return model, pixel_values, clip_config


def visualize(
    model: AdaMaeForPreTraining | str | os.PathLike,
    video_path: str | os.PathLike,
    output_path: str | os.PathLike,
    mask_ratio: float | None = None,
    seed: int = 0,
    clip_config: VideoClipConfig | None = None,
    sampling_rate: int | None = None,
    scale: int | None = None,
    fps: float = DEFAULT_FPS,
    error_max: float = DEFAULT_ERROR_MAX,
    strip_frames: int = DEFAULT_STRIP_FRAMES,
    device: str | torch.device = "cpu",
) -> list[Path]:
    """Draw the five-panel picture of one video.

    Writes the animation (`output_path` ending in .gif or .mp4) and a PNG strip of `strip_frames` frames beside it
    (same name, .png); an `output_path` ending in .png writes the strip only.

    Args:
        model: An `AdaMaeForPreTraining`, or a pretraining folder / Hub id (loaded on `device`).
        video_path: Any video PyAV decodes; the clip is taken with the data pipeline's eval transforms.
        output_path: Where to write.
        mask_ratio: Defaults to the model config's; overrides the adaptive sampler's ratio too.
        seed: The same seed gives the same mask and picture.
        clip_config: Eval settings (short side, sampling rate, normalisation); frames and crop come from the model.
        sampling_rate: Frame stride; see `load_clip` for the default.
        scale: Nearest-neighbour enlargement of the panels (default: `auto_scale`).
        fps: Frame rate of the animation.
        error_max: Per-patch MSE where the error colour scale saturates.

    Returns:
        The files written.
    """
    output_path = check_output_path(output_path)
    model, pixel_values, clip_config = _prepare(model, video_path, clip_config, sampling_rate, device)
    result = reconstruct(model, pixel_values, mask_ratio=mask_ratio, seed=seed)
    scale = auto_scale(model.config) if scale is None else scale
    written = []
    if output_path.suffix.lower() != ".png":
        frames, _ = render_panels(result, scale, error_max)
        written.append(save_animation(frames, output_path, fps))
    strip, _ = render_strip(result, strip_frame_indices(result, strip_frames), scale, error_max)
    written.append(save_image(strip, output_path.with_suffix(".png")))
    return written


def compare(
    model: AdaMaeForPreTraining | str | os.PathLike,
    video_path: str | os.PathLike,
    output_path: str | os.PathLike,
    mask_ratio: float = COMPARE_MASK_RATIO,
    mask_types: Sequence[str] = COMPARE_MASK_TYPES,
    seed: int = 0,
    clip_config: VideoClipConfig | None = None,
    sampling_rate: int | None = None,
    scale: int | None = None,
    fps: float = DEFAULT_FPS,
    error_max: float = DEFAULT_ERROR_MAX,
    device: str | torch.device = "cpu",
) -> list[Path]:
    """The paper's comparison figure: the same clip masked by each of `mask_types` at `mask_ratio`, one row each.

    A model without a sampler (trained with tube, random or frame masking) has no adaptive row; the figure says so in
    its caption. Writes the animation (.gif / .mp4) and a PNG of the first frame of the middle tubelet beside it, or
    only that PNG for a .png `output_path`. Other arguments as in `visualize`.
    """
    output_path = check_output_path(output_path)
    unknown = [mask_type for mask_type in mask_types if mask_type not in MASK_TYPES]
    if unknown or not mask_types:
        raise ValueError(f"mask_types must be a non-empty subset of {MASK_TYPES}, got {list(mask_types)}.")
    model, pixel_values, clip_config = _prepare(model, video_path, clip_config, sampling_rate, device)
    caption = None
    if "adaptive" in mask_types and model.sampler is None:
        caption = f"no adaptive row: this model has no sampler (trained with mask_type={model.config.mask_type})"
        logger.warning(f"compare: {caption}.")
        mask_types = [mask_type for mask_type in mask_types if mask_type != "adaptive"]
        if not mask_types:
            raise ValueError(f"Nothing to compare: {caption}.")
    results = [
        reconstruct(model, pixel_values, mask_type=mask_type, mask_ratio=mask_ratio, seed=seed)
        for mask_type in mask_types
    ]
    scale = auto_scale(model.config) if scale is None else scale
    frames, _ = render_comparison(results, scale, error_max, caption)
    written = []
    if output_path.suffix.lower() != ".png":
        written.append(save_animation(frames, output_path, fps))
    middle_frame = (results[0].mask.shape[0] // 2) * results[0].tubelet_size  # first frame of the middle tubelet
    written.append(save_image(frames[middle_frame], output_path.with_suffix(".png")))
    return written


def write_mask_figure(model, video_path: str, output_path: Path, clip_config: VideoClipConfig) -> Path | None:
    """`visualize` for a training run: the GIF's path, or None when the video or model cannot be drawn, which only
    warns (a figure never stops a run)."""
    try:
        return visualize(model, video_path, output_path, clip_config=clip_config)[0]
    except (VideoDecodeError, ValueError, OSError) as error:
        logger.warning(f"No mask figure from {video_path}: {error}")
        return None
