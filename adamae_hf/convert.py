"""Checkpoint converters.

1. `convert_authors_checkpoint`: the authors' released `.pth` files (timm-style keys, DESIGN.md §3), pretraining or
   fine-tuned, into an AdaMAE folder (safetensors + config + the Hub custom-code files).
2. `convert_videomae_to_adamae`: a transformers VideoMAE folder (VideoMAEForPreTraining or VideoMAEModel) into an
   AdaMAE pretraining folder with a freshly initialised sampler, to start AdaMAE from VideoMAE weights.
3. `export_to_videomae`: an AdaMAE model into a stock transformers `VideoMAEForVideoClassification` / `VideoMAEModel`
   folder that loads without remote code.

Every conversion is strict: a source key that is not used, or a target weight that is not filled, is an error listing
the keys, never a silent partial load. The authors' files are read with `torch.load(weights_only=True)` only.

Command line: `adamae-convert {authors,videomae,to-videomae} SOURCE OUTPUT_DIR [options]`.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import VideoMAEConfig, VideoMAEForPreTraining, VideoMAEForVideoClassification, VideoMAEModel

from configuration_adamae import AdaMaeConfig
from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification, AdaMaeModel


# The reference's ViTs use 64-dimensional attention heads (ViT-S/B/L/H); heads are not stored in a checkpoint.
HEAD_DIM = 64
# The reference's sampler block always has 8 heads.
AUTHORS_SAMPLER_HEADS = 8


class ConversionError(ValueError):
    """A checkpoint does not match the layout it is converted from."""


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


def load_authors_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """Read an authors' `.pth` safely (`weights_only=True`): `{"model": sd}`, `{"module": sd}` or a bare state dict."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(checkpoint, dict):
        for wrapper in ("model", "module", "state_dict"):
            if isinstance(checkpoint.get(wrapper), dict):
                checkpoint = checkpoint[wrapper]
                break
    if not isinstance(checkpoint, dict) or not all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise ConversionError(
            f"{path} holds no state dict: expected a dict of tensors, optionally under 'model' or 'module'."
        )
    return dict(checkpoint)


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


