"""The model `run_pretrain.py` trains: its config (the paper's ViT-B/16, `--config_name` or `--model_name_or_path`,
then `--config_overrides`, then the model flags, with the clip geometry from the data arguments) and its weights."""

from __future__ import annotations

import inspect
import json
from typing import Any

from configuration_adamae import AdaMaeConfig
from modeling_adamae import AdaMaeForPreTraining

from .data import VideoClipConfig
from .errors import check_model_source
from .pretrain_arguments import ModelArguments


def parse_config_overrides(overrides: str | None) -> dict[str, Any]:
    """'hidden_size=384,mask_ratio=0.9,qkv_bias=false' -> {"hidden_size": 384, "mask_ratio": 0.9, "qkv_bias": False}.

    Values are read as JSON (numbers, true/false, null) and otherwise kept as strings. Keys must be AdaMaeConfig
    arguments other than the frame geometry, which the data arguments set. (`PretrainedConfig.update_from_string`
    types a value by the attribute's current one, so it could not set `null`: a width that follows `hidden_size`.)
    """
    if not overrides:
        return {}
    # the constructor's arguments, and the old names it still reads (`attribute_map`: qkv_bias for qv_bias)
    known = set(inspect.signature(AdaMaeConfig.__init__).parameters) - {"self", "kwargs"} | set(
        AdaMaeConfig.attribute_map
    )
    values = {}
    for item in overrides.split(","):
        key, separator, text = item.partition("=")
        key = key.strip()
        if not separator or not key:
            raise ValueError(f"config_overrides must look like 'name=value,name=value', got the item {item!r}.")
        if key in ("num_frames", "image_size"):
            flag = "num_frames" if key == "num_frames" else "crop_size"
            raise ValueError(f"Set {key} with --{flag}, not config_overrides.")
        if key not in known:
            raise ValueError(
                f"config_overrides: {key!r} is not an AdaMaeConfig argument; expected one of {sorted(known)}."
            )
        text = text.strip()
        if text.lower() in ("true", "false", "null"):  # Python spellings (True, False) too
            text = text.lower()
        try:
            values[key] = json.loads(text)
        except json.JSONDecodeError:
            values[key] = text
    return values


def build_model_config(model_args: ModelArguments, clip_config: VideoClipConfig) -> AdaMaeConfig:
    """The config to pretrain: base (paper defaults, `--config_name` or `--model_name_or_path`), then
    `--config_overrides`, then the explicit model flags, with frames and frame size from the data arguments."""
    changes = parse_config_overrides(model_args.config_overrides)
    for name in ("mask_type", "mask_ratio", "decoder_num_hidden_layers", "norm_pix_loss", "sampling_loss_weight"):
        if getattr(model_args, name) is not None:
            changes[name] = getattr(model_args, name)
    # The data fix the clip's geometry and normalisation, which the model's position tables and targets follow.
    geometry = {
        "num_frames": clip_config.num_frames,
        "image_size": clip_config.crop_size,
        "image_mean": list(clip_config.image_mean),
        "image_std": list(clip_config.image_std),
    }
    base_name = model_args.model_name_or_path or model_args.config_name
    if base_name is None:
        return AdaMaeConfig(**changes, **geometry)
    check_model_source(base_name, "--model_name_or_path" if model_args.model_name_or_path else "--config_name")

    base = AdaMaeConfig.from_pretrained(base_name)
    data_geometry = (clip_config.num_frames, (clip_config.crop_size, clip_config.crop_size))
    if model_args.model_name_or_path and (base.num_frames, base.frame_size) != data_geometry:
        raise ValueError(
            f"{model_args.model_name_or_path} was trained on {base.num_frames} frames of {base.frame_size}; the data "
            f"arguments give {clip_config.num_frames} frames of {clip_config.crop_size}x{clip_config.crop_size}. Set "
            "--num_frames and --crop_size to match (its position tables have that size)."
        )
    values = base.to_dict()
    # Widths derived from hidden_size follow a changed hidden_size unless they were set on their own.
    sampler_follows = base.sampler_hidden_size == base.hidden_size and "sampler_hidden_size" not in changes
    if "hidden_size" in changes and sampler_follows:
        values["sampler_hidden_size"] = None
        mlp_follows = base.sampler_intermediate_size == 4 * base.sampler_hidden_size
        if mlp_follows and "sampler_intermediate_size" not in changes:
            values["sampler_intermediate_size"] = None
    values.update(changes)
    values.update(geometry)
    return AdaMaeConfig.from_dict(values)


def build_model(model_args: ModelArguments, clip_config: VideoClipConfig) -> AdaMaeForPreTraining:
    config = build_model_config(model_args, clip_config)
    kwargs = {"attn_implementation": model_args.attn_implementation} if model_args.attn_implementation else {}
    if model_args.model_name_or_path:
        return AdaMaeForPreTraining.from_pretrained(model_args.model_name_or_path, config=config, **kwargs)
    return AdaMaeForPreTraining._from_config(config, **kwargs)


__all__ = ["build_model", "build_model_config", "parse_config_overrides"]
