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
per mask type.

Command line (writes `masks.gif` and a PNG strip of a few frames, `masks.png`)::

    adamae-visualize --model outputs/demo --video clip.mp4 --out masks.gif [--mask_ratio 0.95] [--seed 0]
    adamae-visualize --model outputs/demo --video clip.mp4 --out compare.gif --compare

From Python::

    from adamae_hf.visualize import visualize
    visualize("outputs/demo", "clip.mp4", "masks.gif")  # -> [Path("masks.gif"), Path("masks.png")]
"""

from __future__ import annotations

import argparse
import functools
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont
from transformers import PretrainedConfig
from transformers.utils import logging

from configuration_adamae import MASK_TYPES, AdaMaeConfig
from modeling_adamae import AdaMaeForPreTraining

from .data import (
    VideoClipConfig,
    load_eval_clip,
    probe_video,
    unnormalize,
    write_video,
)
from .errors import DEBUG_FLAG, UserError, check_model_source, run_cli
from .training import quiet_library_output


logger = logging.get_logger(__name__)

NUM_PANELS = 5
INPUT_PANEL, RECONSTRUCTION_PANEL, ERROR_PANEL, PROBS_PANEL, MASK_PANEL = range(NUM_PANELS)
PANEL_TITLES = ("input", "reconstruction", "error (MSE)", "sampler p", "mask")

MASKED_GREY = 128  # uint8 value of every pixel of a masked patch in the mask panel
PLACEHOLDER_GREY = 64  # background of a p panel for a mask that does not come from the sampler
BACKGROUND = 255
TEXT_COLOUR = (20, 20, 20)

# Per-patch MSE of [0, 1] pixels at which the error colour map saturates. Fixed, so that pictures of different videos
# and checkpoints are comparable; a well-trained ViT-B's masked patches mostly fall well below it.
DEFAULT_ERROR_MAX = 0.05
DEFAULT_FPS = 4.0  # slow enough to follow the mask from frame to frame
DEFAULT_SAMPLING_RATE = 4  # VideoMAE's Kinetics stride; lowered automatically for videos too short for it
DEFAULT_STRIP_FRAMES = 4
COMPARE_MASK_RATIO = 0.8  # the paper's comparison figure
COMPARE_MASK_TYPES = ("adaptive", "random", "tube", "frame")  # the paper's row order
MIN_PANEL_SIDE = 128  # the automatic scale enlarges small clips to at least this many pixels per panel side
OUTPUT_SUFFIXES = (".gif", ".mp4", ".png")
PRETRAINING_ARCHITECTURE = "AdaMaeForPreTraining"

# Colour maps as 10 evenly spaced stops, interpolated linearly: matplotlib's viridis (p) and inferno (error).
VIRIDIS = np.array(
    [
        (68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
        (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37),
    ],
    dtype=np.float64,
)  # fmt: skip
INFERNO = np.array(
    [
        (0, 0, 4), (27, 12, 66), (75, 12, 107), (120, 28, 109), (165, 44, 96),
        (207, 68, 70), (237, 105, 37), (251, 154, 6), (247, 208, 60), (252, 255, 164),
    ],
    dtype=np.float64,
)  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Loading the model and the clip


def load_pretraining_model(name_or_path: str | os.PathLike, device: str | torch.device = "cpu") -> AdaMaeForPreTraining:
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


def fitted_sampling_rate(video_path: str | os.PathLike, num_frames: int, preferred: int = DEFAULT_SAMPLING_RATE) -> int:
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
    overrides = {"num_frames": config.num_frames, "crop_size": max(height, width), "image_mean": config.image_mean,
                 "image_std": config.image_std}  # fmt: skip
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


@dataclass
class MaskedReconstruction:
    """What the panels show for one clip and one mask, in [0, 1] pixel space (numpy, on the CPU).

    Attributes:
        frames: `(T, H, W, 3)` float32, the un-normalised input clip.
        reconstruction: `(T, H, W, 3)` float32, visible patches from `frames`, masked ones predicted, clipped to [0, 1].
        mask: `(t, h, w)` bool token grid, `True` = masked (exactly the mask the model ran with).
        patch_error: `(t, h, w)` float32, MSE between `reconstruction` and `frames` over each tubelet patch (0 where
            visible).
        token_probs: `(t, h, w)` float32, the sampler's p; `None` when the mask does not come from the sampler.
        mask_type: How the mask was drawn.
        mask_ratio: The requested ratio (`num_masked / num_patches` is what each mask type's rounding gave).
        tubelet_size, patch_size: Token geometry, for mapping tokens to pixels.
        reconstruction_loss: The model's loss on this mask (normalised pixels with `norm_pix_loss`).
        note: Why `token_probs` is missing, shown in place of the p panel.
    """

    frames: np.ndarray
    reconstruction: np.ndarray
    mask: np.ndarray
    patch_error: np.ndarray
    token_probs: np.ndarray | None
    mask_type: str
    mask_ratio: float
    tubelet_size: int
    patch_size: int
    reconstruction_loss: float
    note: str | None = None

    @property
    def num_frames(self) -> int:
        return self.frames.shape[0]

    @property
    def num_patches(self) -> int:
        return self.mask.size

    @property
    def num_masked(self) -> int:
        return int(self.mask.sum())


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
    parameter = next(model.parameters())
    video = pixel_values.unsqueeze(0).to(device=parameter.device, dtype=parameter.dtype)  # (1, T, C, H, W)
    # The noise is drawn on the CPU so that a seed gives the same mask on every device.
    noise = torch.rand(1, config.num_patches, generator=torch.Generator().manual_seed(seed)).to(parameter.device)

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


# ---------------------------------------------------------------------------------------------------------------------
# Panels


def to_uint8(image: np.ndarray) -> np.ndarray:
    """[0, 1] floats -> uint8, rounded."""
    return np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)


def apply_colormap(values: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Values in [0, 1] (clipped) -> uint8 RGB `(..., 3)`, interpolating linearly between evenly spaced colour stops."""
    position = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0) * (len(stops) - 1)
    lower = np.minimum(np.floor(position).astype(np.int64), len(stops) - 2)
    fraction = (position - lower)[..., None]
    return np.round(stops[lower] * (1.0 - fraction) + stops[lower + 1] * fraction).astype(np.uint8)


