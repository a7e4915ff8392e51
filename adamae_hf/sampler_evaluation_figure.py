"""The figure of a sampler evaluation: one panel per measure, a point and its bootstrap interval per mask type.

Drawn with Pillow, as the mask figures are (`adamae_hf.figure_rendering`). Each panel's vertical scale fits its intervals
and a dashed reference line: what a motion-blind or uniform sampler scores (0 for a rank correlation, 1 for the visible
motion ratio and the entropy, ceil(0.05 N) / N for the top-5% mass).
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from .figure_rendering import TEXT_COLOUR, VIRIDIS, draw_text, save_image


PANEL_WIDTH, PANEL_HEIGHT = 440, 210
PANEL_COLUMNS = 2
TITLE_HEIGHT, HEADER_HEIGHT = 26, 34
AXIS_LEFT, AXIS_BOTTOM, AXIS_RIGHT = 64, 40, 16
GRID_GREY, REFERENCE_GREY = (225, 225, 225), (150, 150, 150)
GROUP_COLOURS = {
    name: tuple(int(c) for c in VIRIDIS[i])
    for name, i in (("sampler", 0), ("adaptive", 3), ("random", 5), ("tube", 7), ("frame", 8))
}


def reference_value(measure: str, num_tokens: int) -> float | None:
    """What a motion-blind, uniform sampler scores on `measure` (None where nothing is a natural reference)."""
    if measure.startswith("spearman"):
        return 0.0
    if measure.startswith("visible_motion_ratio") or measure == "entropy":
        return 1.0
    if measure == "top5_mass":
        return math.ceil(0.05 * num_tokens) / num_tokens
    return None


def _panel_points(evaluation, measure: str) -> list[tuple[str, str, object]]:
    """`(group, label, summary)` of every group that has a defined value of `measure`, in the evaluation's order."""
    points = []
    for group, measures in evaluation.summary.items():
        summary = measures.get(measure)
        if summary is not None and not math.isnan(summary.mean):
            label = group if group == "sampler" else f"{group} {evaluation.mask_ratios[group]:g}"
            points.append((group, label, summary))
    return points


def _value_range(points, reference: float | None) -> tuple[float, float]:
    values = [value for _, _, s in points for value in (s.mean, s.ci_low, s.ci_high) if not math.isnan(value)]
    values += [] if reference is None else [reference]
    low, high = min(values), max(values)
    padding = 0.1 * (high - low) if high > low else 0.05 * max(abs(high), 1.0)
    return low - padding, high + padding


def _significant_digits(low: float, high: float) -> int:
    """Enough significant digits to tell values `(high - low) / 10` apart (at least 3)."""
    magnitude = max(abs(low), abs(high), 1e-12)
    return max(3, math.ceil(math.log10(magnitude / max(high - low, 1e-12) * 10)) + 1)


def _draw_panel(draw: ImageDraw.ImageDraw, top: int, left: int, measure: str, points, reference) -> None:
    """One measure: title, y axis with three ticks, the reference line, and a point with its interval per group."""
    draw_text(draw, (top, left, top + TITLE_HEIGHT, left + PANEL_WIDTH), measure, 14)
    plot_top, plot_bottom = top + TITLE_HEIGHT + 6, top + PANEL_HEIGHT - AXIS_BOTTOM
    plot_left, plot_right = left + AXIS_LEFT, left + PANEL_WIDTH - AXIS_RIGHT
    low, high = _value_range(points, reference)
    digits = _significant_digits(low, high)

    def y_of(value: float) -> float:
        return plot_bottom - (value - low) / (high - low) * (plot_bottom - plot_top)

    for tick in np.linspace(low, high, 3):
        y = y_of(tick)
        draw.line([(plot_left, y), (plot_right, y)], fill=GRID_GREY)
        draw_text(draw, (int(y) - 8, left, int(y) + 8, plot_left - 6), f"{tick:.{digits}g}", 11, align="right")
    draw.rectangle([plot_left, plot_top, plot_right, plot_bottom], outline=TEXT_COLOUR)
    if reference is not None:
        y = y_of(reference)
        for x in range(plot_left, plot_right, 10):  # dashed
            draw.line([(x, y), (min(x + 5, plot_right), y)], fill=REFERENCE_GREY, width=2)
    slot = (plot_right - plot_left) / max(len(points), 1)
    for position, (group, label, summary) in enumerate(points):
        x = plot_left + slot * (position + 0.5)
        colour = GROUP_COLOURS.get(group, TEXT_COLOUR)
        y_low, y_high, y_mean = y_of(summary.ci_low), y_of(summary.ci_high), y_of(summary.mean)
        draw.line([(x, y_low), (x, y_high)], fill=colour, width=2)
        for y in (y_low, y_high):
            draw.line([(x - 6, y), (x + 6, y)], fill=colour, width=2)
        draw.ellipse([x - 5, y_mean - 5, x + 5, y_mean + 5], fill=colour)
        draw_text(
            draw,
            (int(y_mean) - 8, int(x) + 9, int(y_mean) + 8, int(x + slot / 2)),
            f"{summary.mean:.{digits}g}",
            11,
            align="left",
        )
        label_box = (plot_bottom + 4, int(x - slot / 2), plot_bottom + AXIS_BOTTOM - 4, int(x + slot / 2))
        draw_text(draw, label_box, label, 12)


def render_evaluation_figure(evaluation) -> np.ndarray:
    """The figure of a `SamplerEvaluation` as `(H, W, 3)` uint8: a header line, then one panel per measure (in the
    table's order) with a point and interval per group (the sampler's own measures, then each mask type)."""
    from .sampler_evaluation import MASK_MEASURES, SAMPLER_MEASURES

    panels = [(name, _panel_points(evaluation, name)) for name in SAMPLER_MEASURES + MASK_MEASURES]
    panels = [(name, points) for name, points in panels if points]
    rows = max(1, math.ceil(len(panels) / PANEL_COLUMNS))
    width, height = PANEL_COLUMNS * PANEL_WIDTH, HEADER_HEIGHT + rows * PANEL_HEIGHT
    image = Image.new("RGB", (width, height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    header = (
        f"Sampler evaluation: {evaluation.num_clips} clips, N = {evaluation.num_tokens} tokens; mean and "
        f"{evaluation.confidence:.0%} bootstrap interval over clips; dashed: a motion-blind uniform sampler"
    )
    draw_text(draw, (4, 8, HEADER_HEIGHT, width - 8), header if panels else "no defined values", 14)
    for number, (name, points) in enumerate(panels):
        row, column = divmod(number, PANEL_COLUMNS)
        top, left = HEADER_HEIGHT + row * PANEL_HEIGHT, column * PANEL_WIDTH
        _draw_panel(draw, top, left, name, points, reference_value(name, evaluation.num_tokens))
    return np.asarray(image)


def save_evaluation_figure(evaluation, path: str | os.PathLike) -> Path:
    """Render and write the figure as PNG; returns the path."""
    return save_image(render_evaluation_figure(evaluation), path)


__all__ = ["reference_value", "render_evaluation_figure", "save_evaluation_figure"]
