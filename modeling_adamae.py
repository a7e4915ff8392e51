# Copyright 2026 The adamae-hf authors. Licensed under the Apache License, Version 2.0.
"""PyTorch AdaMAE: VideoMAE's encoder and decoder with a learned adaptive token sampler (Bandara et al., CVPR 2023).

Read top to bottom as facebookresearch/mae's `models_mae.py`: the sampler picks which tokens stay visible
(`AdaMaeTokenSampler`, `generate_mask`), the encoder runs on the visible tokens only (`AdaMaeModel`), the decoder
predicts the masked ones (`AdaMaeDecoder`), and `AdaMaeForPreTraining.forward_loss` gives the reconstruction loss and
the sampler's REINFORCE loss. Every shape is static (K visible tokens for every video), so a step can be compiled.

This file is also one of the two custom-code files a Hub repository carries: it imports only torch, transformers and
`configuration_adamae`.
"""

import math
from logging import Filter
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
from transformers.modeling_outputs import BaseModelOutput, ImageClassifierOutput  # noqa: E402
from transformers.models.videomae.modeling_videomae import VideoMAELayer, VideoMAEPatchEmbeddings  # noqa: E402
from transformers.utils import ModelOutput, logging  # noqa: E402


logger = logging.get_logger(__name__)

# What each class loads as, for configs saved with `save_pretrained` (a pretraining folder also loads for
# classification with `trust_remote_code=True`).
AUTO_MAP = {
    "AutoConfig": "configuration_adamae.AdaMaeConfig",
    "AutoModel": "modeling_adamae.AdaMaeModel",
    "AutoModelForPreTraining": "modeling_adamae.AdaMaeForPreTraining",
    "AutoModelForVideoClassification": "modeling_adamae.AdaMaeForVideoClassification",
}


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
    """

    loss: torch.FloatTensor | None = None
    reconstruction_loss: torch.FloatTensor | None = None
    sampling_loss: torch.FloatTensor | None = None
    logits: torch.FloatTensor | None = None
    mask: torch.BoolTensor | None = None
    token_probs: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None


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
# Building blocks


class AdaMaeLayerConfig:
    """A layer's view of the model config: a few fields (width, heads, dropout, ...) overridden, everything else, the
    attention implementation included, read live from the model config, so `set_attn_implementation` reaches the
    sampler's and decoder's layers too."""

    def __init__(self, config: AdaMaeConfig, **overrides):
        self._model_config = config
        self.__dict__.update(overrides)

    def __getattr__(self, name):
        if name.startswith("__") or name == "_model_config":  # keeps copy/pickle from recursing
            raise AttributeError(name)
        return getattr(self._model_config, name)


class AdaMaeDropPath(nn.Module):
    """Stochastic depth: drop a residual branch for a whole sample with probability `drop_prob` (timm's DropPath)."""

    def __init__(self, drop_prob: float):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if not self.training or self.drop_prob == 0.0:
            return hidden_states
        keep_prob = 1.0 - self.drop_prob
        keep = hidden_states.new_empty((hidden_states.shape[0],) + (1,) * (hidden_states.ndim - 1)).bernoulli_(keep_prob)
        return hidden_states * keep / keep_prob

    def extra_repr(self) -> str:
        return f"p={self.drop_prob}"


class AdaMaeLayer(VideoMAELayer):
    """VideoMAE's pre-norm transformer block (timm `Block`) with stochastic depth on both residual branches.

    Parameter names are VideoMAE's. Keys never have a bias (the reference has q and v biases only); some transformers
    releases give VideoMAE's keys a bias, so it is removed here to keep one checkpoint layout for all of them.
    """

    def __init__(self, config, drop_path_rate: float = 0.0):
        super().__init__(config)
        self_attention = self.attention.attention
        if self_attention.key.bias is not None:
            self_attention.key = nn.Linear(config.hidden_size, self_attention.all_head_size, bias=False)
        for linear in (self_attention.query, self_attention.key, self_attention.value):
            linear.is_fused_qkv_part = True  # initialised as a third of the reference's fused qkv layer
        self.drop_path = AdaMaeDropPath(drop_path_rate) if drop_path_rate > 0.0 else nn.Identity()

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        attention_output = self.attention(self.layernorm_before(hidden_states))
        hidden_states = hidden_states + self.drop_path(attention_output)
        mlp_output = self.intermediate(self.layernorm_after(hidden_states))
        mlp_output = self.output.dropout(self.output.dense(mlp_output))
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
        self.layer = nn.ModuleList([AdaMaeLayer(config, rate) for rate in drop_path_rates])
        self.gradient_checkpointing = False

    def forward(self, hidden_states: torch.Tensor, output_hidden_states: bool = False) -> BaseModelOutput:
        all_hidden_states = (hidden_states,) if output_hidden_states else None
        for layer in self.layer:
            hidden_states = layer(hidden_states)
            if output_hidden_states:
                all_hidden_states += (hidden_states,)
        return BaseModelOutput(last_hidden_state=hidden_states, hidden_states=all_hidden_states)


class AdaMaeTokenSampler(nn.Module):
    """The adaptive token sampler: patch embeddings + its own learnable positions -> transformer block(s) -> one logit
    per token. `softmax` over the N tokens of a video is the categorical distribution p the visible tokens are drawn
    from.

    Gradients of the sampling loss flow through the sampler and into the patch embedding, as in the reference.
    """

    def __init__(self, config: AdaMaeConfig):
        super().__init__()
        width = config.sampler_hidden_size
        self.position_embeddings = nn.Parameter(torch.zeros(1, config.num_patches, config.hidden_size))
        self.projection = nn.Linear(config.hidden_size, width) if width != config.hidden_size else None
        self.config = AdaMaeLayerConfig(
            config,
            hidden_size=width,
            num_attention_heads=config.sampler_num_attention_heads,
            intermediate_size=config.sampler_intermediate_size,
            hidden_dropout_prob=config.sampler_dropout_prob,
            attention_probs_dropout_prob=0.0,
            layer_norm_eps=config.sampler_layer_norm_eps,
            qkv_bias=False,
            qv_bias=False,
        )
        self.layer = nn.ModuleList([AdaMaeLayer(self.config) for _ in range(config.sampler_num_hidden_layers)])
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
    """The pretraining decoder: VideoMAE layers, a final LayerNorm and a linear pixel head on the masked tokens."""

    def __init__(self, config: AdaMaeConfig):
        super().__init__()
        self.config = AdaMaeLayerConfig(
            config,
            hidden_size=config.decoder_hidden_size,
            num_attention_heads=config.decoder_num_attention_heads,
            intermediate_size=config.decoder_intermediate_size,
        )
        self.decoder_layers = nn.ModuleList(
            [AdaMaeLayer(self.config) for _ in range(config.decoder_num_hidden_layers)]
        )
        self.norm = nn.LayerNorm(config.decoder_hidden_size, eps=config.layer_norm_eps)
        self.head = nn.Linear(config.decoder_hidden_size, config.patch_dim)
        self.gradient_checkpointing = False

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


class _DropLoadReport(Filter):
    """Holds back transformers' per-key load table; `AdaMaePreTrainedModel.from_pretrained` logs one summary line
    instead, or attaches the table to the error when loading fails."""

    def __init__(self):
        super().__init__()
        self.reports: list[str] = []

    def filter(self, record) -> bool:
        message = record.getMessage()
        if "LOAD REPORT" in message:
            self.reports.append(message)
            return False
        return True


def summarize_keys(keys) -> str:
    """'sampler (16 tensors), decoder (19 tensors), mask_token' for a list of state-dict keys."""
    groups: dict[str, int] = {}
    for key in keys:
        parts = key.split(".")
        group = ".".join(parts[:2]) if parts[0] == "videomae" and len(parts) > 2 else parts[0]
        groups[group] = groups.get(group, 0) + 1
    return ", ".join(f"{name} ({count} tensors)" if count > 1 else name for name, count in groups.items())


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
            init.copy_(module.position_embeddings, sinusoid_position_table(module.num_patches, self.config.hidden_size))
        elif isinstance(module, AdaMaeTokenSampler):
            init.zeros_(module.position_embeddings)
        elif isinstance(module, AdaMaeForPreTraining):
            std = self.config.initializer_range
            init.trunc_normal_(module.mask_token, std=std, a=-std, b=std)
            init.copy_(
                module.decoder_position_embeddings,
                sinusoid_position_table(self.config.num_patches, self.config.decoder_hidden_size),
            )

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, **kwargs):
        """`PreTrainedModel.from_pretrained` with one log line, in place of transformers' per-key table, saying which
        checkpoint weights were dropped (e.g. the sampler and decoder when loading a pretraining checkpoint for
        classification) and which were newly initialised (e.g. the classification head)."""
        output_loading_info = kwargs.pop("output_loading_info", False)
        report_filter = _DropLoadReport()
        transformers_logger = logging.get_logger("transformers.modeling_utils")
        transformers_logger.addFilter(report_filter)
        try:
            model, loading_info = super().from_pretrained(
                pretrained_model_name_or_path, *model_args, output_loading_info=True, **kwargs
            )
        except RuntimeError as error:
            # e.g. a head of another size without `ignore_mismatched_sizes`: the error points to the table
            if report_filter.reports:
                raise RuntimeError(f"{error}\n" + "\n".join(report_filter.reports)) from error
            raise
        finally:
            transformers_logger.removeFilter(report_filter)
        groups = {
            "dropped (unused by this model)": summarize_keys(loading_info.get("unexpected_keys", [])),
            "newly initialised (train before use)": summarize_keys(loading_info.get("missing_keys", [])),
            "re-initialised (shape mismatch)": summarize_keys(k for k, *_ in loading_info.get("mismatched_keys", [])),
        }
        if any(groups.values()):
            details = "; ".join(f"{what}: {keys}" for what, keys in groups.items() if keys)
            logger.warning(f"{cls.__name__} from {pretrained_model_name_or_path}: {details}.")
        return (model, loading_info) if output_loading_info else model

    def save_pretrained(self, save_directory, *args, **kwargs):
        # Record every AdaMAE class in `auto_map`, so that any saved folder loads with any Auto class
        # (`trust_remote_code=True`), e.g. a pretraining folder with AutoModelForVideoClassification.
        self.config.auto_map = dict(AUTO_MAP)
        return super().save_pretrained(save_directory, *args, **kwargs)


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

    def encode(self, embeddings: torch.Tensor, output_hidden_states: bool = False) -> BaseModelOutput:
        """Run the layers (and the final norm) on `(B, L, hidden_size)` tokens that already carry positions."""
        encoder_outputs = self.encoder(embeddings, output_hidden_states=output_hidden_states)
        sequence_output = encoder_outputs.last_hidden_state
        if self.layernorm is not None:
            sequence_output = self.layernorm(sequence_output)
        return BaseModelOutput(last_hidden_state=sequence_output, hidden_states=encoder_outputs.hidden_states)

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.BoolTensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> BaseModelOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
                Normalised frames (ImageNet mean and std), as VideoMAE's processors produce.
            bool_masked_pos (`torch.BoolTensor` of shape `(batch_size, num_patches)`, *optional*):
                `True` for masked tokens; only the others are encoded. Every video must mask the same number.
            output_hidden_states (`bool`, *optional*):
                Also return the embeddings and every layer's output.
            return_dict (`bool`, *optional*):
                Return a [`~transformers.modeling_outputs.BaseModelOutput`] rather than a tuple.

        Returns:
            `last_hidden_state` `(batch_size, num_tokens, hidden_size)`: all N tokens, or the visible ones.
        """
        output_hidden_states = (
            self.config.output_hidden_states if output_hidden_states is None else output_hidden_states
        )
        return_dict = self.config.return_dict if return_dict is None else return_dict
        embeddings = self.embeddings(pixel_values)  # (B, N, D)
        if bool_masked_pos is not None:
            num_visible = count_visible_tokens(bool_masked_pos, self.config.num_patches)
            visible_indices, _ = split_visible_and_masked(bool_masked_pos, num_visible)
            embeddings = gather_tokens(embeddings, visible_indices)  # (B, K, D)
        outputs = self.encode(embeddings, output_hidden_states=output_hidden_states)
        return outputs if return_dict else outputs.to_tuple()


def count_visible_tokens(bool_masked_pos: torch.Tensor, num_patches: int) -> int:
    """Number of visible tokens of a user-given mask; every video must have the same (this reads the mask on the host,
    which a sampled mask never needs)."""
    if bool_masked_pos.ndim != 2 or bool_masked_pos.shape[1] != num_patches:
        raise ValueError(
            f"bool_masked_pos must have shape (batch_size, {num_patches}), got {tuple(bool_masked_pos.shape)}."
        )
    visible_per_video = (~bool_masked_pos.bool()).sum(dim=1)
    if not bool((visible_per_video == visible_per_video[0]).all()):
        raise ValueError(
            f"Every video must have the same number of visible tokens, got {visible_per_video.tolist()}."
        )
    num_visible = int(visible_per_video[0])
    if not 0 < num_visible < num_patches:
        raise ValueError(f"bool_masked_pos must leave between 1 and {num_patches - 1} tokens visible, got {num_visible}.")
    return num_visible


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

    # --- masking ------------------------------------------------------------------------------------------------------

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

    # --- targets ------------------------------------------------------------------------------------------------------

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

    # --- losses -------------------------------------------------------------------------------------------------------

    def forward_loss(
        self,
        logits: torch.Tensor,
        targets: torch.Tensor,
        sampler_logits: torch.Tensor | None,
        masked_indices: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Reconstruction loss L_r and the weighted sampling loss lambda * L_s, for the whole batch at once.

        l_r[b, j] = mean over pixels of (prediction - target)^2 for masked token j; L_r = mean(l_r).
        l_s[b] = -mean_j(log p[b, j] * stopgrad(l_r[b, j])) over the masked tokens: the sampler is rewarded for
        putting probability on tokens the decoder reconstructs badly. Gradients of L_r never reach p.
        (The reference's `Categorical.log_prob` clamps p to float eps first; `log_softmax` is the exact log p.)
        """
        per_token_loss = (logits.float() - targets).pow(2).mean(dim=-1)  # (B, num_masked)
        reconstruction_loss = per_token_loss.mean()
        if sampler_logits is None:
            return reconstruction_loss, None
        masked_log_probs = torch.gather(F.log_softmax(sampler_logits, dim=-1), 1, masked_indices)  # (B, num_masked)
        sampling_loss_per_video = -(masked_log_probs * per_token_loss.detach()).mean(dim=-1)  # (B,)
        return reconstruction_loss, self.config.sampling_loss_weight * sampling_loss_per_video.mean()

    # --- forward ------------------------------------------------------------------------------------------------------

    def forward(
        self,
        pixel_values: torch.Tensor,
        bool_masked_pos: torch.BoolTensor | None = None,
        noise: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> AdaMaeForPreTrainingOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
                Normalised frames (ImageNet mean and std), as VideoMAE's processors produce.
            bool_masked_pos (`torch.BoolTensor` of shape `(batch_size, num_patches)`, *optional*):
                A mask to use instead of sampling one (`True` = masked; the same count for every video). The sampler
                still runs, so `token_probs` and the sampling loss are reported for this mask.
            noise (`torch.FloatTensor` of shape `(batch_size, num_patches)`, *optional*):
                Uniform noise in [0, 1) that makes the sampled mask deterministic (see `generate_mask`).
            output_hidden_states (`bool`, *optional*):
                Also return the encoder's hidden states (visible tokens).
            return_dict (`bool`, *optional*):
                Return an [`AdaMaeForPreTrainingOutput`] rather than a tuple.

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
        config = self.config
        output_hidden_states = config.output_hidden_states if output_hidden_states is None else output_hidden_states
        return_dict = config.return_dict if return_dict is None else return_dict
        check_pixel_values(pixel_values, config)

        embeddings = self.videomae.embeddings
        patches = self.patchify(pixel_values)  # (B, N, t*p*p, C), shared by the embedding and the targets
        patch_embeddings = embeddings.embed_patches(patches)  # (B, N, D)
        batch_size = patch_embeddings.shape[0]

        sampler_logits = None
        if config.mask_type == "adaptive":
            if self.sampler is None:
                raise ValueError("This model was built without a sampler (mask_type was not 'adaptive' at construction).")
            sampler_logits = self.sampler(patch_embeddings)  # (B, N), float32
        if bool_masked_pos is None:
            num_visible = config.check_mask()
            bool_masked_pos = self.generate_mask(batch_size, sampler_logits, noise, device=pixel_values.device)
        else:
            num_visible = count_visible_tokens(bool_masked_pos, config.num_patches)
            bool_masked_pos = bool_masked_pos.to(device=pixel_values.device, dtype=torch.bool)
        visible_indices, masked_indices = split_visible_and_masked(bool_masked_pos, num_visible)  # (B, K), (B, N-K)
        num_masked = masked_indices.shape[1]

        # Encoder: the visible tokens only, in their original order.
        visible_tokens = gather_tokens(embeddings.add_position_embeddings(patch_embeddings), visible_indices)
        encoder_outputs = self.videomae.encode(visible_tokens, output_hidden_states=output_hidden_states)

        # Decoder: [visible tokens + their positions ; mask token + positions of the masked tokens].
        visible_states = self.encoder_to_decoder(encoder_outputs.last_hidden_state)  # (B, K, Dd)
        positions = self.decoder_position_embeddings.to(visible_states.dtype).expand(batch_size, -1, -1)
        decoder_inputs = torch.cat(
            [
                visible_states + gather_tokens(positions, visible_indices),
                self.mask_token.to(visible_states.dtype) + gather_tokens(positions, masked_indices),
            ],
            dim=1,
        )  # (B, N, Dd)
        logits = self.decoder(decoder_inputs, num_masked)  # (B, N-K, patch_dim)

        targets = self.targets_from_patches(patches, masked_indices)
        reconstruction_loss, sampling_loss = self.forward_loss(logits, targets, sampler_logits, masked_indices)
        loss = reconstruction_loss if sampling_loss is None else reconstruction_loss + sampling_loss

        output = AdaMaeForPreTrainingOutput(
            loss=loss,
            reconstruction_loss=reconstruction_loss,
            sampling_loss=sampling_loss,
            logits=logits,
            mask=bool_masked_pos,
            token_probs=None if sampler_logits is None else sampler_logits.softmax(dim=-1),
            hidden_states=encoder_outputs.hidden_states,
        )
        return output if return_dict else output.to_tuple()


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

    @torch.no_grad()
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

    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
    ) -> ImageClassifierOutput | tuple:
        r"""
        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch_size, num_frames, num_channels, height, width)`):
                Normalised frames (ImageNet mean and std).
            labels (`torch.LongTensor` of shape `(batch_size,)` or `torch.FloatTensor` `(batch_size, num_labels)`, *optional*):
                Class ids, soft targets, or regression targets; the loss follows `config.problem_type`.
            output_hidden_states (`bool`, *optional*):
                Also return the encoder's hidden states.
            return_dict (`bool`, *optional*):
                Return an [`~transformers.modeling_outputs.ImageClassifierOutput`] rather than a tuple.
        """
        return_dict = self.config.return_dict if return_dict is None else return_dict
        outputs = self.videomae(pixel_values, output_hidden_states=output_hidden_states, return_dict=True)
        sequence_output = outputs.last_hidden_state  # (B, N, D)
        if self.fc_norm is not None:
            pooled_output = self.fc_norm(sequence_output.mean(dim=1))
        else:
            pooled_output = sequence_output[:, 0]
        logits = self.classifier(pooled_output)
        loss = self.compute_loss(logits, labels) if labels is not None else None
        output = ImageClassifierOutput(loss=loss, logits=logits, hidden_states=outputs.hidden_states)
        return output if return_dict else output.to_tuple()



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
