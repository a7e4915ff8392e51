"""The AdaMAE picture's pixels: panels, figure layout, text and colour bars, and the files (GIF, mp4, PNG).

Turns a `MaskedReconstruction` (what the model saw, predicted and sampled for one clip; `adamae_hf.mask_figure`
makes it) into images: `render_panels` (five panels per frame), `render_strip` (a few frames as one PNG) and
`render_comparison` (one row per mask type). numpy and Pillow only; no model here.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .data import write_video


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
DEFAULT_STRIP_FRAMES = 4
OUTPUT_SUFFIXES = (".gif", ".mp4", ".png")

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
# What the panels show


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


@functools.cache
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


def draw_text(
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
    draw_text(draw, (text_top, left, text_bottom, left + half), low_label, font_size, align="left", valign="top")
    high_width = min(_text_width(high_label, font_size), right - left - half)
    high_box = (text_top, right - high_width, text_bottom, right)
    draw_text(draw, high_box, high_label, font_size, align="left", valign="top")


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
        draw_text(draw, geometry.title_box(panel), title, font_size)
    for row_index, row in enumerate(rows):
        draw_text(draw, geometry.label_box(row_index), row.label, font_size)
        if row.result.token_probs is None:
            top, left, bottom, right = geometry.panel_box(PROBS_PANEL, row_index)
            draw.rectangle((left, top, right - 1, bottom - 1), fill=(PLACEHOLDER_GREY,) * 3)
            draw_text(draw, (top, left + 2, bottom, right - 2), row.result.note or "", font_size, colour=(235,) * 3)

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
    draw_text(
        draw,
        (top - 2, left + swatch + 3, top + _line_height(font_size), right),
        "masked",
        font_size,
        align="left",
        valign="top",
    )
    if caption:
        top, left, bottom, right = geometry.footer_box()
        draw_text(draw, (bottom - _line_height(font_size), left, bottom, right), caption, font_size, align="left")
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
        draw_text(ImageDraw.Draw(corner), (0, 0, bottom - top, right - left), corner_text, font_size)
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
        f"{result.num_masked}/{result.num_patches} tokens masked, reconstruction loss {result.reconstruction_loss:.3g}"
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
