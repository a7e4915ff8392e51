"""Tiny AdaMAE configurations shared by the tests: 8 frames of 32x32, patch 8, tubelet 2 -> 4 x 4 x 4 = 64 tokens."""

from configuration_adamae import AdaMaeConfig


TINY = dict(
    image_size=32,
    patch_size=8,
    num_frames=8,
    tubelet_size=2,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    decoder_hidden_size=16,
    decoder_num_hidden_layers=1,
    decoder_num_attention_heads=2,
    decoder_intermediate_size=32,
    sampler_num_attention_heads=2,
    mask_ratio=0.75,
)


def tiny_config(**overrides) -> AdaMaeConfig:
    return AdaMaeConfig(**{**TINY, **overrides})