def authors_config(
    state_dict: dict[str, torch.Tensor],
    layout: str,
    num_frames: int = 16,
    image_size: int = 224,
    mask_ratio: float = 0.95,
    **overrides,
) -> AdaMaeConfig:
    """An `AdaMaeConfig` for an authors' state dict: sizes from the tensors' shapes; frames, image size, mask ratio and
    head counts (not stored in the file) from the arguments, defaulting to the paper's setting."""
    prefix = "encoder." if layout == "pretraining" else ""
    hidden_size, num_channels, tubelet_size, patch_size, _ = state_dict[f"{prefix}patch_embed.proj.weight"].shape
    kwargs = dict(
        image_size=image_size,
        num_frames=num_frames,
        patch_size=patch_size,
        num_channels=num_channels,
        tubelet_size=tubelet_size,
        hidden_size=hidden_size,
        num_hidden_layers=_count_blocks(state_dict, rf"{re.escape(prefix)}blocks\.(\d+)\.norm1\.weight"),
        num_attention_heads=max(hidden_size // HEAD_DIM, 1),
        intermediate_size=state_dict[f"{prefix}blocks.0.mlp.fc1.weight"].shape[0],
        qkv_bias=f"{prefix}blocks.0.attn.q_bias" in state_dict,
        mask_ratio=mask_ratio,
    )
    if layout == "pretraining":
        decoder_hidden_size = state_dict["encoder_to_decoder.weight"].shape[0]
        sampler_hidden_size = state_dict["encoder.get_token_probs.0.norm1.weight"].shape[0]
        kwargs.update(
            decoder_hidden_size=decoder_hidden_size,
            decoder_num_hidden_layers=_count_blocks(state_dict, r"decoder\.blocks\.(\d+)\.norm1\.weight"),
            decoder_num_attention_heads=max(decoder_hidden_size // HEAD_DIM, 1),
            decoder_intermediate_size=state_dict["decoder.blocks.0.mlp.fc1.weight"].shape[0],
            sampler_hidden_size=sampler_hidden_size,
            sampler_num_attention_heads=AUTHORS_SAMPLER_HEADS,
            sampler_intermediate_size=state_dict["encoder.get_token_probs.0.mlp.fc1.weight"].shape[0],
            mask_type="adaptive",
        )
    else:
        kwargs.update(
            use_mean_pooling="fc_norm.weight" in state_dict,
            num_labels=state_dict["head.weight"].shape[0],
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
    rules = [(re.compile(pattern), target) for pattern, target in (
        AUTHORS_PRETRAINING_RULES if layout == "pretraining" else AUTHORS_FINETUNED_RULES
    )]  # fmt: skip
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


def convert_authors_checkpoint(
    checkpoint_path: str | Path,
    output_dir: str | Path | None = None,
    num_frames: int = 16,
    image_size: int = 224,
    mask_ratio: float = 0.95,
    id2label: dict[int, str] | None = None,
    verbose: bool = False,
    **config_overrides,
) -> AdaMaeForPreTraining | AdaMaeForVideoClassification:
    """Convert an authors' `.pth` (pretraining → `AdaMaeForPreTraining`, fine-tuned → `AdaMaeForVideoClassification`)
    and, with `output_dir`, save it there with the Hub custom-code files."""
    _print(f"[1/4] Reading {checkpoint_path} (weights_only=True)", verbose)
    state_dict = load_authors_state_dict(checkpoint_path)
    layout = detect_authors_layout(state_dict)
    _print(f"[2/4] Layout: {layout}, {len(state_dict)} tensors", verbose)
    if id2label is not None:
        config_overrides.update(id2label=dict(id2label), label2id={v: k for k, v in dict(id2label).items()})
    config = authors_config(state_dict, layout, num_frames, image_size, mask_ratio, **config_overrides)
    mapped, unused = map_authors_state_dict(state_dict, layout, verbose)
    model_class = AdaMaeForPreTraining if layout == "pretraining" else AdaMaeForVideoClassification
    model = model_class(config)
    _print(f"[3/4] Loading into {model_class.__name__} ({sum(p.numel() for p in model.parameters()):,} parameters)", verbose)
    _strict_load(model, mapped, str(checkpoint_path), unused)
    model.eval()
    if output_dir is not None:
        model.save_pretrained(output_dir)
        _print(f"[4/4] Saved to {output_dir}", verbose)
    return model


# ---------------------------------------------------------------------------------------------------------------------
# 2. transformers VideoMAE -> AdaMAE


def _normalise_videomae_key(key: str) -> str:
    """Older transformers releases stored VideoMAE's query/value biases as `q_bias` / `v_bias`."""
    return key.replace("attention.attention.q_bias", "attention.attention.query.bias").replace(
        "attention.attention.v_bias", "attention.attention.value.bias"
    )


def _drop_zero_key_biases(state_dict: dict[str, torch.Tensor], source: str) -> dict[str, torch.Tensor]:
    """Some transformers releases give VideoMAE's keys a bias. It is zero unless trained, and it cancels in the softmax
    anyway; AdaMAE (like the reference) has none, so a zero one is dropped and a non-zero one is an error."""
    kept = {}
    for key, tensor in state_dict.items():
        if key.endswith("attention.attention.key.bias"):
            if torch.count_nonzero(tensor):
                raise ConversionError(f"{source}: {key} is non-zero; AdaMAE's attention keys have no bias.")
            continue
        kept[key] = tensor
    return kept


def adamae_config_from_videomae(videomae_config: VideoMAEConfig, **overrides) -> AdaMaeConfig:
    """An `AdaMaeConfig` with the architecture of a `VideoMAEConfig`."""
    fields = (
        "image_size", "patch_size", "num_channels", "num_frames", "tubelet_size", "hidden_size", "num_hidden_layers",
        "num_attention_heads", "intermediate_size", "hidden_act", "hidden_dropout_prob",
        "attention_probs_dropout_prob", "initializer_range", "layer_norm_eps", "use_mean_pooling",
        "decoder_hidden_size", "decoder_num_hidden_layers", "decoder_num_attention_heads",
        "decoder_intermediate_size", "norm_pix_loss", "id2label", "label2id",
    )  # fmt: skip
    kwargs = {name: getattr(videomae_config, name) for name in fields if hasattr(videomae_config, name)}
    kwargs["qkv_bias"] = getattr(videomae_config, "qv_bias", getattr(videomae_config, "qkv_bias", True))
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
    state_dict = {_normalise_videomae_key(k): v for k, v in videomae.state_dict().items()}
    if isinstance(videomae, VideoMAEModel):
        state_dict = {f"videomae.{k}": v for k, v in state_dict.items()}
    state_dict = _drop_zero_key_biases(state_dict, "the VideoMAE checkpoint")
    # VideoMAE keeps its position tables outside the state dict; AdaMAE recomputes them identically.
    config = adamae_config_from_videomae(videomae.config, mask_type=mask_type, mask_ratio=mask_ratio, **config_overrides)
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
        _print(f"[3/3] Saved to {output_dir}", verbose)
    return model


def _group(keys: list[str]) -> str:
    groups = sorted({".".join(k.split(".")[:2]) if k.startswith("videomae.") else k.split(".")[0] for k in keys})
    return ", ".join(groups) or "nothing"


# ---------------------------------------------------------------------------------------------------------------------
# 3. AdaMAE -> stock VideoMAE


def videomae_config_from_adamae(config: AdaMaeConfig, **overrides) -> VideoMAEConfig:
    """A `VideoMAEConfig` with the architecture of an `AdaMaeConfig` (sampler settings have no VideoMAE counterpart)."""
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
        qkv_bias=config.qkv_bias,
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
    if isinstance(source, (str, Path)):
        config = AdaMaeConfig.from_pretrained(source)
        is_classifier = "AdaMaeForVideoClassification" in (config.architectures or [])
        model = (AdaMaeForVideoClassification if is_classifier else AdaMaeModel).from_pretrained(source)
    else:
        model = source
    is_classifier = isinstance(model, AdaMaeForVideoClassification)
    videomae_config = videomae_config_from_adamae(model.config)
    videomae_class = VideoMAEForVideoClassification if is_classifier else VideoMAEModel
    _print(f"[1/2] Building {videomae_class.__name__}", verbose)
    videomae = videomae_class(videomae_config)
    state_dict = dict(model.state_dict())  # our parameter names are VideoMAE's
    # Where this transformers release gives VideoMAE's keys a bias, it stays zero: the reference has none.
    for key, tensor in videomae.state_dict().items():
        if key.endswith("attention.attention.key.bias"):
            state_dict[key] = torch.zeros_like(tensor)
    _strict_load(videomae, state_dict, f"the {type(model).__name__}", [])
    videomae.eval()
    if output_dir is not None:
        videomae.save_pretrained(output_dir)
        _print(f"[2/2] Saved to {output_dir}", verbose)
    return videomae


# ---------------------------------------------------------------------------------------------------------------------
# Command line


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="adamae-convert", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    authors = commands.add_parser("authors", help="the authors' released .pth (pretraining or fine-tuned) -> AdaMAE")
    authors.add_argument("checkpoint", help="path to the .pth file")
    authors.add_argument("output_dir")
    authors.add_argument("--num_frames", type=int, default=16)
    authors.add_argument("--image_size", type=int, default=224)
    authors.add_argument("--mask_ratio", type=float, default=0.95)
    authors.add_argument("--num_attention_heads", type=int, help="default: hidden size / 64")
    authors.add_argument("--decoder_num_attention_heads", type=int, help="default: decoder width / 64")
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


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "authors":
        overrides = {
            name: getattr(args, name)
            for name in ("num_attention_heads", "decoder_num_attention_heads")
            if getattr(args, name) is not None
        }
        id2label = None
        if args.id2label:
            id2label = {int(k): v for k, v in json.loads(Path(args.id2label).read_text()).items()}
        convert_authors_checkpoint(
            args.checkpoint, args.output_dir, args.num_frames, args.image_size, args.mask_ratio, id2label,
            verbose=True, **overrides,
        )  # fmt: skip
    elif args.command == "videomae":
        convert_videomae_to_adamae(args.source, args.output_dir, args.mask_type, args.mask_ratio, verbose=True)
    else:
        export_to_videomae(args.source, args.output_dir, verbose=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
