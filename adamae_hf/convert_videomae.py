"""transformers VideoMAE in and out: start AdaMAE from VideoMAE weights (`convert_videomae_to_adamae`), and write an
AdaMAE model as a stock VideoMAE folder that loads without remote code (`export_to_videomae`). Our parameter names are
VideoMAE's, so both directions copy the state dict as it is."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification, VideoMAEModel

from configuration_adamae import AdaMaeConfig
from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification, AdaMaeModel

from .convert_common import ConversionError, report_progress, save_inference_files, strict_load
from .data import load_clip_geometry


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
    report_progress(
        f"[1/3] Loading VideoMAE from {source if not isinstance(source, torch.nn.Module) else 'a model'}", verbose
    )
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
    report_progress(f"[2/3] {len(state_dict)} tensors from VideoMAE; newly initialised: {_group(new)}", verbose)
    strict_load(model, {**{k: expected[k] for k in new}, **state_dict}, "the VideoMAE checkpoint", [])
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
        save_inference_files(output_dir, config, verbose=verbose)
        report_progress(f"[3/3] Saved to {output_dir}", verbose)
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
    report_progress(f"[1/2] Building {videomae_class.__name__}", verbose)
    videomae = videomae_class(videomae_config)
    state_dict = dict(model.state_dict())  # our parameter names are VideoMAE's
    strict_load(videomae, state_dict, f"the {type(model).__name__}", [])
    videomae.eval()
    if output_dir is not None:
        videomae.save_pretrained(output_dir)
        save_inference_files(output_dir, model.config, clip_settings, verbose)
        report_progress(f"[2/2] Saved to {output_dir}", verbose)
    return videomae
