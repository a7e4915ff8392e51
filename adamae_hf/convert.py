"""Checkpoint converters.

1. `convert_authors_checkpoint`: the authors' released `.pth` files (timm-style keys), pretraining or
   fine-tuned, into an AdaMAE folder (safetensors + config + the Hub custom-code files).
2. `convert_videomae_to_adamae`: a transformers VideoMAE folder (VideoMAEForPreTraining or VideoMAEModel) into an
   AdaMAE pretraining folder with a freshly initialised sampler, to start AdaMAE from VideoMAE weights.
3. `export_to_videomae`: an AdaMAE model into a stock transformers `VideoMAEForVideoClassification` / `VideoMAEModel`
   folder that loads without remote code.

Every conversion is strict: a source key that is not used, or a target weight that is not filled, is an error listing
the keys, never a silent partial load. The authors' files are read with `torch.load(weights_only=True)` only.

Every written folder also gets the video processor and `clip_config.json` (`save_inference_files`), so it runs in
`pipeline("video-classification")` as it is.

Command line: `adamae-convert {authors,videomae,to-videomae} SOURCE OUTPUT_DIR [options] [--debug]`.
"""

from __future__ import annotations

import argparse
import json
import pickle
import re
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification, VideoMAEModel

from configuration_adamae import AdaMaeConfig
from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification, AdaMaeModel

from .data import VideoClipConfig, load_clip_geometry, save_video_processor
from .errors import DEBUG_FLAG, UserError, check_model_source, run_cli


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


class ConversionError(UserError, ValueError):
    """A checkpoint does not match the layout it is converted from (a user's mistake: the command line shows it as one
    line)."""


class UnknownHeadCountError(ConversionError):
    """The checkpoint does not tell its attention head count, and its width has no standard one."""


def _print(message: str, verbose: bool):
    if verbose:
        print(message, file=sys.stderr, flush=True)


