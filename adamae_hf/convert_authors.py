"""The authors' released `.pth` checkpoints (timm-style keys, pretraining or fine-tuned) into AdaMAE models.

The checkpoint layout, the key-renaming table and where each size comes from are written down in §8 of docs/method.md.
Files are read with `torch.load(weights_only=True)` only.
"""

from __future__ import annotations

import argparse
import pickle
import re
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm

from configuration_adamae import AdaMaeConfig
from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification

from .convert_common import (
    ConversionError,
    UnknownHeadCountError,
    report_progress,
    save_inference_files,
    strict_load,
)


# A checkpoint's tensors do not store the attention head count. These are the standard ViT widths and their heads:
# ViT-Ti/S/B/L/H (192/3, 384/6, 768/12, 1024/16, 1280/16), VideoMAE V2's ViT-g (1408/16) and the MAE decoders (192/3,
# 384/6, 512/8, and ViT-H's 640/8, not 640 / 64). Any other width needs the head count from the checkpoint's training
# arguments or the command line.
STANDARD_HEADS = {192: 3, 384: 6, 512: 8, 640: 8, 768: 12, 1024: 16, 1280: 16, 1408: 16}
# The size word of the reference's model names ('pretrain_videomae_base_patch16_224', 'vit_large_patch16_224'): the
# encoder's (width, heads).
MODEL_SIZES = {
    "tiny": (192, 3),
    "small": (384, 6),
    "base": (768, 12),
    "large": (1024, 16),
    "huge": (1280, 16),
    "giant": (1408, 16),
}
# The reference's sampler block always has 8 heads.
AUTHORS_SAMPLER_HEADS = 8
# Besides tensors, numbers, strings and containers, an authors' checkpoint may hold the training script's arguments (an
# `argparse.Namespace`, saved next to "model" by VideoMAE's `save_model`). Nothing else is ever unpickled.
SAFE_CHECKPOINT_GLOBALS = [argparse.Namespace]
# The paper's clip, for checkpoints without training arguments.
DEFAULT_NUM_FRAMES, DEFAULT_IMAGE_SIZE, DEFAULT_MASK_RATIO = 16, 224, 0.95


def load_authors_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict]:
    """Read an authors' `.pth` safely: `torch.load(weights_only=True)`, allowing only `SAFE_CHECKPOINT_GLOBALS`.

    Returns:
        The state dict (`{"model": sd}`, `{"module": sd}`, `{"state_dict": sd}` or a bare state dict) and the training
        arguments saved beside it as a dict (`{}` when there are none).
    """
    try:
        with torch.serialization.safe_globals(SAFE_CHECKPOINT_GLOBALS):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        found = re.search(r"GLOBAL ([\w.]+)", str(error))
        if found is None:  # not an object the safe loader refused, but data it cannot read at all
            reason = re.search(r"WeightsUnpickler error: \s*(.+)", str(error))
            raise ConversionError(
                f"{path} is not a PyTorch checkpoint ({reason.group(1) if reason else 'unreadable pickle data'})."
            ) from None
        raise ConversionError(
            f"{path} holds objects other than tensors ({found.group(1)}) and is refused: only plain weights files "
            "(tensors, numbers, strings, containers and saved training arguments) are read, since unpickling anything "
            "else can run arbitrary code."
        ) from None
    except (EOFError, KeyError, RuntimeError) as error:  # empty, truncated or not a torch file at all
        reason = f"torch.load: {type(error).__name__} {error}".strip()
        raise ConversionError(f"{path} is not a PyTorch checkpoint ({reason}).") from None
    arguments = {}
    if isinstance(checkpoint, dict):
        saved = checkpoint.get("args")
        arguments = vars(saved) if isinstance(saved, argparse.Namespace) else saved if isinstance(saved, dict) else {}
        for wrapper in ("model", "module", "state_dict"):
            if isinstance(checkpoint.get(wrapper), dict):
                checkpoint = checkpoint[wrapper]
                break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ConversionError(
            f"{path} holds no state dict: expected a dict of tensors, optionally under 'model' or 'module'."
        )
    return dict(checkpoint), dict(arguments)


def _block_rules(source: str, target: str) -> list[tuple[str, str]]:
    """Regex rules mapping one timm `Block` (`source` = e.g. 'encoder\\.blocks\\.(\\d+)') to a VideoMAE layer."""
    return [
        (rf"{source}\.norm1\.(weight|bias)", rf"{target}.layernorm_before.\2"),
        (rf"{source}\.attn\.q_bias", rf"{target}.attention.attention.query.bias"),
        (rf"{source}\.attn\.v_bias", rf"{target}.attention.attention.value.bias"),
        (rf"{source}\.attn\.proj\.(weight|bias)", rf"{target}.attention.output.dense.\2"),
        (rf"{source}\.norm2\.(weight|bias)", rf"{target}.layernorm_after.\2"),
        (rf"{source}\.mlp\.fc1\.(weight|bias)", rf"{target}.intermediate.dense.\2"),
        (rf"{source}\.mlp\.fc2\.(weight|bias)", rf"{target}.output.dense.\2"),
    ]


