# Copyright 2026 The adamae-hf authors. Licensed under the Apache License, Version 2.0.
"""PyTorch AdaMAE: VideoMAE's encoder and decoder with a learned adaptive token sampler (Bandara et al., CVPR 2023).

Read top to bottom as facebookresearch/mae's `models_mae.py`: the sampler picks which tokens stay visible
(`AdaMaeTokenSampler`, `generate_mask`), the encoder runs on the visible tokens only (`forward_encoder`, through
`AdaMaeModel`), the decoder predicts the masked ones (`forward_decoder`), and `forward_loss` gives the reconstruction
loss and the sampler's REINFORCE loss. Every shape is static (K visible tokens for every video), so a step can be
compiled.

The layers are transformers' v5 kind: attention dispatched through `ALL_ATTENTION_FUNCTIONS` (eager, sdpa, flash,
flex), hidden states and attentions recorded by transformers' output capture, parameter names VideoMAE's.

The method as this file implements it (the sampler, the draw of the visible tokens, both losses with their shapes, the
initialisation) is written up in docs/method.md of the adamae-hf repository.

This file is also one of the two custom-code files a Hub repository carries: it imports only torch, transformers and
`configuration_adamae`.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


# The configuration first: it checks the transformers version before anything here needs a recent one.
try:
    from .configuration_adamae import AdaMaeConfig
except ImportError as error:
    if error.name == "transformers":  # too old a transformers: the configuration's error says which version is needed
        raise
    from configuration_adamae import AdaMaeConfig  # imported as an installed top-level module, not as Hub remote code

from transformers import PreTrainedModel  # noqa: E402
from transformers import initialization as init  # noqa: E402
from transformers.activations import ACT2FN  # noqa: E402
from transformers.modeling_layers import GradientCheckpointingLayer  # noqa: E402
from transformers.modeling_outputs import BaseModelOutput, ImageClassifierOutput  # noqa: E402
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS  # noqa: E402
from transformers.models.videomae.modeling_videomae import VideoMAEPatchEmbeddings  # noqa: E402
from transformers.processing_utils import Unpack  # noqa: E402
from transformers.utils import ModelOutput, TransformersKwargs  # noqa: E402
from transformers.utils.generic import can_return_tuple  # noqa: E402
from transformers.utils.output_capturing import capture_outputs  # noqa: E402


# ---------------------------------------------------------------------------------------------------------------------
# Outputs


@dataclass
class AdaMaeForPreTrainingOutput(ModelOutput):
    """
    Output of [`AdaMaeForPreTraining`].

    Args:
        loss (`torch.FloatTensor` of shape `()`):
            `reconstruction_loss + sampling_loss`.
        reconstruction_loss (`torch.FloatTensor` of shape `()`):
            Mean squared error over the masked tokens' (normalised, with `norm_pix_loss`) pixels.
        sampling_loss (`torch.FloatTensor` of shape `()`, *optional*):
            The sampler's REINFORCE loss, already multiplied by `config.sampling_loss_weight`. `None` unless
            `mask_type="adaptive"`.
        logits (`torch.FloatTensor` of shape `(batch_size, num_masked, channels * tubelet * patch * patch)`):
            Predicted pixels of the masked tokens, in ascending token order.
        mask (`torch.BoolTensor` of shape `(batch_size, num_patches)`):
            `True` where a token was masked.
        token_probs (`torch.FloatTensor` of shape `(batch_size, num_patches)`, *optional*):
            The sampler's categorical distribution p over the tokens. `None` unless `mask_type="adaptive"`.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*):
            Encoder states of the visible tokens, `(batch_size, num_visible, hidden_size)`: the embeddings and the
            output of every layer, when `output_hidden_states=True`.
        attentions (`tuple(torch.FloatTensor)`, *optional*):
            The encoder layers' attention weights over the visible tokens, `(batch_size, num_heads, num_visible,
            num_visible)` each, when `output_attentions=True` (with an attention implementation that returns them,
            e.g. `attn_implementation="eager"`).
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    sampling_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.BoolTensor | None = None
    token_probs: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None
    attentions: tuple[torch.FloatTensor, ...] | None = None


# ---------------------------------------------------------------------------------------------------------------------
# Token bookkeeping: every function keeps static shapes.


def sinusoid_position_table(num_positions: int, width: int) -> torch.Tensor:
    """VideoMAE's fixed sin-cos table, `(1, num_positions, width)`: angle(pos, j) = pos / 10000^(2 * (j // 2) / width),
    sine on even j, cosine on odd j. Computed in float64 like the reference's numpy code, returned as float32."""
    positions = torch.arange(num_positions, dtype=torch.float64)[:, None]
    exponents = 2 * (torch.arange(width, dtype=torch.float64) // 2) / width
    angles = positions / torch.pow(10000.0, exponents)[None, :]  # (num_positions, width)
    table = torch.empty_like(angles)
    table[:, 0::2] = torch.sin(angles[:, 0::2])
    table[:, 1::2] = torch.cos(angles[:, 1::2])
    return table.to(torch.float32).unsqueeze(0)


def patchify(pixel_values: torch.Tensor, tubelet_size: int, patch_size: int) -> torch.Tensor:
    """`(B, T, C, H, W)` -> `(B, N, tubelet * patch * patch, C)`: tokens time-major then row, column (the order of
    VideoMAE's `flatten(2)` of the conv output), pixels of a token ordered (t, y, x)."""
    batch_size, num_frames, num_channels, height, width = pixel_values.shape
    t, p = tubelet_size, patch_size
    patches = pixel_values.reshape(batch_size, num_frames // t, t, num_channels, height // p, p, width // p, p)
    # (B, T/t, t, C, H/p, p, W/p, p) -> (B, T/t, H/p, W/p, t, p, p, C)
    patches = patches.permute(0, 1, 4, 6, 2, 5, 7, 3)
    num_patches = (num_frames // t) * (height // p) * (width // p)
    return patches.reshape(batch_size, num_patches, t * p * p, num_channels)


def channel_constants(values: list[float], like: torch.Tensor) -> torch.Tensor:
    """`values` as a float32 `(C,)` tensor on `like`'s device, written by fill kernels. Not `like.new_tensor(values)`:
    a copy from host memory can make the host wait until every kernel queued on the GPU has run, once per step."""
    return torch.stack([torch.full((), value, dtype=torch.float32, device=like.device) for value in values])


def fused_qkv_xavier_bound(fan_in: int, fan_out: int) -> float:
    """xavier-uniform's bound for one of query, key, value (each `fan_out x fan_in`) when, as in the reference, the
    three are rows of one fused `(3 * fan_out) x fan_in` Linear: sqrt(6 / (fan_in + 3 * fan_out))."""
    return math.sqrt(6.0 / (fan_in + 3 * fan_out))


def gather_tokens(tokens: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """Pick tokens by index: `(B, N, D)` and `(B, K)` -> `(B, K, D)`."""
    return torch.gather(tokens, 1, indices.unsqueeze(-1).expand(-1, -1, tokens.shape[-1]))


def split_visible_and_masked(bool_masked_pos: torch.Tensor, num_visible: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Indices of the visible `(B, K)` and masked `(B, N - K)` tokens, each in ascending token order.

    A stable sort of the 0/1 mask lists visible tokens first and masked ones after, both in their original order, which
    is the order the reference's boolean-mask gathers produce, with static shapes.
    """
    order = torch.argsort(bool_masked_pos.to(torch.int8), dim=1, stable=True)  # (B, N)
    return order[:, :num_visible], order[:, num_visible:]


def mask_from_visible_indices(visible_indices: torch.Tensor, num_patches: int) -> torch.Tensor:
    """`(B, K)` visible indices -> `(B, N)` bool mask, `True` = masked."""
    mask = torch.ones(visible_indices.shape[0], num_patches, dtype=torch.bool, device=visible_indices.device)
    return mask.scatter(1, visible_indices, False)


def gumbel_top_k(log_probs: torch.Tensor, num_samples: int, noise: torch.Tensor) -> torch.Tensor:
    """Draw `num_samples` distinct indices per row from the categorical `exp(log_probs)`, without replacement.

    Gumbel-top-k: the top K of log p + Gumbel noise are distributed exactly as K sequential draws without replacement
    (`torch.multinomial(p, K, replacement=False)`; Kool et al., 2019), but with static shapes and no host sync.

    Args:
        log_probs: `(B, N)` log-probabilities.
        num_samples: K.
        noise: `(B, N)` uniform noise in [0, 1), turned into Gumbel noise.

    Returns:
        `(B, K)` indices, in decreasing order of their perturbed log-probability.
    """
    uniform = noise.to(torch.float32).clamp(min=torch.finfo(torch.float32).tiny)
    gumbel = -torch.log(-torch.log(uniform))
    return torch.topk(log_probs.to(torch.float32) + gumbel, num_samples, dim=-1).indices


# ---------------------------------------------------------------------------------------------------------------------
# Building blocks: one pre-norm transformer layer, sized by its arguments, for the encoder, the sampler and the decoder


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain softmax attention. `query`, `key`, `value`: `(B, heads, L, head_dim)` -> the context `(B, L, heads,
    head_dim)` and the attention weights `(B, heads, L, L)`, the signature of transformers' attention interface."""
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling  # (B, heads, L, L)
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = F.dropout(F.softmax(scores, dim=-1), p=dropout, training=module.training)
    context = torch.matmul(weights, value).transpose(1, 2).contiguous()  # (B, L, heads, head_dim)
    return context, weights


class AdaMaeSelfAttention(nn.Module):
    """Multi-head self-attention with separate query, key and value projections. Queries and values have a bias when
    `qv_bias`; keys never do (the reference's `q_bias` / `v_bias`). The model config is read for its attention
    implementation only, live, so `set_attn_implementation` reaches every layer."""

    def __init__(self, config: AdaMaeConfig, hidden_size: int, num_heads: int, dropout: float, qv_bias: bool):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = hidden_size // num_heads
        self.scaling = self.head_dim**-0.5
        self.dropout = dropout
        self.is_causal = False
        self.query = nn.Linear(hidden_size, hidden_size, bias=qv_bias)
        self.key = nn.Linear(hidden_size, hidden_size, bias=False)
        self.value = nn.Linear(hidden_size, hidden_size, bias=qv_bias)
        for linear in (self.query, self.key, self.value):
            linear.is_fused_qkv_part = True  # initialised as a third of the reference's fused qkv layer

    def forward(
        self, hidden_states: torch.Tensor, **kwargs: Unpack[TransformersKwargs]
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`(B, L, D)` -> the context `(B, L, D)` and the attention weights `(B, heads, L, L)` (`None` from kernels
        that do not form them)."""
        head_shape = (*hidden_states.shape[:-1], self.num_heads, self.head_dim)
        query = self.query(hidden_states).view(head_shape).transpose(1, 2)  # (B, heads, L, head_dim)
        key = self.key(hidden_states).view(head_shape).transpose(1, 2)
        value = self.value(hidden_states).view(head_shape).transpose(1, 2)
        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        context, weights = attention_interface(
            self,
            query,
            key,
            value,
            None,
            is_causal=self.is_causal,
            scaling=self.scaling,
            dropout=self.dropout if self.training else 0.0,
            **kwargs,
        )
        return context.reshape(*hidden_states.shape[:-1], -1), weights


class AdaMaeSelfOutput(nn.Module):
    """The attention's output projection and dropout (the residual is the layer's)."""

    def __init__(self, hidden_size: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(hidden_states))


class AdaMaeAttention(nn.Module):
    """Self-attention and its output projection (the parameter names of VideoMAE's `attention` block)."""

    def __init__(
        self,
        config: AdaMaeConfig,
        hidden_size: int,
        num_heads: int,
        dropout: float,
        attention_dropout: float,
        qv_bias: bool,
    ):
        super().__init__()
        self.attention = AdaMaeSelfAttention(config, hidden_size, num_heads, attention_dropout, qv_bias)
        self.output = AdaMaeSelfOutput(hidden_size, dropout)

    def forward(self, hidden_states: torch.Tensor, **kwargs: Unpack[TransformersKwargs]) -> torch.Tensor:
        context, _ = self.attention(hidden_states, **kwargs)
        return self.output(context)


class AdaMaeIntermediate(nn.Module):
    """The MLP's first linear layer and activation."""

    def __init__(self, hidden_size: int, intermediate_size: int, hidden_act: str):
        super().__init__()
        self.dense = nn.Linear(hidden_size, intermediate_size)
        self.intermediate_act_fn = ACT2FN[hidden_act]

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.intermediate_act_fn(self.dense(hidden_states))


class AdaMaeOutput(nn.Module):
    """The MLP's second linear layer and dropout (the residual is the layer's)."""

    def __init__(self, intermediate_size: int, hidden_size: int, dropout: float):
        super().__init__()
        self.dense = nn.Linear(intermediate_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.dense(hidden_states))


class AdaMaeDropPath(nn.Module):
    """Stochastic depth: drop a residual branch for a whole sample with probability `drop_prob` (timm's DropPath)."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return hidden_states
        keep_prob = 1.0 - self.drop_prob
        keep = hidden_states.new_empty((hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)).bernoulli_(
            keep_prob
        )
        return hidden_states * keep / keep_prob

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class AdaMaeLayer(GradientCheckpointingLayer):
    """The pre-norm transformer block (timm's `Block`): x + drop_path(attention(norm(x))), then
    x + drop_path(mlp(norm(x))). Encoder, sampler and decoder layers differ only in the arguments.

    Args:
        config: the model config, read for the attention implementation and the MLP's activation.
        hidden_size, num_attention_heads, intermediate_size: width, heads and MLP width.
        dropout: after the attention's output projection and after the MLP.
        attention_dropout: on the attention weights.
        layer_norm_eps: of both LayerNorms.
        qv_bias: whether queries and values have a bias (keys never do).
        drop_path_rate: stochastic depth of both residual branches.
    """

    def __init__(
        self,
        config: AdaMaeConfig,
        hidden_size: int,
        num_attention_heads: int,
        intermediate_size: int,
        dropout: float,
        attention_dropout: float,
        layer_norm_eps: float,
        qv_bias: bool,
        drop_path_rate: float = 0.0,
    ):
        super().__init__()
        self.attention = AdaMaeAttention(config, hidden_size, num_attention_heads, dropout, attention_dropout, qv_bias)
        self.intermediate = AdaMaeIntermediate(hidden_size, intermediate_size, config.hidden_act)
        self.output = AdaMaeOutput(intermediate_size, hidden_size, dropout)
        self.layernorm_before = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.layernorm_after = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.drop_path = AdaMaeDropPath(drop_path_rate) if drop_path_rate > 0.0 else nn.Identity()

    def forward(self, hidden_states: torch.Tensor, **kwargs: Unpack[TransformersKwargs]) -> torch.Tensor:
        """`(B, L, hidden_size)` -> `(B, L, hidden_size)`."""
        attention_output = self.attention(self.layernorm_before(hidden_states), **kwargs)
        hidden_states = hidden_states + self.drop_path(attention_output)
        mlp_output = self.output(self.intermediate(self.layernorm_after(hidden_states)))
        return hidden_states + self.drop_path(mlp_output)


class AdaMaeEmbeddings(nn.Module):
    """Tubelet patch embedding (Conv3d, kernel = stride = (tubelet, patch, patch)) and the fixed sin-cos positions."""

    def __init__(self, config: AdaMaeConfig):
        super().__init__()
        self.config = config
        self.patch_embeddings = VideoMAEPatchEmbeddings(config)
        self.num_patches = config.num_patches
        self.register_buffer(
            "position_embeddings", sinusoid_position_table(config.num_patches, config.hidden_size), persistent=False
        )

    def embed_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """`(B, N, t*p*p, C)` patchified pixels -> `(B, N, hidden_size)`.

        The tubelet Conv3d has kernel = stride, so it is one matrix product over patchified pixels: the same function
        with the same `projection` weights, as a plain GEMM instead of cuDNN's generic 3-D convolution kernel (about
        20x faster in bf16 on an H100, see benchmarks/), and the pretraining targets reuse the same patchified pixels.
        """
        projection = self.patch_embeddings.projection
        # (D, C, t, p, p) -> (D, t*p*p*C), the pixel order of `patchify`
        weight = projection.weight.permute(0, 2, 3, 4, 1).reshape(projection.out_channels, -1)
        return F.linear(patches.flatten(2), weight, projection.bias)

    def add_position_embeddings(self, patch_embeddings: torch.Tensor) -> torch.Tensor:
        return patch_embeddings + self.position_embeddings.to(patch_embeddings.dtype)

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(B, T, C, H, W)` -> `(B, N, hidden_size)` tokens with positions, N ordered time-major then row, column."""
        check_pixel_values(pixel_values, self.config)
        patches = patchify(pixel_values, self.config.tubelet_size, self.config.patch_size)
        return self.add_position_embeddings(self.embed_patches(patches))


class AdaMaeEncoder(nn.Module):
    """The stack of encoder layers; stochastic depth rises linearly from 0 to `config.drop_path_rate`."""

    def __init__(self, config: AdaMaeConfig):
        super().__init__()
        depth = config.num_hidden_layers
        drop_path_rates = [config.drop_path_rate * i / max(depth - 1, 1) for i in range(depth)]
        self.layer = nn.ModuleList(
            [
                AdaMaeLayer(
                    config,
                    config.hidden_size,
                    config.num_attention_heads,
                    config.intermediate_size,
                    dropout=config.hidden_dropout_prob,
                    attention_dropout=config.attention_probs_dropout_prob,
                    layer_norm_eps=config.layer_norm_eps,
                    qv_bias=config.qv_bias,
                    drop_path_rate=rate,
                )
                for rate in drop_path_rates
            ]
        )

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        """`(B, L, hidden_size)` -> `(B, L, hidden_size)`."""
        for layer in self.layer:
            hidden_states = layer(hidden_states)
        return hidden_states


class AdaMaeTokenSampler(nn.Module):
    """The adaptive token sampler: patch embeddings + its own learnable positions -> transformer block(s) -> one logit
    per token. `softmax` over the N tokens of a video is the categorical distribution p the visible tokens are drawn
    from. Its layers have no q/v bias, no attention dropout and torch's LayerNorm eps, as in the reference.

    Gradients of the sampling loss flow through the sampler and into the patch embedding, as in the reference.
    """

    def __init__(self, config: AdaMaeConfig):
        super().__init__()
        width = config.sampler_hidden_size
        self.position_embeddings = nn.Parameter(torch.zeros(1, config.num_patches, config.hidden_size))
        self.projection = nn.Linear(config.hidden_size, width) if width != config.hidden_size else None
        self.layer = nn.ModuleList(
            [
                AdaMaeLayer(
                    config,
                    width,
                    config.sampler_num_attention_heads,
                    config.sampler_intermediate_size,
                    dropout=config.sampler_dropout_prob,
                    attention_dropout=0.0,
                    layer_norm_eps=config.sampler_layer_norm_eps,
                    qv_bias=False,
                )
                for _ in range(config.sampler_num_hidden_layers)
            ]
        )
        self.head = nn.Linear(width, 1)

    def forward(self, patch_embeddings: torch.Tensor) -> torch.Tensor:
        """`(B, N, hidden_size)` patch embeddings (without the encoder's positions) -> `(B, N)` float32 logits."""
        hidden_states = patch_embeddings + self.position_embeddings.to(patch_embeddings.dtype)
        if self.projection is not None:
            hidden_states = self.projection(hidden_states)
        for layer in self.layer:
            hidden_states = layer(hidden_states)
        logits = self.head(hidden_states).squeeze(-1).float()  # (B, N, 1) -> (B, N)
        return torch.nan_to_num(logits)


class AdaMaeDecoder(nn.Module):
    """The pretraining decoder: transformer layers, a final LayerNorm and a linear pixel head on the masked tokens."""

    def __init__(self, config: AdaMaeConfig):
        super().__init__()
        self.decoder_layers = nn.ModuleList(
            [
                AdaMaeLayer(
                    config,
                    config.decoder_hidden_size,
                    config.decoder_num_attention_heads,
                    config.decoder_intermediate_size,
                    dropout=config.hidden_dropout_prob,
                    attention_dropout=config.attention_probs_dropout_prob,
                    layer_norm_eps=config.layer_norm_eps,
                    qv_bias=config.qv_bias,
                )
                for _ in range(config.decoder_num_hidden_layers)
            ]
        )
        self.norm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)
        self.head = nn.Linear(config.decoder_hidden_size, config.patch_dim)

    def forward(self, hidden_states: torch.Tensor, num_masked: int) -> torch.Tensor:
        """`(B, N, decoder_hidden_size)` [visible ; masked] tokens -> `(B, num_masked, patch_dim)` pixels."""
        for layer in self.decoder_layers:
            hidden_states = layer(hidden_states)
        return self.head(self.norm(hidden_states[:, -num_masked:]))


