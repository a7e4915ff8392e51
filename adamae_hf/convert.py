"""Checkpoint converters.

1. `convert_authors_checkpoint` (convert_authors.py): the authors' released `.pth` files (timm-style keys),
   pretraining or fine-tuned, into an AdaMAE folder (safetensors + config + the Hub custom-code files); their layout
   is §8 of docs/method.md.
2. `convert_videomae_to_adamae` (convert_videomae.py): a transformers VideoMAE folder (VideoMAEForPreTraining or
   VideoMAEModel) into an AdaMAE pretraining folder with a freshly initialised sampler.
3. `export_to_videomae` (convert_videomae.py): an AdaMAE model into a stock transformers
   `VideoMAEForVideoClassification` / `VideoMAEModel` folder that loads without remote code.

Every conversion is strict: a source key that is not used, or a target weight that is not filled, is an error listing
the keys, never a silent partial load (convert_common.py). Every written folder also gets the video processor and
`clip_config.json`, so it runs in `pipeline("video-classification")` as it is.

This module is the command line, and the converters' public names stay importable from it.

Command line: `adamae-convert {authors,videomae,to-videomae} SOURCE OUTPUT_DIR [options] [--debug]`.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from .convert_authors import (
    DEFAULT_IMAGE_SIZE,
    DEFAULT_MASK_RATIO,
    DEFAULT_NUM_FRAMES,
    convert_authors_checkpoint,
    resolve_attention_heads,
)
from .convert_common import ConversionError, UnknownHeadCountError
from .convert_videomae import convert_videomae_to_adamae, export_to_videomae
from .errors import DEBUG_FLAG, UserError, check_model_source, run_cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="adamae-convert",
        description=__doc__.split("\n\n")[0],
        epilog=f"A mistake (missing file, wrong checkpoint) ends with one line; add {DEBUG_FLAG} for its traceback.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    authors = commands.add_parser("authors", help="the authors' released .pth (pretraining or fine-tuned) -> AdaMAE")
    authors.add_argument("checkpoint", help="path to the .pth file")
    authors.add_argument("output_dir")
    saved = "default: the checkpoint's saved training arguments, else"
    authors.add_argument("--num_frames", type=int, help=f"{saved} {DEFAULT_NUM_FRAMES}")
    authors.add_argument("--image_size", type=int, help=f"{saved} {DEFAULT_IMAGE_SIZE}")
    authors.add_argument("--mask_ratio", type=float, help=f"{saved} {DEFAULT_MASK_RATIO}")
    standard = "the standard ViT width's (required for other widths)"
    authors.add_argument("--num_attention_heads", type=int, help=f"{saved} {standard}")
    authors.add_argument("--decoder_num_attention_heads", type=int, help=f"{saved} {standard}")
    authors.add_argument("--id2label", help="JSON file mapping class ids to names (fine-tuned checkpoints)")

    videomae = commands.add_parser("videomae", help="transformers VideoMAE folder or Hub id -> AdaMAE pretraining")
    videomae.add_argument("source")
    videomae.add_argument("output_dir")
    videomae.add_argument("--mask_type", default="adaptive")
    videomae.add_argument("--mask_ratio", type=float, default=0.95)

    export = commands.add_parser("to-videomae", help="AdaMAE folder -> stock VideoMAE folder (no remote code)")
    export.add_argument("source")
    export.add_argument("output_dir")
    return parser


def read_id2label(path: str | Path) -> dict[int, str]:
    """`{"0": "abseiling", ...}` from a JSON file, as `{0: "abseiling", ...}`."""
    expected = f'--id2label {path}: expected a JSON object mapping class ids to names, like {{"0": "abseiling"}}'
    try:
        mapping = json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise ConversionError(f"{expected}; it is not valid JSON ({error}).") from None
    if not isinstance(mapping, dict) or not all(re.fullmatch(r"\d+", str(key)) for key in mapping):
        raise ConversionError(f"{expected}; got {str(mapping)[:80]}.")
    return {int(key): str(name) for key, name in mapping.items()}


def convert(argv: list[str]):
    """The command line's work; `main` wraps it so that a user's mistake ends with one line."""
    args = build_parser().parse_args(argv)
    if args.command == "authors":
        overrides = {
            name: getattr(args, name)
            for name in ("num_attention_heads", "decoder_num_attention_heads")
            if getattr(args, name) is not None
        }
        if not Path(args.checkpoint).is_file():
            raise UserError(f"CHECKPOINT: expected an authors' .pth file, got {args.checkpoint!r}: no such file.")
        id2label = read_id2label(args.id2label) if args.id2label else None
        convert_authors_checkpoint(
            args.checkpoint,
            args.output_dir,
            args.num_frames,
            args.image_size,
            args.mask_ratio,
            id2label,
            verbose=True,
            **overrides,
        )
    elif args.command == "videomae":
        check_model_source(args.source, flag="SOURCE")
        convert_videomae_to_adamae(args.source, args.output_dir, args.mask_type, args.mask_ratio, verbose=True)
    else:
        check_model_source(args.source, flag="SOURCE")
        export_to_videomae(args.source, args.output_dir, verbose=True)


def main(argv: list[str] | None = None) -> int:
    """`adamae-convert`: exit status 0, or 1 after one line naming a user's mistake (its traceback with --debug)."""
    return run_cli(convert, argv)


__all__ = [
    "ConversionError",
    "UnknownHeadCountError",
    "build_parser",
    "convert_authors_checkpoint",
    "convert_videomae_to_adamae",
    "export_to_videomae",
    "main",
    "read_id2label",
    "resolve_attention_heads",
]


if __name__ == "__main__":
    raise SystemExit(main())