AUTHORS_PRETRAINING_RULES = [
    (r"encoder\.patch_embed\.proj\.(weight|bias)", r"videomae.embeddings.patch_embeddings.projection.\1"),
    *_block_rules(r"encoder\.blocks\.(\d+)", r"videomae.encoder.layer.\1"),
    (r"encoder\.norm\.(weight|bias)", r"videomae.layernorm.\1"),
    (r"encoder\.pos_embed_probs", r"sampler.position_embeddings"),
    *_block_rules(r"encoder\.get_token_probs\.0()", r"sampler.layer.0"),
    (r"encoder\.get_token_probs\.1\.(weight|bias)", r"sampler.head.\1"),
    (r"encoder_to_decoder\.weight", r"encoder_to_decoder.weight"),
    (r"mask_token", r"mask_token"),
    *_block_rules(r"decoder\.blocks\.(\d+)", r"decoder.decoder_layers.\1"),
    (r"decoder\.norm\.(weight|bias)", r"decoder.norm.\1"),
    (r"decoder\.head\.(weight|bias)", r"decoder.head.\1"),
]

AUTHORS_FINETUNED_RULES = [
    (r"patch_embed\.proj\.(weight|bias)", r"videomae.embeddings.patch_embeddings.projection.\1"),
    *_block_rules(r"blocks\.(\d+)", r"videomae.encoder.layer.\1"),
    (r"norm\.(weight|bias)", r"videomae.layernorm.\1"),
    (r"fc_norm\.(weight|bias)", r"fc_norm.\1"),
    (r"head\.(weight|bias)", r"classifier.\1"),
]

# qkv weights are split rather than renamed: (3 * D, D) rows are [query; key; value].
QKV_SOURCES = {
    "pretraining": [
        (r"encoder\.blocks\.(\d+)\.attn\.qkv\.weight", r"videomae.encoder.layer.\1"),
        (r"encoder\.get_token_probs\.0\.attn\.qkv\.weight", r"sampler.layer.0"),
        (r"decoder\.blocks\.(\d+)\.attn\.qkv\.weight", r"decoder.decoder_layers.\1"),
    ],
    "finetuned": [(r"blocks\.(\d+)\.attn\.qkv\.weight", r"videomae.encoder.layer.\1")],
}


def detect_authors_layout(state_dict: dict[str, torch.Tensor]) -> str:
    """'pretraining' (`encoder.*` keys with a decoder) or 'finetuned' (a plain VisionTransformer)."""
    if "encoder.patch_embed.proj.weight" in state_dict:
        return "pretraining"
    if "patch_embed.proj.weight" in state_dict:
        return "finetuned"
    raise ConversionError(
        "Unrecognised checkpoint: expected 'encoder.patch_embed.proj.weight' (pretraining) or "
        f"'patch_embed.proj.weight' (fine-tuned); first keys are {sorted(state_dict)[:8]}."
    )


def _count_blocks(state_dict, pattern: str) -> int:
    indices = {int(m.group(1)) for key in state_dict if (m := re.fullmatch(pattern, key))}
    return max(indices) + 1 if indices else 0


def _positive_int(value) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _encoder_heads_from_arguments(arguments: dict, width: int) -> int | None:
    """Encoder heads named by the training arguments: an explicit count, or the size word of the model name."""
    for name in ("num_heads", "encoder_num_heads", "num_attention_heads"):
        if _positive_int(arguments.get(name)):
            return arguments[name]
    model_name = arguments.get("model")
    size = re.search(rf"(?:^|_)({'|'.join(MODEL_SIZES)})(?:_|$)", model_name) if isinstance(model_name, str) else None
    if size is None:
        return None
    named_width, heads = MODEL_SIZES[size.group(1)]
    if named_width != width:
        raise UnknownHeadCountError(
            f"The checkpoint's training arguments name the model {model_name!r} ({size.group(1)}: width "
            f"{named_width}, {heads} heads) but its encoder is {width} wide; pass --num_attention_heads."
        )
    return heads