def check_pixel_values(pixel_values: torch.Tensor, config: AdaMaeConfig):
    """Raise a clear error unless `pixel_values` is `(batch, num_frames, num_channels, height, width)`."""
    height, width = config.frame_size
    expected = (config.num_frames, config.num_channels, height, width)
    if not isinstance(pixel_values, torch.Tensor):
        raise TypeError(f"pixel_values must be a torch.Tensor, got {type(pixel_values).__name__}.")
    if pixel_values.ndim != 5 or tuple(pixel_values.shape[1:]) != expected:
        raise ValueError(
            "pixel_values must have shape (batch_size, num_frames, num_channels, height, width) = "
            f"(batch_size, {', '.join(map(str, expected))}) for this config, got {tuple(pixel_values.shape)}."
        )


def count_visible_tokens(bool_masked_pos: torch.Tensor, num_patches: int) -> int:
    """Number of visible tokens of a user-given mask; every video must have the same (this reads the mask on the host,
    which a sampled mask never needs)."""
    if bool_masked_pos.ndim != 2 or bool_masked_pos.shape[1] != num_patches:
        raise ValueError(
            f"bool_masked_pos must have shape (batch_size, {num_patches}), got {tuple(bool_masked_pos.shape)}."
        )
    visible_per_video = (~bool_masked_pos.bool()).sum(dim=1)
    if not bool((visible_per_video == visible_per_video[0]).all()):
        raise ValueError(f"Every video must have the same number of visible tokens, got {visible_per_video.tolist()}.")
    num_visible = int(visible_per_video[0])
    if not 0 < num_visible < num_patches:
        raise ValueError(
            f"bool_masked_pos must leave between 1 and {num_patches - 1} tokens visible, got {num_visible}."
        )
    return num_visible


