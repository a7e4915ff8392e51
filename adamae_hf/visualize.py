"""`adamae-visualize`: AdaMAE's picture of a video from the command line (the drawing is `adamae_hf.mask_figure`).

Writes `masks.gif` and a PNG strip of a few frames, `masks.png`::

    adamae-visualize --model outputs/demo --video clip.mp4 --out masks.gif [--mask_ratio 0.95] [--seed 0]
    adamae-visualize --model outputs/demo --video clip.mp4 --out compare.gif --compare

From Python (`visualize` and `compare` are `adamae_hf.mask_figure`'s, also importable from here)::

    from adamae_hf.visualize import visualize
    visualize("outputs/demo", "clip.mp4", "masks.gif")  # -> [Path("masks.gif"), Path("masks.png")]
"""

from __future__ import annotations

import argparse
import os
import sys

from .errors import DEBUG_FLAG, UserError, check_model_source, run_cli
from .figure_rendering import DEFAULT_ERROR_MAX, DEFAULT_FPS, DEFAULT_STRIP_FRAMES
from .mask_figure import (
    COMPARE_MASK_RATIO,
    COMPARE_MASK_TYPES,
    DEFAULT_SAMPLING_RATE,
    MIN_PANEL_SIDE,
    compare,
    visualize,
)
from .training import quiet_library_output


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
        "--mask_ratio",
        type=float,
        default=None,
        help=f"Mask ratio (default: the model's; {COMPARE_MASK_RATIO} with --compare).",
    )
    parser.add_argument("--seed", type=int, default=0, help="Seed of the mask noise: same seed, same picture.")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="Comparison figure: one row per mask type (adaptive, random, tube, frame) at one ratio.",
    )
    parser.add_argument(
        "--mask_types",
        nargs="+",
        choices=COMPARE_MASK_TYPES,
        default=list(COMPARE_MASK_TYPES),
        help="Rows of --compare, in order.",
    )
    parser.add_argument(
        "--sampling_rate",
        type=int,
        default=None,
        help=f"Frame stride (default: {DEFAULT_SAMPLING_RATE}, lowered for videos too short for it).",
    )
    parser.add_argument(
        "--scale",
        type=int,
        default=None,
        help=f"Integer enlargement of the panels (default: enough for {MIN_PANEL_SIDE}-pixel panels).",
    )
    parser.add_argument("--fps", type=float, default=DEFAULT_FPS, help="Frame rate of the animation.")
    parser.add_argument(
        "--error_max",
        type=float,
        default=DEFAULT_ERROR_MAX,
        help="Per-patch MSE (pixels in [0, 1]) where the error colour scale saturates.",
    )
    parser.add_argument("--strip_frames", type=int, default=DEFAULT_STRIP_FRAMES, help="Frames in the PNG strip.")
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
        seed=args.seed,
        sampling_rate=args.sampling_rate,
        scale=args.scale,
        fps=args.fps,
        error_max=args.error_max,
        device=args.device,
    )
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


__all__ = ["build_parser", "compare", "main", "visualize"]


if __name__ == "__main__":
    sys.exit(main())
