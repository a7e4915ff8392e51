"""Small checkpoints in foreign layouts, built in the tests: the authors' timm-style state dicts and a tiny
transformers VideoMAE config. Used by test_convert.py and test_finetune_model.py."""

import argparse

import torch
from tiny_configs import TINY
from transformers import VideoMAEConfig


VIDEOMAE_ABSENT = ("sampler_num_attention_heads", "mask_ratio")


# The authors' ViT, tiny: 8 frames of 32x32, tubelet 2, patch 8 -> 64 tokens; ViT-Ti's width 192 (3 heads of 64) in
# encoder and decoder, standard widths whose head count the converter knows without being told.
WIDTH, DEPTH, DECODER_WIDTH, DECODER_DEPTH, SAMPLER_HEADS, NUM_TOKENS = 192, 2, 192, 1, 8, 64
HEADS, DECODER_HEADS = 3, 3


def authors_block_tensors(prefix, width, qv_bias, generator):
    def rand(*shape, scale=0.05):
        return torch.randn(*shape, generator=generator) * scale

    tensors = {
        f"{prefix}.norm1.weight": 1 + rand(width),
        f"{prefix}.norm1.bias": rand(width),
        f"{prefix}.attn.qkv.weight": rand(3 * width, width, scale=0.1),
        f"{prefix}.attn.proj.weight": rand(width, width, scale=0.1),
        f"{prefix}.attn.proj.bias": rand(width),
        f"{prefix}.norm2.weight": 1 + rand(width),
        f"{prefix}.norm2.bias": rand(width),
        f"{prefix}.mlp.fc1.weight": rand(4 * width, width, scale=0.1),
        f"{prefix}.mlp.fc1.bias": rand(4 * width),
        f"{prefix}.mlp.fc2.weight": rand(width, 4 * width, scale=0.1),
        f"{prefix}.mlp.fc2.bias": rand(width),
    }
    if qv_bias:
        tensors[f"{prefix}.attn.q_bias"] = rand(width)
        tensors[f"{prefix}.attn.v_bias"] = rand(width)
    return tensors


def authors_pretraining_state_dict(seed=0, width=WIDTH, decoder_width=DECODER_WIDTH):
    generator = torch.Generator().manual_seed(seed)
    state = {
        "encoder.patch_embed.proj.weight": torch.randn(width, 3, 2, 8, 8, generator=generator) * 0.05,
        "encoder.patch_embed.proj.bias": torch.randn(width, generator=generator) * 0.05,
        "encoder.norm.weight": 1 + torch.randn(width, generator=generator) * 0.05,
        "encoder.norm.bias": torch.randn(width, generator=generator) * 0.05,
        "encoder.pos_embed_probs": torch.randn(1, NUM_TOKENS, width, generator=generator) * 0.5,
        "encoder.get_token_probs.1.weight": torch.randn(1, width, generator=generator) * 0.5,
        "encoder.get_token_probs.1.bias": torch.randn(1, generator=generator),
        "encoder_to_decoder.weight": torch.randn(decoder_width, width, generator=generator) * 0.1,
        "mask_token": torch.randn(1, 1, decoder_width, generator=generator) * 0.02,
        "decoder.norm.weight": 1 + torch.randn(decoder_width, generator=generator) * 0.05,
        "decoder.norm.bias": torch.randn(decoder_width, generator=generator) * 0.05,
        "decoder.head.weight": torch.randn(3 * 2 * 8 * 8, decoder_width, generator=generator) * 0.1,
        "decoder.head.bias": torch.randn(3 * 2 * 8 * 8, generator=generator) * 0.05,
    }
    for i in range(DEPTH):
        state.update(authors_block_tensors(f"encoder.blocks.{i}", width, True, generator))
    state.update(authors_block_tensors("encoder.get_token_probs.0", width, False, generator))
    for i in range(DECODER_DEPTH):
        state.update(authors_block_tensors(f"decoder.blocks.{i}", decoder_width, True, generator))
    return state


def authors_finetuned_state_dict(num_classes=5, seed=0, width=WIDTH):
    generator = torch.Generator().manual_seed(seed)
    state = {
        "patch_embed.proj.weight": torch.randn(width, 3, 2, 8, 8, generator=generator) * 0.05,
        "patch_embed.proj.bias": torch.randn(width, generator=generator) * 0.05,
        "fc_norm.weight": 1 + torch.randn(width, generator=generator) * 0.05,
        "fc_norm.bias": torch.randn(width, generator=generator) * 0.05,
        "head.weight": torch.randn(num_classes, width, generator=generator) * 0.1,
        "head.bias": torch.randn(num_classes, generator=generator) * 0.1,
    }
    for i in range(DEPTH):
        state.update(authors_block_tensors(f"blocks.{i}", width, True, generator))
    return state


def save_authors_checkpoint(path, state_dict, **training_arguments):
    """Save as the authors' training scripts do: `{"model": sd}`, with the script's arguments (an argparse.Namespace)
    under "args" when any are given, and an optimizer state and epoch beside them."""
    checkpoint = {"model": state_dict}
    if training_arguments:
        checkpoint.update(
            args=argparse.Namespace(**training_arguments), epoch=799, optimizer={"state": {}, "param_groups": []}
        )
    torch.save(checkpoint, path)
    return path


def tiny_videomae_config(**overrides):
    # layer_norm_eps 1e-5 so that VideoMAE's hard-coded decoder norm eps (1e-5) matches ours
    # the same tiny architecture as the AdaMAE tests' (tiny_configs.TINY), less what VideoMAE has no field for
    architecture = {name: value for name, value in TINY.items() if name not in VIDEOMAE_ABSENT}
    return VideoMAEConfig(**{**architecture, "layer_norm_eps": 1e-5, **overrides})