def _strict_load(model: torch.nn.Module, state_dict: dict[str, torch.Tensor], source: str, unused: list[str]):
    """Load a complete state dict; raise listing every unused source key and every target weight left unfilled."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = sorted(
        f"{key}: checkpoint {tuple(state_dict[key].shape)} vs model {tuple(expected[key].shape)}"
        for key in set(state_dict) & set(expected)
        if state_dict[key].shape != expected[key].shape
    )
    problems = []
    if unused:
        problems.append(f"keys of {source} that no rule maps: {sorted(unused)}")
    if unexpected:
        problems.append(f"mapped keys the model does not have: {unexpected}")
    if missing:
        problems.append(f"model weights the checkpoint does not provide: {missing}")
    if mismatched:
        problems.append(f"shape mismatches: {mismatched}")
    if problems:
        raise ConversionError(f"Cannot convert {source}:\n  " + "\n  ".join(problems))
    model.load_state_dict(state_dict, strict=True)


# ---------------------------------------------------------------------------------------------------------------------
# 1. The authors' checkpoints


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
        saved_ratio = arguments.get("mask_ratio")
        saved_ratio = saved_ratio if isinstance(saved_ratio, float) and 0 < saved_ratio < 1 else None
        decoder_hidden_size = state_dict["encoder_to_decoder.weight"].shape[0]
        sampler_hidden_size = state_dict["encoder.get_token_probs.0.norm1.weight"].shape[0]
        if "decoder_num_attention_heads" not in overrides:
            overrides["decoder_num_attention_heads"] = resolve_attention_heads(
                decoder_hidden_size,
                "decoder",
                "--decoder_num_attention_heads",
                _positive_int(arguments.get("decoder_num_heads")),
            )
        kwargs.update(
            decoder_hidden_size=decoder_hidden_size,
            decoder_num_hidden_layers=_count_blocks(state_dict, r"decoder\.blocks\.(\d+)\.norm1\.weight"),
            decoder_intermediate_size=state_dict["decoder.blocks.0.mlp.fc1.weight"].shape[0],
            sampler_hidden_size=sampler_hidden_size,
            sampler_num_attention_heads=AUTHORS_SAMPLER_HEADS,
            sampler_intermediate_size=state_dict["encoder.get_token_probs.0.mlp.fc1.weight"].shape[0],
            mask_type="adaptive",
            mask_ratio=mask_ratio or saved_ratio or DEFAULT_MASK_RATIO,
        )
    else:
        kwargs.update(
            use_mean_pooling="fc_norm.weight" in state_dict,
            num_labels=state_dict["head.weight"].shape[0],
            mask_ratio=mask_ratio or DEFAULT_MASK_RATIO,
        )
    kwargs.update(overrides)
    config = AdaMaeConfig(**kwargs)
    if layout == "pretraining":
        stored = state_dict["encoder.pos_embed_probs"].shape[1]
        if stored != config.num_patches:
            raise ConversionError(
                f"The sampler's position table has {stored} tokens but num_frames={config.num_frames}, "
                f"image_size={config.image_size}, patch_size={config.patch_size} give {config.num_patches}; "
                "pass the num_frames and image_size the checkpoint was trained with."
            )
    return config


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
    _print(f"[1/4] Reading {checkpoint_path} (weights_only=True)", verbose)
    state_dict, arguments = load_authors_checkpoint(checkpoint_path)
    layout = detect_authors_layout(state_dict)
    saved = f", training arguments of {arguments['model']!r}" if isinstance(arguments.get("model"), str) else ""
    _print(f"[2/4] Layout: {layout}, {len(state_dict)} tensors{saved}", verbose)
    if id2label is not None:
        config_overrides.update(id2label=dict(id2label), label2id={v: k for k, v in dict(id2label).items()})
    config = authors_config(state_dict, layout, num_frames, image_size, mask_ratio, arguments, **config_overrides)
    mapped, unused = map_authors_state_dict(state_dict, layout, verbose)
    model_class = AdaMaeForPreTraining if layout == "pretraining" else AdaMaeForVideoClassification
    model = model_class(config)
    num_parameters = sum(p.numel() for p in model.parameters())
    _print(f"[3/4] Loading into {model_class.__name__} ({num_parameters:,} parameters)", verbose)
    _strict_load(model, mapped, str(checkpoint_path), unused)
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
        save_inference_files(output_dir, config, authors_clip_settings(arguments), verbose)
        _print(f"[4/4] Saved to {output_dir}", verbose)
    return model


def save_inference_files(
    output_dir: str | Path, config: AdaMaeConfig, clip_settings: dict | None = None, verbose: bool = False
):
    """Write `clip_config.json` and the video processor beside a converted model (after its `save_pretrained`), so
    that the folder runs in `pipeline("video-classification")` and `run_finetune.py` with the model's clip: frames,
    frame size and normalisation from `config`, other clip settings (frame stride, evaluation views) from
    `clip_settings`, else `VideoClipConfig`'s defaults. A model with non-square frames gets none (the evaluation crop
    is square)."""
    height, width = config.frame_size
    if height != width:
        _print(f"No video processor: frames are {height}x{width}, the evaluation crop is square", verbose)
        return
    settings = {**(clip_settings or {}), "num_frames": config.num_frames, "crop_size": height}
    settings.update(image_mean=list(config.image_mean), image_std=list(config.image_std))
    if (settings.get("short_side_size") or height) < height:  # the crop is cut from frames of that short side
        del settings["short_side_size"]
    if settings.get("num_crops") not in (None, 1, 3):
        del settings["num_crops"]
    save_video_processor(output_dir, VideoClipConfig(**settings))


# ---------------------------------------------------------------------------------------------------------------------
# 2. transformers VideoMAE -> AdaMAE


def adamae_config_from_videomae(videomae_config: VideoMAEConfig, **overrides) -> AdaMaeConfig:
    """An `AdaMaeConfig` with the architecture of a `VideoMAEConfig`."""
    fields = (
        "image_size",
        "patch_size",
        "num_channels",
        "num_frames",
        "tubelet_size",
        "hidden_size",
        "num_hidden_layers",
        "num_attention_heads",
        "intermediate_size",
        "hidden_act",
        "hidden_dropout_prob",
        "attention_probs_dropout_prob",
        "initializer_range",
        "layer_norm_eps",
        "use_mean_pooling",
        "decoder_hidden_size",
        "decoder_num_hidden_layers",
        "decoder_num_attention_heads",
        "decoder_intermediate_size",
        "norm_pix_loss",
        "id2label",
        "label2id",
        "qv_bias",
    )
    kwargs = {name: getattr(videomae_config, name) for name in fields if hasattr(videomae_config, name)}
    kwargs.update(overrides)
    return AdaMaeConfig(**kwargs)


def convert_videomae_to_adamae(
    source: str | Path | torch.nn.Module,
    output_dir: str | Path | None = None,
    mask_type: str = "adaptive",
    mask_ratio: float = 0.95,
    verbose: bool = False,
    **config_overrides,
) -> AdaMaeForPreTraining:
    """Start AdaMAE from VideoMAE weights: a `VideoMAEForPreTraining` (encoder + decoder) or `VideoMAEModel` (encoder;
    the decoder is then new) folder, Hub id or model. The sampler is freshly initialised, as are any weights the source
    lacks; they are listed."""
    _print(f"[1/3] Loading VideoMAE from {source if not isinstance(source, torch.nn.Module) else 'a model'}", verbose)
    if isinstance(source, torch.nn.Module):
        videomae = source
    else:
        videomae_config = VideoMAEConfig.from_pretrained(source)
        is_pretraining = "VideoMAEForPreTraining" in (videomae_config.architectures or [])
        videomae = (VideoMAEForPreTraining if is_pretraining else VideoMAEModel).from_pretrained(source)
    state_dict = dict(videomae.state_dict())  # our parameter names are VideoMAE's
    if isinstance(videomae, VideoMAEModel):
        state_dict = {f"videomae.{k}": v for k, v in state_dict.items()}
    # VideoMAE keeps its position tables outside the state dict; AdaMAE recomputes them identically.
    config = adamae_config_from_videomae(
        videomae.config, mask_type=mask_type, mask_ratio=mask_ratio, **config_overrides
    )
    model = AdaMaeForPreTraining(config)
    expected = model.state_dict()
    unused = sorted(set(state_dict) - set(expected))
    if unused:
        raise ConversionError(f"VideoMAE weights with no AdaMAE counterpart: {unused}")
    new = sorted(set(expected) - set(state_dict))
    _print(f"[2/3] {len(state_dict)} tensors from VideoMAE; newly initialised: {_group(new)}", verbose)
    _strict_load(model, {**{k: expected[k] for k in new}, **state_dict}, "the VideoMAE checkpoint", [])
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
        save_inference_files(output_dir, config, verbose=verbose)
        _print(f"[3/3] Saved to {output_dir}", verbose)
    return model


def _group(keys: list[str]) -> str:
    groups = sorted({".".join(k.split(".")[:2]) if k.startswith("videomae.") else k.split(".")[0] for k in keys})
    return ", ".join(groups) or "nothing"


# ---------------------------------------------------------------------------------------------------------------------
# 3. AdaMAE -> stock VideoMAE


def videomae_config_from_adamae(config: AdaMaeConfig, **overrides) -> VideoMAEConfig:
    """A `VideoMAEConfig` with the architecture of an `AdaMaeConfig` (the sampler has no VideoMAE counterpart)."""
    kwargs = dict(
        image_size=config.image_size,
        patch_size=config.patch_size,
        num_channels=config.num_channels,
        num_frames=config.num_frames,
        tubelet_size=config.tubelet_size,
        hidden_size=config.hidden_size,
        num_hidden_layers=config.num_hidden_layers,
        num_attention_heads=config.num_attention_heads,
        intermediate_size=config.intermediate_size,
        hidden_act=config.hidden_act,
        hidden_dropout_prob=config.hidden_dropout_prob,
        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
        initializer_range=config.initializer_range,
        layer_norm_eps=config.layer_norm_eps,
        qv_bias=config.qv_bias,
        use_mean_pooling=config.use_mean_pooling,
        decoder_hidden_size=config.decoder_hidden_size,
        decoder_num_hidden_layers=config.decoder_num_hidden_layers,
        decoder_num_attention_heads=config.decoder_num_attention_heads,
        decoder_intermediate_size=config.decoder_intermediate_size,
        norm_pix_loss=config.norm_pix_loss,
        id2label=config.id2label,
        label2id=config.label2id,
    )
    kwargs.update(overrides)
    return VideoMAEConfig(**kwargs)


def export_to_videomae(
    source: str | Path | AdaMaeModel | AdaMaeForVideoClassification,
    output_dir: str | Path | None = None,
    verbose: bool = False,
) -> VideoMAEModel | VideoMAEForVideoClassification:
    """Write an AdaMAE classifier (or encoder) as a stock `VideoMAEForVideoClassification` (or `VideoMAEModel`) that
    loads with plain transformers, no remote code.

    The logits equal ours up to float rounding: stock VideoMAE's `fc_norm` uses LayerNorm eps 1e-5 where the reference
    (and AdaMAE) use `config.layer_norm_eps` (1e-6), a difference of order 1e-6 relative on the pooled features.
    """
    clip_settings = None
    if isinstance(source, (str, Path)):
        if Path(source).is_dir() and not (Path(source) / "config.json").is_file():
            raise ConversionError(f"{source} has no config.json; expected an AdaMAE model folder (config + weights).")
        config_dict, _ = AdaMaeConfig.get_config_dict(source)
        if config_dict.get("model_type") != AdaMaeConfig.model_type:
            raise ConversionError(
                f"{source} holds a {config_dict.get('model_type')!r} model; expected an AdaMAE ('adamae') folder."
            )
        config = AdaMaeConfig.from_pretrained(source)
        is_classifier = "AdaMaeForVideoClassification" in (config.architectures or [])
        model = (AdaMaeForVideoClassification if is_classifier else AdaMaeModel).from_pretrained(source)
        clip_settings = load_clip_geometry(source) if Path(source).is_dir() else None
    else:
        model = source
    is_classifier = isinstance(model, AdaMaeForVideoClassification)
    videomae_config = videomae_config_from_adamae(model.config)
    videomae_class = VideoMAEForVideoClassification if is_classifier else VideoMAEModel
    _print(f"[1/2] Building {videomae_class.__name__}", verbose)
    videomae = videomae_class(videomae_config)
    state_dict = dict(model.state_dict())  # our parameter names are VideoMAE's
    _strict_load(videomae, state_dict, f"the {type(model).__name__}", [])
    videomae.eval()
    if output_dir is not None:
        videomae.save_pretrained(output_dir)
        save_inference_files(output_dir, model.config, clip_settings, verbose)
        _print(f"[2/2] Saved to {output_dir}", verbose)
    return videomae


# ---------------------------------------------------------------------------------------------------------------------
# Command line


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


if __name__ == "__main__":
    raise SystemExit(main())