def resolve_attention_heads(width: int, part: str, flag: str, from_arguments: int | None = None) -> int:
    """Heads of a `width`-wide encoder or decoder (`part`): the training arguments' count, else the standard ViT
    width's; any other width is an error asking for `flag`."""
    if from_arguments is not None:
        return from_arguments
    if width in STANDARD_HEADS:
        return STANDARD_HEADS[width]
    standard = ", ".join(f"{w}: {h}" for w, h in STANDARD_HEADS.items())
    raise UnknownHeadCountError(
        f"The checkpoint's {part} is {width} wide, not a standard ViT width (width: heads {standard}), and it holds "
        f"no training arguments giving its head count; pass {flag} (the head count it was trained with)."
    )


def authors_config(
    state_dict: dict[str, torch.Tensor],
    layout: str,
    num_frames: int | None = None,
    image_size: int | None = None,
    mask_ratio: float | None = None,
    training_arguments: dict | None = None,
    **overrides,
) -> AdaMaeConfig:
    """An `AdaMaeConfig` for an authors' state dict: sizes from the tensors' shapes; frames, image size, mask ratio and
    head counts (not stored in the tensors) from the arguments, else the checkpoint's training arguments
    (`training_arguments`: num_frames, input_size, mask_ratio, the model name), else the paper's setting and the
    standard ViT head counts."""
    arguments = training_arguments or {}
    prefix = "encoder." if layout == "pretraining" else ""
    hidden_size, num_channels, tubelet_size, patch_size, _ = state_dict[f"{prefix}patch_embed.proj.weight"].shape
    if "num_attention_heads" not in overrides:
        overrides["num_attention_heads"] = resolve_attention_heads(
            hidden_size, "encoder", "--num_attention_heads", _encoder_heads_from_arguments(arguments, hidden_size)
        )
    kwargs = dict(
        image_size=image_size or _positive_int(arguments.get("input_size")) or DEFAULT_IMAGE_SIZE,
        num_frames=num_frames or _positive_int(arguments.get("num_frames")) or DEFAULT_NUM_FRAMES,
        patch_size=patch_size,
        num_channels=num_channels,
        tubelet_size=tubelet_size,
        hidden_size=hidden_size,
        num_hidden_layers=_count_blocks(state_dict, rf"{re.escape(prefix)}blocks\.(\d+)\.norm1\.weight"),
        intermediate_size=state_dict[f"{prefix}blocks.0.mlp.fc1.weight"].shape[0],
        qv_bias=f"{prefix}blocks.0.attn.q_bias" in state_dict,
    )
    if layout == "pretraining":
        kwargs.update(_decoder_and_sampler_sizes(state_dict, arguments, mask_ratio, overrides))
    else:
        kwargs.update(
            use_mean_pooling="fc_norm.weight" in state_dict,
            num_labels=state_dict["head.weight"].shape[0],
            mask_ratio=mask_ratio or DEFAULT_MASK_RATIO,
        )
    kwargs.update(overrides)
    config = AdaMaeConfig(**kwargs)
    if layout == "pretraining":
        _check_sampler_positions(state_dict, config)
    return config


def _decoder_and_sampler_sizes(
    state_dict: dict[str, torch.Tensor], arguments: dict, mask_ratio: float | None, overrides: dict
) -> dict:
    """The pretraining config's decoder and sampler sizes (from the tensors), the decoder's heads (unless overridden)
    and the mask ratio (the argument, else the saved training arguments', else the paper's)."""
    saved_ratio = arguments.get("mask_ratio")
    saved_ratio = saved_ratio if isinstance(saved_ratio, float) and 0 < saved_ratio < 1 else None
    decoder_hidden_size = state_dict["encoder_to_decoder.weight"].shape[0]
    sizes = dict(
        decoder_hidden_size=decoder_hidden_size,
        decoder_num_hidden_layers=_count_blocks(state_dict, r"decoder\.blocks\.(\d+)\.norm1\.weight"),
        decoder_intermediate_size=state_dict["decoder.blocks.0.mlp.fc1.weight"].shape[0],
        sampler_hidden_size=state_dict["encoder.get_token_probs.0.norm1.weight"].shape[0],
        sampler_num_attention_heads=AUTHORS_SAMPLER_HEADS,
        sampler_intermediate_size=state_dict["encoder.get_token_probs.0.mlp.fc1.weight"].shape[0],
        mask_type="adaptive",
        mask_ratio=mask_ratio or saved_ratio or DEFAULT_MASK_RATIO,
    )
    if "decoder_num_attention_heads" not in overrides:
        sizes["decoder_num_attention_heads"] = resolve_attention_heads(
            decoder_hidden_size,
            "decoder",
            "--decoder_num_attention_heads",
            _positive_int(arguments.get("decoder_num_heads")),
        )
    return sizes