@dataclass
class TokenMask:
    """A mask over the N tokens of each video and the token indices on either side of it (static shapes)."""

    bool_masked_pos: torch.BoolTensor  # (B, N), True = masked
    visible_indices: torch.LongTensor  # (B, K), ascending
    masked_indices: torch.LongTensor  # (B, N - K), ascending


# ---------------------------------------------------------------------------------------------------------------------
# Models


class AdaMaePreTrainedModel(PreTrainedModel):
    """Weight initialisation and the transformers plumbing shared by the AdaMAE models."""

    config_class = AdaMaeConfig
    config: AdaMaeConfig
    base_model_prefix = "videomae"
    main_input_name = "pixel_values"
    input_modalities = "video"
    supports_gradient_checkpointing = True
    _no_split_modules = ["AdaMaeEmbeddings", "AdaMaeLayer"]
    _supports_sdpa = True
    _supports_flash_attn = True
    _supports_flex_attn = True
    _supports_attention_backend = True
    # What `output_hidden_states` / `output_attentions` record, by hooks on these modules of the base model (the
    # sampler's and decoder's layers run outside it and are not recorded).
    _can_record_outputs = {"hidden_states": AdaMaeLayer, "attentions": AdaMaeSelfAttention}

    @torch.no_grad()
    def _init_weights(self, module):
        """The reference's pretraining initialisation: xavier-uniform linear layers with zero bias (query, key and
        value with the bound of the reference's fused qkv layer; torch's default for `encoder_to_decoder`), unit
        LayerNorms, torch's default Conv3d patch embedding, zero sampler positions and a mask token from a normal
        truncated at one standard deviation."""
        if isinstance(module, nn.Linear) and module is getattr(self, "encoder_to_decoder", None):
            # The reference never applies its init to the top-level model, so this projection keeps torch's default.
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
        elif isinstance(module, nn.Linear):
            if getattr(module, "is_fused_qkv_part", False):
                # The reference's query, key and value are one fused Linear (3D x D), so xavier gives each of them
                # the bound sqrt(6 / (D + 3D)), not the sqrt(6 / 2D) of a separate D x D layer.
                bound = fused_qkv_xavier_bound(*reversed(module.weight.shape))
                init.uniform_(module.weight, -bound, bound)
            else:
                init.xavier_uniform_(module.weight)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, nn.Conv3d):
            init.kaiming_uniform_(module.weight, a=math.sqrt(5))
            fan_in = module.weight[0].numel()
            init.uniform_(module.bias, -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in))
        elif isinstance(module, AdaMaeEmbeddings):
            init.copy_(
                module.position_embeddings, sinusoid_position_table(module.num_patches, self.config.hidden_size)
            )
        elif isinstance(module, AdaMaeTokenSampler):
            init.zeros_(module.position_embeddings)
        elif isinstance(module, AdaMaeForPreTraining):
            std = self.config.initializer_range
            init.trunc_normal_(module.mask_token, std=std, a=-std, b=std)
            init.copy_(
                module.decoder_position_embeddings,
                sinusoid_position_table(self.config.num_patches, self.config.decoder_hidden_size),
            )