def upscale(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour enlargement `(H, W, ...)` -> `(H*scale, W*scale, ...)`: patches stay crisp."""
    if scale == 1:
        return image
    return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)


def panel_images(
    result: MaskedReconstruction, frame_index: int, error_max: float = DEFAULT_ERROR_MAX
) -> list[np.ndarray | None]:
    """The five panels of one frame, unscaled uint8 `(H, W, 3)` each (`None` for p when the mask has no sampler)."""
    time_slice = frame_index // result.tubelet_size

    def per_pixel(token_values: np.ndarray) -> np.ndarray:
        # (t, h, w) token grid -> this frame's (H, W): each token covers a patch x patch square.
        return upscale(token_values[time_slice], result.patch_size)

    frame = to_uint8(result.frames[frame_index])
    masked = per_pixel(result.mask)[..., None]  # (H, W, 1)
    token_probs = None
    if result.token_probs is not None:
        token_probs = apply_colormap(per_pixel(result.token_probs) / result.token_probs.max(), VIRIDIS)
    return [
        frame,
        to_uint8(result.reconstruction[frame_index]),
        apply_colormap(per_pixel(result.patch_error) / error_max, INFERNO),
        token_probs,
        np.where(masked, np.uint8(MASKED_GREY), frame),
    ]


# ---------------------------------------------------------------------------------------------------------------------
# Figure layout


@dataclass(frozen=True)
class FigureGeometry:
    """Where everything sits in a rendered image, in pixels. Boxes are `(top, left, bottom, right)`, exclusive ends.

    Columns: margin | row labels | panel 0 | gap | ... | gap | panel 4 | margin.
    Rows: margin | titles | panel row 0 | gap | ... | panel row R-1 | footer (colour bars, caption) | margin.
    Width and height are rounded up to even numbers (H.264's 4:2:0 sampling needs them) with one extra column / row
    of margin.
    """

    panel_height: int
    panel_width: int
    num_rows: int = 1
    label_width: int = 0
    title_height: int = 0
    footer_height: int = 0
    margin: int = 4
    gap: int = 4

    @property
    def width(self) -> int:
        width = 2 * self.margin + self.label_width + NUM_PANELS * self.panel_width + (NUM_PANELS - 1) * self.gap
        return width + width % 2

    @property
    def height(self) -> int:
        rows = self.num_rows * self.panel_height + (self.num_rows - 1) * self.gap
        height = 2 * self.margin + self.title_height + rows + self.footer_height
        return height + height % 2

    def _panel_left(self, panel: int) -> int:
        if not 0 <= panel < NUM_PANELS:
            raise ValueError(f"panel must be in [0, {NUM_PANELS}), got {panel}.")
        return self.margin + self.label_width + panel * (self.panel_width + self.gap)

    def _row_top(self, row: int) -> int:
        if not 0 <= row < self.num_rows:
            raise ValueError(f"row must be in [0, {self.num_rows}), got {row}.")
        return self.margin + self.title_height + row * (self.panel_height + self.gap)

    def panel_box(self, panel: int, row: int = 0) -> tuple[int, int, int, int]:
        top, left = self._row_top(row), self._panel_left(panel)
        return top, left, top + self.panel_height, left + self.panel_width

    def panel(self, image: np.ndarray, panel: int, row: int = 0) -> np.ndarray:
        """The `(panel_height, panel_width, 3)` view of one panel in a rendered `(H, W, 3)` image."""
        top, left, bottom, right = self.panel_box(panel, row)
        return image[..., top:bottom, left:right, :]

    def title_box(self, panel: int) -> tuple[int, int, int, int]:
        left = self._panel_left(panel)
        return self.margin, left, self.margin + self.title_height, left + self.panel_width

    def label_box(self, row: int) -> tuple[int, int, int, int]:
        top = self._row_top(row)
        return top, self.margin, top + self.panel_height, self.margin + self.label_width

    def corner_box(self) -> tuple[int, int, int, int]:
        """Above the row labels: the frame counter."""
        return self.margin, self.margin, self.margin + self.title_height, self.margin + self.label_width

    def footer_box(self, panel: int | None = None) -> tuple[int, int, int, int]:
        """The footer under one panel column, or the whole footer row when `panel` is None."""
        top = self.margin + self.title_height + self.num_rows * self.panel_height + (self.num_rows - 1) * self.gap
        if panel is None:
            return top, self.margin, top + self.footer_height, self.width - self.margin
        left = self._panel_left(panel)
        return top, left, top + self.footer_height, left + self.panel_width


@functools.lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _text_width(text: str, size: int) -> int:
    return max(int(math.ceil(_font(size).getlength(line))) for line in text.split("\n"))


def _line_height(size: int) -> int:
    return size + max(2, size // 4)


def _fit_line(line: str, size: int, width: int, min_size: int) -> tuple[str, int]:
    """Shrink the font, then cut the line with an ellipsis, until it fits `width`."""
    while size > min_size and _text_width(line, size) > width:
        size -= 1
    if _text_width(line, size) > width:
        while len(line) > 1 and _text_width(line + "…", size) > width:
            line = line[:-1]
        line = line + "…"
    return line, size


def _draw_text(
    draw: ImageDraw.ImageDraw,
    box: tuple[int, int, int, int],
    text: str,
    size: int,
    colour=TEXT_COLOUR,
    align: str = "center",
    valign: str = "center",
) -> None:
    """Draw (multi-line) text inside a box, each line shrunk or cut to fit its width."""
    top, left, bottom, right = box
    lines = text.split("\n")
    block_height = len(lines) * _line_height(size)
    y = top if valign == "top" else top + max(0, (bottom - top - block_height) // 2)
    for line in lines:
        fitted, line_size = _fit_line(line, size, right - left, min_size=max(6, size // 2))
        line_width = _text_width(fitted, line_size)
        x = left + (right - left - line_width) // 2 if align == "center" else left
        draw.text((x, y), fitted, fill=colour, font=_font(line_size))
        y += _line_height(size)


@dataclass
class _Row:
    result: MaskedReconstruction
    label: str


def _row_label(result: MaskedReconstruction) -> str:
    return f"{result.mask_type} {result.mask_ratio:.0%}\n{result.num_masked}/{result.num_patches} masked"


def _format_value(value: float) -> str:
    return f"{value:.2g}" if value >= 1e-2 else f"{value:.1e}"


def _layout(
    panel_height: int, panel_width: int, rows: list[_Row], corner_texts: list[str], caption: str | None
) -> tuple[FigureGeometry, int]:
    """Geometry and font size for a figure; text sizes follow the panel size."""
    font_size = max(9, min(16, panel_width // 9))
    padding = max(2, font_size // 3)
    line = _line_height(font_size)
    label_texts = [row.label for row in rows] + corner_texts
    label_width = max(_text_width(text, font_size) for text in label_texts) + 2 * padding
    bar_height = max(4, font_size // 2 + 2)
    footer_height = padding + bar_height + 2 + line + (line if caption else 0)
    geometry = FigureGeometry(
        panel_height=panel_height,
        panel_width=panel_width,
        num_rows=len(rows),
        label_width=label_width,
        title_height=line + 2 * padding,
        footer_height=footer_height,
        margin=max(4, padding),
        gap=max(4, padding),
    )
    return geometry, font_size


def _draw_colour_bar(
    image: Image.Image,
    box: tuple[int, int, int, int],
    stops: np.ndarray,
    low_label: str,
    high_label: str,
    font_size: int,
) -> None:
    top, left, _, right = box
    bar_height = max(4, font_size // 2 + 2)
    top += max(2, font_size // 3)
    bar = apply_colormap(np.linspace(0.0, 1.0, right - left)[None, :].repeat(bar_height, axis=0), stops)
    image.paste(Image.fromarray(bar), (left, top))
    draw = ImageDraw.Draw(image)
    text_top = top + bar_height + 2
    text_bottom = text_top + _line_height(font_size)
    half = (right - left) // 2
    _draw_text(draw, (text_top, left, text_bottom, left + half), low_label, font_size, align="left", valign="top")
    high_width = min(_text_width(high_label, font_size), right - left - half)
    high_box = (text_top, right - high_width, text_bottom, right)
    _draw_text(draw, high_box, high_label, font_size, align="left", valign="top")


def _template(
    geometry: FigureGeometry,
    font_size: int,
    rows: list[_Row],
    error_max: float,
    caption: str | None,
) -> np.ndarray:
    """Everything that is the same in every frame: titles, row labels, colour bars, placeholders for missing p."""
    image = Image.new("RGB", (geometry.width, geometry.height), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(image)
    for panel, title in enumerate(PANEL_TITLES):
        _draw_text(draw, geometry.title_box(panel), title, font_size)
    for row_index, row in enumerate(rows):
        _draw_text(draw, geometry.label_box(row_index), row.label, font_size)
        if row.result.token_probs is None:
            top, left, bottom, right = geometry.panel_box(PROBS_PANEL, row_index)
            draw.rectangle((left, top, right - 1, bottom - 1), fill=(PLACEHOLDER_GREY,) * 3)
            _draw_text(draw, (top, left + 2, bottom, right - 2), row.result.note or "", font_size, colour=(235,) * 3)

    _draw_colour_bar(image, geometry.footer_box(ERROR_PANEL), INFERNO, "0", f"{error_max:g}+", font_size)
    with_probs = [row.result.token_probs for row in rows if row.result.token_probs is not None]
    if with_probs:
        max_prob = max(float(probs.max()) for probs in with_probs)
        _draw_colour_bar(
            image, geometry.footer_box(PROBS_PANEL), VIRIDIS, "0", f"{_format_value(max_prob)} max", font_size
        )
    # Legend of the mask panel: a grey swatch.
    top, left, _, right = geometry.footer_box(MASK_PANEL)
    top += max(2, font_size // 3)
    swatch = max(4, font_size // 2 + 2)
    draw.rectangle((left, top, left + swatch - 1, top + swatch - 1), fill=(MASKED_GREY,) * 3)
    _draw_text(
        draw, (top - 2, left + swatch + 3, top + _line_height(font_size), right), "masked", font_size,
        align="left", valign="top",
    )  # fmt: skip
    if caption:
        top, left, bottom, right = geometry.footer_box()
        _draw_text(draw, (bottom - _line_height(font_size), left, bottom, right), caption, font_size, align="left")
    return np.asarray(image).copy()


def _render_figure(
    rows: list[_Row],
    frames_per_row: list[list[int]],
    corner_texts: list[str],
    scale: int,
    error_max: float,
    caption: str | None = None,
) -> tuple[np.ndarray, FigureGeometry]:
    """`(num_images, H, W, 3)` uint8: image i shows frame `frames_per_row[r][i]` of row r's clip in every row r."""
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale!r}.")
    if not error_max > 0:
        raise ValueError(f"error_max must be > 0, got {error_max!r}.")
    panel_height, panel_width = (side * scale for side in rows[0].result.frames.shape[1:3])
    geometry, font_size = _layout(panel_height, panel_width, rows, corner_texts, caption)
    template = _template(geometry, font_size, rows, error_max, caption)
    images = np.empty((len(corner_texts), geometry.height, geometry.width, 3), dtype=np.uint8)
    for image_index, corner_text in enumerate(corner_texts):
        image = images[image_index]
        image[:] = template
        for row_index, row in enumerate(rows):
            panels = panel_images(row.result, frames_per_row[row_index][image_index], error_max)
            for panel_index, panel in enumerate(panels):
                if panel is not None:
                    geometry.panel(image, panel_index, row_index)[:] = upscale(panel, scale)
        # The frame counter changes every frame; drawing it only on the corner keeps the template shared.
        top, left, bottom, right = geometry.corner_box()
        corner = Image.fromarray(image[top:bottom, left:right])
        _draw_text(ImageDraw.Draw(corner), (0, 0, bottom - top, right - left), corner_text, font_size)
        image[top:bottom, left:right] = np.asarray(corner)
    return images, geometry


def render_panels(
    result: MaskedReconstruction, scale: int = 1, error_max: float = DEFAULT_ERROR_MAX
) -> tuple[np.ndarray, FigureGeometry]:
    """The animation: `(T, H, W, 3)` uint8, one image per frame with the five panels side by side, and its geometry
    (`geometry.panel(frames[i], INPUT_PANEL)` is panel 1 of frame i). `scale` enlarges panels, nearest-neighbour."""
    num_frames = result.num_frames
    return _render_figure(
        [_Row(result, _row_label(result))],
        [list(range(num_frames))],
        [f"frame {index + 1}/{num_frames}" for index in range(num_frames)],
        scale,
        error_max,
    )


def strip_frame_indices(result: MaskedReconstruction, num_frames: int = DEFAULT_STRIP_FRAMES) -> list[int]:
    """Evenly spaced frames, the first of their tubelet, one per time slice at most."""
    num_slices = result.mask.shape[0]
    slices = np.unique(np.round(np.linspace(0, num_slices - 1, min(num_frames, num_slices))).astype(int))
    return [int(time_slice) * result.tubelet_size for time_slice in slices]


def render_strip(
    result: MaskedReconstruction,
    frame_indices: Sequence[int] | None = None,
    scale: int = 1,
    error_max: float = DEFAULT_ERROR_MAX,
) -> tuple[np.ndarray, FigureGeometry]:
    """A still: `(H, W, 3)` uint8, one row of five panels per chosen frame (default: `strip_frame_indices`)."""
    frame_indices = strip_frame_indices(result) if frame_indices is None else list(frame_indices)
    for index in frame_indices:
        if not 0 <= index < result.num_frames:
            raise ValueError(f"frame indices must be in [0, {result.num_frames}), got {index}.")
    rows = [_Row(result, f"frame {index + 1}/{result.num_frames}") for index in frame_indices]
    corner = f"{result.mask_type} {result.mask_ratio:.0%}"
    caption = (
        f"{result.num_masked}/{result.num_patches} tokens masked, "
        f"reconstruction loss {result.reconstruction_loss:.3g}"
    )
    images, geometry = _render_figure(rows, [[index] for index in frame_indices], [corner], scale, error_max, caption)
    return images[0], geometry


def render_comparison(
    results: Sequence[MaskedReconstruction],
    scale: int = 1,
    error_max: float = DEFAULT_ERROR_MAX,
    caption: str | None = None,
) -> tuple[np.ndarray, FigureGeometry]:
    """The comparison animation: `(T, H, W, 3)` uint8, one row of five panels per mask, all showing the same frame."""
    if not results:
        raise ValueError("render_comparison needs at least one MaskedReconstruction.")
    num_frames = results[0].num_frames
    return _render_figure(
        [_Row(result, _row_label(result)) for result in results],
        [list(range(num_frames))] * len(results),
        [f"frame {index + 1}/{num_frames}" for index in range(num_frames)],
        scale,
        error_max,
        caption,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Files


def check_output_path(output_path: str | os.PathLike) -> Path:
    output_path = Path(output_path)
    if output_path.suffix.lower() not in OUTPUT_SUFFIXES:
        raise ValueError(f"The output must end in one of {', '.join(OUTPUT_SUFFIXES)}, got {str(output_path)!r}.")
    return output_path


GIF_COLORMAP_COLOURS = 48  # palette entries reserved for each colour map


def _gif_palette(frames: np.ndarray) -> Image.Image:
    """One 256-colour palette for a whole animation, so colours do not flicker between frames: evenly spaced samples
    of both colour maps (heatmaps and colour bars stay smooth) plus a median cut of all frames for the video pixels."""
    colormap_colours = np.concatenate(
        [apply_colormap(np.linspace(0.0, 1.0, GIF_COLORMAP_COLOURS), stops) for stops in (VIRIDIS, INFERNO)]
    )  # (96, 3)
    num_video_colours = 256 - len(colormap_colours)
    montage = Image.fromarray(np.concatenate(list(frames), axis=0))  # (T*H, W, 3): every frame weighs in
    video_palette = montage.quantize(num_video_colours, method=Image.Quantize.MEDIANCUT).getpalette()
    palette = Image.new("P", (1, 1))
    palette.putpalette(colormap_colours.flatten().tolist() + video_palette[: 3 * num_video_colours])
    return palette


def save_animation(frames: np.ndarray, path: str | os.PathLike, fps: float = DEFAULT_FPS) -> Path:
    """Write `(T, H, W, 3)` uint8 frames as an endlessly looping GIF (Pillow) or an H.264 mp4 (PyAV)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".mp4":
        # Near-lossless quality: the panels are flat colours with hard edges that H.264 otherwise smears.
        write_video(path, frames, fps=fps, options={"crf": "12", "preset": "medium"})
    elif path.suffix.lower() == ".gif":
        palette = _gif_palette(frames)
        # No dithering: flat patches stay flat.
        images = [Image.fromarray(frame).quantize(palette=palette, dither=Image.Dither.NONE) for frame in frames]
        duration_ms = int(round(1000 / fps))
        images[0].save(path, save_all=True, append_images=images[1:], duration=duration_ms, loop=0)
    else:
        raise ValueError(f"An animation must end in .gif or .mp4, got {str(path)!r}.")
    return path


def save_image(image: np.ndarray, path: str | os.PathLike) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path


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


# ---------------------------------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adamae-visualize",
        description=(
            "Draw AdaMAE's picture of a video: input, reconstruction, per-patch error, the sampler's distribution p "
            "and the sampled mask, side by side for every frame. Writes the animation and a PNG strip beside it."
        ),
    )
    parser.add_argument("--model", required=True, help="AdaMAE pretraining folder or Hub id.")
    parser.add_argument("--video", required=True, help="Video file (anything PyAV decodes).")
    parser.add_argument("--out", required=True, help="Output file: .gif or .mp4 (plus a .png strip), or .png only.")
    parser.add_argument(
        "--mask_ratio", type=float, default=None,
        help=f"Mask ratio (default: the model's; {COMPARE_MASK_RATIO} with --compare).",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="Seed of the mask noise: same seed, same picture.")
    parser.add_argument(
        "--compare", action="store_true",
        help="Comparison figure: one row per mask type (adaptive, random, tube, frame) at one ratio.",
    )  # fmt: skip
    parser.add_argument(
        "--mask_types", nargs="+", choices=COMPARE_MASK_TYPES, default=list(COMPARE_MASK_TYPES),
        help="Rows of --compare, in order.",
    )  # fmt: skip
    parser.add_argument(
        "--sampling_rate", type=int, default=None,
        help=f"Frame stride (default: {DEFAULT_SAMPLING_RATE}, lowered for videos too short for it).",
    )  # fmt: skip
    parser.add_argument(
        "--scale", type=int, default=None,
        help=f"Integer enlargement of the panels (default: enough for {MIN_PANEL_SIDE}-pixel panels).",
    )  # fmt: skip
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="Frame rate of the animation.")
    parser.add_argument(
        "--error_max", type=float, default=DEFAULT_ERROR_MAX,
        help="Per-patch MSE (pixels in [0, 1]) where the error colour scale saturates.",
    )  # fmt: skip
    parser.add_argument(
        "--strip_frames", type=int, default=DEFAULT_STRIP_FRAMES, help="Frames in the PNG strip."
    )
    parser.add_argument("--device", default="cpu", help="Device to run the model on, e.g. cpu or cuda.")
    parser.add_argument(
        DEBUG_FLAG, action="store_true", help="Show the traceback of an error (otherwise one line says what is wrong)."
    )
    return parser


def draw_from_command_line(argv: list[str]) -> None:
    """`adamae-visualize` without the error handling: parse `argv`, draw, print the paths written."""
    args = build_parser().parse_args(argv)
    check_model_source(args.model, "--model")
    if not os.path.isfile(args.video):
        raise UserError(f"--video: expected a video file, got {args.video!r}: no such file.")
    common = dict(
        seed=args.seed, sampling_rate=args.sampling_rate, scale=args.scale,
        fps=args.fps, error_max=args.error_max, device=args.device,
    )  # fmt: skip
    if args.compare:
        mask_ratio = COMPARE_MASK_RATIO if args.mask_ratio is None else args.mask_ratio
        written = compare(args.model, args.video, args.out, mask_ratio, args.mask_types, **common)
    else:
        written = visualize(
            args.model, args.video, args.out, args.mask_ratio, strip_frames=args.strip_frames, **common
        )
    for path in written:
        print(path)


def main(argv: list[str] | None = None) -> int:
    """The `adamae-visualize` command; returns the exit status (a user's mistake: one line on stderr and 1)."""
    quiet_library_output()
    return run_cli(draw_from_command_line, argv)


if __name__ == "__main__":
    sys.exit(main())