def _check_sampler_positions(state_dict: dict[str, torch.Tensor], config: AdaMaeConfig):
    """The sampler's position table `(1, N, D)` must have one row per token of the chosen clip."""
    stored = state_dict["encoder.pos_embed_probs"].shape[1]
    if stored != config.num_patches:
        raise ConversionError(
            f"The sampler's position table has {stored} tokens but num_frames={config.num_frames}, "
            f"image_size={config.image_size}, patch_size={config.patch_size} give {config.num_patches}; "
            "pass the num_frames and image_size the checkpoint was trained with."
        )


def map_authors_state_dict(state_dict: dict[str, torch.Tensor], layout: str, verbose: bool = False):
    """Rename the authors' keys to ours. Returns (mapped state dict, source keys no rule matched)."""
    rules = [
        (re.compile(pattern), target)
        for pattern, target in (AUTHORS_PRETRAINING_RULES if layout == "pretraining" else AUTHORS_FINETUNED_RULES)
    ]
    qkv_rules = [(re.compile(pattern), target) for pattern, target in QKV_SOURCES[layout]]
    mapped, unused = {}, []
    for key, tensor in tqdm(state_dict.items(), desc="Mapping tensors", disable=not verbose, file=sys.stderr):
        qkv = next(((p, t) for p, t in qkv_rules if p.fullmatch(key)), None)
        if qkv is not None:
            layer = qkv[0].fullmatch(key).expand(qkv[1])
            query, key_weight, value = tensor.chunk(3, dim=0)  # (3 * D, D) -> 3 x (D, D)
            mapped[f"{layer}.attention.attention.query.weight"] = query.clone()
            mapped[f"{layer}.attention.attention.key.weight"] = key_weight.clone()
            mapped[f"{layer}.attention.attention.value.weight"] = value.clone()
            continue
        rule = next(((p, t) for p, t in rules if p.fullmatch(key)), None)
        if rule is None:
            unused.append(key)
            continue
        mapped[rule[0].fullmatch(key).expand(rule[1])] = tensor
    return mapped, unused


def authors_clip_settings(arguments: dict) -> dict:
    """Clip settings of an authors' training run that a model folder's `clip_config.json` carries beyond the model's
    frames and size: the frame stride, and for fine-tuned runs the evaluation's short side and views, and the
    segment sampling of their Something-Something fine-tuning (`--data_set SSV2`)."""
    names = {
        "sampling_rate": "sampling_rate",
        "short_side_size": "short_side_size",
        "num_clips": "test_num_segment",
        "num_crops": "test_num_crop",
    }
    settings = {ours: arguments[theirs] for ours, theirs in names.items() if _positive_int(arguments.get(theirs))}
    if arguments.get("data_set") == "SSV2":
        settings["sampling_mode"] = "segment"
    return settings


def convert_authors_checkpoint(
    checkpoint_path: str | Path,
    output_dir: str | Path | None = None,
    num_frames: int | None = None,
    image_size: int | None = None,
    mask_ratio: float | None = None,
    id2label: dict[int, str] | None = None,
    verbose: bool = False,
    **config_overrides,
) -> AdaMaeForPreTraining | AdaMaeForVideoClassification:
    """Convert an authors' `.pth` (pretraining → `AdaMaeForPreTraining`, fine-tuned → `AdaMaeForVideoClassification`)
    and, with `output_dir`, save it there with the Hub custom-code files and the video processor.

    Frames, image size, mask ratio and head counts not given here come from the checkpoint's saved training arguments,
    else the paper's setting (16 frames of 224, ratio 0.95) and the standard ViT head counts (`STANDARD_HEADS`)."""
    report_progress(f"[1/4] Reading {checkpoint_path} (weights_only=True)", verbose)
    state_dict, arguments = load_authors_checkpoint(checkpoint_path)
    layout = detect_authors_layout(state_dict)
    saved = f", training arguments of {arguments['model']!r}" if isinstance(arguments.get("model"), str) else ""
    report_progress(f"[2/4] Layout: {layout}, {len(state_dict)} tensors{saved}", verbose)
    if id2label is not None:
        config_overrides.update(id2label=dict(id2label), label2id={v: k for k, v in dict(id2label).items()})
    config = authors_config(state_dict, layout, num_frames, image_size, mask_ratio, arguments, **config_overrides)
    mapped, unused = map_authors_state_dict(state_dict, layout, verbose)
    model_class = AdaMaeForPreTraining if layout == "pretraining" else AdaMaeForVideoClassification
    model = model_class(config)
    num_parameters = sum(p.numel() for p in model.parameters())
    report_progress(f"[3/4] Loading into {model_class.__name__} ({num_parameters:,} parameters)", verbose)
    strict_load(model, mapped, str(checkpoint_path), unused)
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
        save_inference_files(output_dir, config, authors_clip_settings(arguments), verbose)
        report_progress(f"[4/4] Saved to {output_dir}", verbose)
    return model