class AdaMaeModel(AdaMaePreTrainedModel):
    """The AdaMAE (= VideoMAE) encoder: patch embedding, fixed sin-cos positions, transformer layers.

    With `bool_masked_pos` only the visible tokens are encoded. The final LayerNorm exists when
    `config.use_mean_pooling` is `False` (as in VideoMAE) or when `add_final_layernorm=True` (pretraining).
    """

    def __init__(self, config: AdaMaeConfig, add_final_layernorm: bool | None = None):
        super().__init__(config)
        self.embeddings = AdaMaeEmbeddings(config)
        self.encoder = AdaMaeEncoder(config)
        if add_final_layernorm is None:
            add_final_layernorm = not config.use_mean_pooling
        self.layernorm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if add_final_layernorm else None
        self.post_init()

    def get_input_embeddings(self):
        return self.embeddings.patch_embeddings

    @capture_outputs(tie_last_hidden_states=False)
    def forward(
        self,
        pixel_values: torch.Tensor | None = None,
        bool_masked_pos: torch.BoolTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
                Normalised frames (ImageNet mean and std), as VideoMAE's processors produce.
            bool_masked_pos (`torch.BoolTensor` of shape `(batch_size, num_patches)`, *optional*):
                `True` for masked tokens; only the others are encoded. Every video must mask the same number.
            inputs_embeds (`torch.FloatTensor` of shape `(batch_size, num_tokens, hidden_size)`, *optional*):
                Tokens that already carry their positions, e.g. the visible tokens pretraining picked, to encode
                instead of `pixel_values`.
            kwargs: `output_hidden_states`, `output_attentions` and `return_dict`, handled by transformers.

        Returns:
            `last_hidden_state` `(batch_size, num_tokens, hidden_size)`: all N tokens, the visible ones or the
            given ones. `hidden_states` (the input tokens and every layer's output) and `attentions` on request.
        """
        if (pixel_values is None) == (inputs_embeds is None):
            got = "both" if pixel_values is not None else "neither"
            raise ValueError(f"Give exactly one of pixel_values and inputs_embeds; got {got}.")
        if inputs_embeds is None:
            inputs_embeds = self.embeddings(pixel_values)  # (B, N, D)
            if bool_masked_pos is not None:
                num_visible = count_visible_tokens(bool_masked_pos, self.config.num_patches)
                visible_indices, _ = split_visible_and_masked(bool_masked_pos, num_visible)
                inputs_embeds = gather_tokens(inputs_embeds, visible_indices)  # (B, K, D)
        elif bool_masked_pos is not None:
            raise ValueError("bool_masked_pos applies to pixel_values; give inputs_embeds with visible tokens only.")
        sequence_output = self.encoder(inputs_embeds)
        if self.layernorm is not None:
            sequence_output = self.layernorm(sequence_output)
        return BaseModelOutput(last_hidden_state=sequence_output)


class AdaMaeForPreTraining(AdaMaePreTrainedModel):
    """AdaMAE pretraining: the sampler draws K visible tokens from p, the encoder sees only them, the decoder
    reconstructs the masked tokens, and the sampler learns (REINFORCE) to favour tokens that are hard to reconstruct.

    With `config.mask_type` in {"tube", "random", "frame"} the same model runs the paper's baselines; it then has no
    sampler and no sampling loss.
    """

    def __init__(self, config: AdaMaeConfig):
        super().__init__(config)
        self.videomae = AdaMaeModel(config, add_final_layernorm=True)
        self.sampler = AdaMaeTokenSampler(config) if config.mask_type == "adaptive" else None
        self.encoder_to_decoder = nn.Linear(config.hidden_size, config.decoder_hidden_size, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, config.decoder_hidden_size))
        self.register_buffer(
            "decoder_position_embeddings",
            sinusoid_position_table(config.num_patches, config.decoder_hidden_size),
            persistent=False,
        )
        self.decoder = AdaMaeDecoder(config)
        self.post_init()

    # --- masking -----------------------------------------------------------------------------------------------------

    def generate_mask(
        self,
        batch_size: int,
        sampler_logits: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        mask_type: str | None = None,
        mask_ratio: float | None = None,
        device: torch.device | None = None,
    ) -> torch.BoolTensor:
        """Draw a `(batch_size, N)` mask, `True` = masked, with the config's (or the given) mask type and ratio.

        `noise` is uniform in [0, 1), shape `(batch_size, N)`; the same noise gives the same mask. Adaptive masking
        perturbs log p with its Gumbel transform; random masking keeps the K largest values; tube masking uses the
        first time slice's `h * w` values (one spatial pattern for every slice); frame masking uses the first value of
        each time slice.
        """
        config = self.config
        mask_type = config.mask_type if mask_type is None else mask_type
        num_visible = config.check_mask(mask_type, mask_ratio)
        time_slices, rows, columns = config.token_grid
        num_patches = config.num_patches
        if noise is None:
            device = device if device is not None else self.device
            noise = torch.rand(batch_size, num_patches, device=device)
        elif tuple(noise.shape) != (batch_size, num_patches):
            raise ValueError(f"noise must have shape ({batch_size}, {num_patches}), got {tuple(noise.shape)}.")

        if mask_type == "adaptive":
            if sampler_logits is None:
                raise ValueError("Adaptive masking needs the sampler's logits (sampler_logits).")
            visible_indices = gumbel_top_k(F.log_softmax(sampler_logits, dim=-1), num_visible, noise)
            return mask_from_visible_indices(visible_indices, num_patches)
        if mask_type == "random":
            return mask_from_visible_indices(noise.topk(num_visible, dim=-1).indices, num_patches)

        noise = noise.view(batch_size, time_slices, rows * columns)
        if mask_type == "tube":
            visible_per_slice = num_visible // time_slices
            slice_mask = mask_from_visible_indices(noise[:, 0].topk(visible_per_slice, dim=-1).indices, rows * columns)
            return slice_mask[:, None, :].expand(-1, time_slices, -1).reshape(batch_size, num_patches)
        # frame
        visible_slices = num_visible // (rows * columns)
        time_mask = mask_from_visible_indices(noise[:, :, 0].topk(visible_slices, dim=-1).indices, time_slices)
        return time_mask[:, :, None].expand(-1, -1, rows * columns).reshape(batch_size, num_patches)

    # --- targets -----------------------------------------------------------------------------------------------------

    def patchify(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """`(B, T, C, H, W)` -> `(B, N, tubelet * patch * patch, C)`, tokens time-major, pixels ordered (t, y, x)."""
        return patchify(pixel_values, self.config.tubelet_size, self.config.patch_size)

    def unpatchify(self, patches: torch.Tensor) -> torch.Tensor:
        """Inverse of `patchify` (flattened or not): `(B, N, patch_dim)` -> `(B, T, C, H, W)`."""
        config = self.config
        time_slices, rows, columns = config.token_grid
        tubelet, patch, num_channels = config.tubelet_size, config.patch_size, config.num_channels
        batch_size = patches.shape[0]
        # (B, N, t*p*p*C) -> (B, T/t, H/p, W/p, t, p, p, C)
        patches = patches.reshape(batch_size, time_slices, rows, columns, tubelet, patch, patch, num_channels)
        # -> (B, T/t, t, C, H/p, p, W/p, p)
        video = patches.permute(0, 1, 4, 7, 2, 5, 3, 6)
        return video.reshape(batch_size, time_slices * tubelet, num_channels, rows * patch, columns * patch)

    @torch.no_grad()
    def compute_targets(self, pixel_values: torch.Tensor, masked_indices: torch.Tensor | None = None) -> torch.Tensor:
        """Reconstruction targets `(B, N or num_masked, patch_dim)` in float32.

        The frames are un-normalised to [0, 1] (`config.image_mean` / `image_std`), cut into tubelet patches, and, with
        `norm_pix_loss`, each patch and channel is normalised by its own mean and unbiased std (+1e-6).
        """
        return self.targets_from_patches(self.patchify(pixel_values), masked_indices)

    @torch.no_grad()
    def targets_from_patches(self, patches: torch.Tensor, masked_indices: torch.Tensor | None = None) -> torch.Tensor:
        """`compute_targets` from already patchified (normalised) pixels `(B, N, t*p*p, C)`."""
        config = self.config
        if masked_indices is not None:
            batch_size, _, pixels, num_channels = patches.shape
            patches = gather_tokens(patches.reshape(batch_size, -1, pixels * num_channels), masked_indices)
            patches = patches.reshape(batch_size, -1, pixels, num_channels)  # (B, num_masked, t*p*p, C)
        # un-normalise with the statistics the inputs carry (channels are the last dimension)
        patches = patches.float() * channel_constants(config.image_std, patches) + channel_constants(
            config.image_mean, patches
        )
        if config.norm_pix_loss:
            mean = patches.mean(dim=-2, keepdim=True)
            std = patches.var(dim=-2, unbiased=True, keepdim=True).sqrt()
            patches = (patches - mean) / (std + 1e-6)
        return patches.flatten(2)  # (B, L, t*p*p*C)

    def choose_mask(
        self,
        sampler_logits: torch.Tensor | None,
        bool_masked_pos: torch.Tensor | None,
        noise: torch.Tensor | None,
        batch_size: int,
        device: torch.device,
    ) -> TokenMask:
        """The given mask (checked: the same count for every video), else one drawn by `generate_mask`."""
        if bool_masked_pos is None:
            num_visible = self.config.check_mask()
            bool_masked_pos = self.generate_mask(batch_size, sampler_logits, noise, device=device)
        else:
            num_visible = count_visible_tokens(bool_masked_pos, self.config.num_patches)
            bool_masked_pos = bool_masked_pos.to(device=device, dtype=torch.bool)
        visible_indices, masked_indices = split_visible_and_masked(bool_masked_pos, num_visible)  # (B, K), (B, N-K)
        return TokenMask(bool_masked_pos, visible_indices, masked_indices)

    # --- forward -----------------------------------------------------------------------------------------------------

    def forward_encoder(
        self,
        patches: torch.Tensor,
        bool_masked_pos: torch.Tensor | None = None,
        noise: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[BaseModelOutput, TokenMask, torch.Tensor | None]:
        """Sampler, mask, then the visible tokens through the encoder.

        `patches` `(B, N, t*p*p, C)` -> the encoder's outputs on the K visible tokens (`last_hidden_state`
        `(B, K, hidden_size)`, after the final LayerNorm), the mask with its index lists, and the sampler's logits
        `(B, N)` (`None` unless `mask_type="adaptive"`). The sampler and the encoder share one patch embedding.
        """
        embeddings = self.videomae.embeddings
        patch_embeddings = embeddings.embed_patches(patches)  # (B, N, D)
        sampler_logits = None
        if self.config.mask_type == "adaptive":
            if self.sampler is None:
                raise ValueError("This model was built without a sampler (its mask_type was not 'adaptive' then).")
            sampler_logits = self.sampler(patch_embeddings)  # (B, N), float32
        token_mask = self.choose_mask(
            sampler_logits, bool_masked_pos, noise, batch_size=patches.shape[0], device=patches.device
        )
        # the visible tokens, with their positions, in their original order
        tokens = embeddings.add_position_embeddings(patch_embeddings)  # (B, N, D)
        visible_tokens = gather_tokens(tokens, token_mask.visible_indices)  # (B, K, D)
        encoder_outputs = self.videomae(inputs_embeds=visible_tokens, return_dict=True, **kwargs)
        return encoder_outputs, token_mask, sampler_logits

    def forward_decoder(self, latent: torch.Tensor, token_mask: TokenMask) -> torch.Tensor:
        """`(B, K, hidden_size)` encoded visible tokens -> `(B, N-K, patch_dim)` predicted pixels of the masked ones.

        The decoder sees [visible tokens + their positions ; mask token + the masked tokens' positions], `(B, N, Dd)`.
        """
        visible_states = self.encoder_to_decoder(latent)  # (B, K, Dd)
        positions = self.decoder_position_embeddings.to(visible_states.dtype).expand(latent.shape[0], -1, -1)
        decoder_inputs = torch.cat(
            [
                visible_states + gather_tokens(positions, token_mask.visible_indices),
                self.mask_token.to(visible_states.dtype) + gather_tokens(positions, token_mask.masked_indices),
            ],
            dim=1,
        )  # (B, N, Dd)
        return self.decoder(decoder_inputs, num_masked=token_mask.masked_indices.shape[1])

    def forward_loss(
        self,
        patches: torch.Tensor,
        logits: torch.Tensor,
        sampler_logits: torch.Tensor | None,
        masked_indices: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Reconstruction loss L_r and the weighted sampling loss lambda * L_s, for the whole batch at once.

        `patches` `(B, N, t*p*p, C)` give the targets of the masked tokens, `(B, N-K, patch_dim)` like `logits`;
        `sampler_logits` `(B, N)` or `None`; `masked_indices` `(B, N-K)`.

        l_r[b, j] = mean over pixels of (prediction - target)^2 for masked token j; L_r = mean(l_r).
        l_s[b] = -mean_j(log p[b, j] * stopgrad(l_r[b, j])) over the masked tokens: the sampler is rewarded for
        putting probability on tokens the decoder reconstructs badly. Gradients of L_r never reach p.
        (The reference's `Categorical.log_prob` clamps p to float eps first; `log_softmax` is the exact log p.)
        """
        targets = self.targets_from_patches(patches, masked_indices)
        per_token_loss = (logits.float() - targets).pow(2).mean(dim=-1)  # (B, N-K)
        reconstruction_loss = per_token_loss.mean()
        if sampler_logits is None:
            return reconstruction_loss, None
        masked_log_probs = torch.gather(F.log_softmax(sampler_logits, dim=-1), 1, masked_indices)  # (B, N-K)
        sampling_loss_per_video = -(masked_log_probs * per_token_loss.detach()).mean(dim=-1)  # (B,)
        return reconstruction_loss, self.config.sampling_loss_weight * sampling_loss_per_video.mean()

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.BoolTensor | None = None,
        noise: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> AdaMaeForPreTrainingOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
                Normalised frames (ImageNet mean and std), as VideoMAE's processors produce.
            bool_masked_pos (`torch.BoolTensor` of shape `(batch_size, num_patches)`, *optional*):
                A mask to use instead of sampling one (`True` = masked; the same count for every video). The sampler
                still runs, so `token_probs` and the sampling loss are reported for this mask.
            noise (`torch.FloatTensor` of shape `(batch_size, num_patches)`, *optional*):
                Uniform noise in [0, 1) that makes the sampled mask deterministic (see `generate_mask`).
            kwargs: `output_hidden_states`, `output_attentions` (the encoder's, on the visible tokens) and
                `return_dict`, handled by transformers.

        Example:

        ```python
        >>> import torch
        >>> from configuration_adamae import AdaMaeConfig
        >>> from modeling_adamae import AdaMaeForPreTraining
        >>> config = AdaMaeConfig(image_size=32, patch_size=8, num_frames=8, hidden_size=32, num_hidden_layers=2,
        ...     num_attention_heads=2, intermediate_size=64, decoder_hidden_size=32, decoder_num_hidden_layers=1,
        ...     decoder_num_attention_heads=2, decoder_intermediate_size=64, sampler_num_attention_heads=2,
        ...     mask_ratio=0.75)
        >>> model = AdaMaeForPreTraining(config)
        >>> outputs = model(torch.randn(2, 8, 3, 32, 32))
        >>> outputs.logits.shape, outputs.mask.sum(dim=1).tolist()
        (torch.Size([2, 48, 384]), [48, 48])
        ```
        """
        check_pixel_values(pixel_values, self.config)
        patches = self.patchify(pixel_values)  # (B, N, t*p*p, C): the encoder's and sampler's input, and the targets
        encoder_outputs, token_mask, sampler_logits = self.forward_encoder(patches, bool_masked_pos, noise, **kwargs)
        logits = self.forward_decoder(encoder_outputs.last_hidden_state, token_mask)  # (B, N-K, patch_dim)
        reconstruction_loss, sampling_loss = self.forward_loss(
            patches, logits, sampler_logits, token_mask.masked_indices
        )
        return AdaMaeForPreTrainingOutput(
            loss=reconstruction_loss if sampling_loss is None else reconstruction_loss + sampling_loss,
            reconstruction_loss=reconstruction_loss,
            sampling_loss=sampling_loss,
            logits=logits,
            mask=token_mask.bool_masked_pos,
            token_probs=None if sampler_logits is None else sampler_logits.softmax(dim=-1),
            hidden_states=encoder_outputs.hidden_states,
            attentions=encoder_outputs.attentions,
        )


class AdaMaeForVideoClassification(AdaMaePreTrainedModel):
    """AdaMAE encoder over all tokens (no sampler, no mask) with a classification head: mean pooling, `fc_norm` and a
    linear layer (the paper's fine-tuning), or the first token after a final LayerNorm when
    `config.use_mean_pooling=False` (as VideoMAE).

    Loading a pretraining checkpoint keeps the encoder, drops the sampler and decoder, and initialises the head.
    """

    def __init__(self, config: AdaMaeConfig):
        super().__init__(config)
        self.num_labels = config.num_labels
        self.videomae = AdaMaeModel(config)
        self.fc_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps) if config.use_mean_pooling else None
        self.classifier = nn.Linear(config.hidden_size, config.num_labels) if config.num_labels > 0 else nn.Identity()
        self.post_init()

    def _init_weights(self, module):
        super()._init_weights(module)
        if module is self.classifier and isinstance(module, nn.Linear):
            # The reference: truncated normal (std 0.02), then both weight and bias scaled by init_scale.
            scale = self.config.head_init_scale
            std = self.config.initializer_range * scale
            init.trunc_normal_(module.weight, std=std, a=-2.0 * scale, b=2.0 * scale)
            init.zeros_(module.bias)

    def compute_loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Loss by `config.problem_type`, as transformers' classifiers; soft targets `(B, num_labels)` (mixup / cutmix)
        with single-label classification give the soft-target cross-entropy."""
        config = self.config
        if config.problem_type is None:
            if self.num_labels == 1:
                config.problem_type = "regression"
            elif labels.dtype in (torch.long, torch.int):
                config.problem_type = "single_label_classification"
            else:
                config.problem_type = "multi_label_classification"
        logits = logits.float()
        if config.problem_type == "regression":
            return F.mse_loss(logits.squeeze(-1) if self.num_labels == 1 else logits, labels.float())
        if config.problem_type == "single_label_classification":
            if labels.is_floating_point() and labels.ndim == 2:
                return torch.sum(-labels * F.log_softmax(logits, dim=-1), dim=-1).mean()
            return F.cross_entropy(logits.view(-1, self.num_labels), labels.view(-1))
        return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))

    @can_return_tuple
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> ImageClassifierOutput:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
                Normalised frames (ImageNet mean and std).
            labels (`torch.LongTensor` `(batch_size,)` or `torch.FloatTensor` `(batch_size, num_labels)`, *optional*):
                Class ids, soft targets, or regression targets; the loss follows `config.problem_type`.
            kwargs: `output_hidden_states`, `output_attentions` and `return_dict`, handled by transformers.
        """
        outputs = self.videomae(pixel_values, return_dict=True, **kwargs)
        sequence_output = outputs.last_hidden_state  # (B, N, D)
        if self.fc_norm is not None:
            pooled_output = self.fc_norm(sequence_output.mean(dim=1))
        else:
            pooled_output = sequence_output[:, 0]
        logits = self.classifier(pooled_output)  # (B, num_labels)
        loss = self.compute_loss(logits, labels) if labels is not None else None
        return ImageClassifierOutput(
            loss=loss, logits=logits, hidden_states=outputs.hidden_states, attentions=outputs.attentions
        )


AdaMaeModel.register_for_auto_class("AutoModel")
AdaMaeForPreTraining.register_for_auto_class("AutoModelForPreTraining")
AdaMaeForVideoClassification.register_for_auto_class("AutoModelForVideoClassification")


__all__ = [
    "AdaMaeForPreTraining",
    "AdaMaeForPreTrainingOutput",
    "AdaMaeForVideoClassification",
    "AdaMaeModel",
    "AdaMaePreTrainedModel",
]
