# Copyright 2026 The adamae-hf authors. Licensed under the Apache License, Version 2.0.
"""AdaMAE model configuration.

This file is also one of the two custom-code files a Hub repository carries: it imports only transformers.
"""

import re

import transformers


# The oldest transformers the package and the Hub files work with: 4.x lacks `transformers.initialization`, and 5.18 is
# the oldest release the test suite passes with.
MIN_TRANSFORMERS_VERSION = "5.18"


def _major_minor(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)


def check_transformers_version(version: str | None = None) -> None:
    """Raise one clear `ImportError` when `version` (default: the installed one) is older than
    `MIN_TRANSFORMERS_VERSION`; pre-releases of the minimum count as the minimum."""
    version = transformers.__version__ if version is None else version
    if _major_minor(version) < _major_minor(MIN_TRANSFORMERS_VERSION):
        raise ImportError(
            f"AdaMAE needs transformers>={MIN_TRANSFORMERS_VERSION}, but transformers {version} is installed; upgrade "
            f"with: pip install -U 'transformers>={MIN_TRANSFORMERS_VERSION}'",
            name="transformers",
        )


check_transformers_version()

from transformers import PretrainedConfig  # noqa: E402  (after the version check, which names what is missing)
from transformers.utils.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD  # noqa: E402


MASK_TYPES = ("adaptive", "tube", "random", "frame")
# What each class loads as with remote code: `save_pretrained` copies these two files beside the weights.
AUTO_MAP = {
    "AutoConfig": "configuration_adamae.AdaMaeConfig",
    "AutoModel": "modeling_adamae.AdaMaeModel",
    "AutoModelForPreTraining": "modeling_adamae.AdaMaeForPreTraining",
    "AutoModelForVideoClassification": "modeling_adamae.AdaMaeForVideoClassification",
}
# Bounds that turn an absurd size into a clear error instead of an allocator failure deep inside the model.
# A frame side above 4096 pixels (beyond 4K video's 3840) is no plausible model input.
MAX_IMAGE_SIZE = 4096
# The sampler attends over all N tokens of a clip and three N x width tables are allocated (positions of encoder,
# sampler and decoder). 2**16 tokens is 40x the paper's 1568 (e.g. 64 frames of 512x512 in 16x16 patches is 32768)
# and already 17 GB of attention scores per head and clip without a memory-efficient attention kernel.
MAX_NUM_PATCHES = 2**16


class AdaMaeConfig(PretrainedConfig):
    r"""
    Configuration of AdaMAE (Bandara et al., "AdaMAE: Adaptive Masking for Efficient Spatiotemporal Learning with
    Masked Autoencoders", CVPR 2023): a VideoMAE encoder/decoder with a learned token sampler that picks the visible
    tokens. The defaults are the paper's ViT-B/16 setting (16 frames of 224x224, tubelet 2, decoder 4 x 384, adaptive
    masking at ratio 0.95).

    Args:
        image_size (`int` or `tuple[int, int]`, *optional*, defaults to 224):
            Height and width of each frame.
        patch_size (`int`, *optional*, defaults to 16):
            Spatial size of a patch.
        num_channels (`int`, *optional*, defaults to 3):
            Number of input channels.
        num_frames (`int`, *optional*, defaults to 16):
            Number of frames in a clip.
        tubelet_size (`int`, *optional*, defaults to 2):
            Number of frames in a tubelet (the temporal size of a patch).
        hidden_size (`int`, *optional*, defaults to 768):
            Width of the encoder.
        num_hidden_layers (`int`, *optional*, defaults to 12):
            Depth of the encoder.
        num_attention_heads (`int`, *optional*, defaults to 12):
            Attention heads of each encoder layer.
        intermediate_size (`int`, *optional*, defaults to 3072):
            Width of the encoder's MLP.
        hidden_act (`str`, *optional*, defaults to `"gelu"`):
            Activation of the MLPs.
        hidden_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout after the attention projection and after the MLP in encoder and decoder layers.
        attention_probs_dropout_prob (`float`, *optional*, defaults to 0.0):
            Dropout on the attention probabilities in encoder and decoder layers.
        drop_path_rate (`float`, *optional*, defaults to 0.0):
            Stochastic depth of the encoder, rising linearly from 0 at the first layer to this value at the last
            (0.1 in the paper's fine-tuning recipe).
        initializer_range (`float`, *optional*, defaults to 0.02):
            Standard deviation of the truncated normal used for the classification head and the mask token.
        layer_norm_eps (`float`, *optional*, defaults to 1e-6):
            Epsilon of the encoder's and decoder's LayerNorms (the reference uses 1e-6; transformers' VideoMAEConfig
            defaults to 1e-12).
        qv_bias (`bool`, *optional*, defaults to `True`):
            Whether queries and values have a bias in the encoder and decoder (keys never do; the sampler has none).
            Configs saved before this name existed spell it `qkv_bias`, which is still read (and still readable as
            `config.qkv_bias`).
        use_mean_pooling (`bool`, *optional*, defaults to `True`):
            Classification: mean-pool all tokens then `fc_norm` (the paper), or take the first token after a final
            LayerNorm (VideoMAE's alternative). Pretraining always ends the encoder with a final LayerNorm.
        head_init_scale (`float`, *optional*, defaults to 0.001):
            The new classification head's weights and bias are multiplied by this after initialisation (the
            reference's `--init_scale`).
        decoder_hidden_size (`int`, *optional*, defaults to 384):
            Width of the pretraining decoder.
        decoder_num_hidden_layers (`int`, *optional*, defaults to 4):
            Depth of the pretraining decoder.
        decoder_num_attention_heads (`int`, *optional*, defaults to 6):
            Attention heads of each decoder layer.
        decoder_intermediate_size (`int`, *optional*, defaults to 1536):
            Width of the decoder's MLP.
        norm_pix_loss (`bool`, *optional*, defaults to `True`):
            Reconstruct each patch normalised by its own per-channel mean and (unbiased) standard deviation.
        image_mean (`list[float]`, *optional*, defaults to ImageNet's `[0.485, 0.456, 0.406]`):
            Per-channel mean the inputs were normalised with; the targets are un-normalised with it (as the processor
            and the data pipeline normalise).
        image_std (`list[float]`, *optional*, defaults to ImageNet's `[0.229, 0.224, 0.225]`):
            Per-channel standard deviation the inputs were normalised with.
        mask_type (`str`, *optional*, defaults to `"adaptive"`):
            How the visible tokens are chosen in pretraining: `"adaptive"` (sampled from the learned token
            distribution, the paper), or the baselines `"tube"` (one random spatial mask repeated over time),
            `"random"` (uniform over all tokens) and `"frame"` (whole time slices).
        mask_ratio (`float`, *optional*, defaults to 0.95):
            Fraction of tokens masked. See [`~AdaMaeConfig.get_num_visible_tokens`] for how each mask type rounds.
        sampler_num_hidden_layers (`int`, *optional*, defaults to 1):
            Depth of the token sampler (transformer blocks before its logit layer).
        sampler_hidden_size (`int`, *optional*):
            Width of the sampler; defaults to `hidden_size` (the paper). A different width adds a linear projection
            from the patch embeddings into the sampler.
        sampler_num_attention_heads (`int`, *optional*, defaults to 8):
            Attention heads of each sampler layer.
        sampler_intermediate_size (`int`, *optional*):
            Width of the sampler's MLP; defaults to 4 x `sampler_hidden_size`.
        sampler_dropout_prob (`float`, *optional*, defaults to 0.1):
            Dropout after the sampler's attention projection and after its MLP.
        sampler_layer_norm_eps (`float`, *optional*, defaults to 1e-5):
            Epsilon of the sampler's LayerNorms (torch's default, as in the reference).
        sampling_loss_weight (`float`, *optional*, defaults to 1e-4):
            Weight lambda of the sampling (REINFORCE) loss in the total loss.

    Example:

    ```python
    >>> from configuration_adamae import AdaMaeConfig
    >>> config = AdaMaeConfig()  # ViT-B/16, 16 x 224 x 224, adaptive masking at 0.95
    >>> config.num_patches, config.get_num_visible_tokens()
    (1568, 78)
    ```
    """

    model_type = "adamae"
    # The flag's old name, as configs saved by earlier releases (and VideoMAE's before 5.x) spell it.
    attribute_map = {"qkv_bias": "qv_bias"}

    def __init__(
        self,
        image_size=224,
        patch_size=16,
        num_channels=3,
        num_frames=16,
        tubelet_size=2,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        hidden_act="gelu",
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        drop_path_rate=0.0,
        initializer_range=0.02,
        layer_norm_eps=1e-6,
        qv_bias=True,
        use_mean_pooling=True,
        head_init_scale=0.001,
        decoder_hidden_size=384,
        decoder_num_hidden_layers=4,
        decoder_num_attention_heads=6,
        decoder_intermediate_size=1536,
        norm_pix_loss=True,
        image_mean=None,
        image_std=None,
        mask_type="adaptive",
        mask_ratio=0.95,
        sampler_num_hidden_layers=1,
        sampler_hidden_size=None,
        sampler_num_attention_heads=8,
        sampler_intermediate_size=None,
        sampler_dropout_prob=0.1,
        sampler_layer_norm_eps=1e-5,
        sampling_loss_weight=1e-4,
        **kwargs,
    ):
        self.image_size = list(image_size) if isinstance(image_size, (list, tuple)) else image_size
        self.patch_size = patch_size
        self.num_channels = num_channels
        self.num_frames = num_frames
        self.tubelet_size = tubelet_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.hidden_act = hidden_act
        self.hidden_dropout_prob = hidden_dropout_prob
        self.attention_probs_dropout_prob = attention_probs_dropout_prob
        self.drop_path_rate = drop_path_rate
        self.initializer_range = initializer_range
        self.layer_norm_eps = layer_norm_eps
        self.qv_bias = kwargs.pop("qkv_bias", qv_bias)
        self.use_mean_pooling = use_mean_pooling
        self.head_init_scale = head_init_scale
        self.decoder_hidden_size = decoder_hidden_size
        self.decoder_num_hidden_layers = decoder_num_hidden_layers
        self.decoder_num_attention_heads = decoder_num_attention_heads
        self.decoder_intermediate_size = decoder_intermediate_size
        self.norm_pix_loss = norm_pix_loss
        self.image_mean = [float(v) for v in (IMAGENET_DEFAULT_MEAN if image_mean is None else image_mean)]
        self.image_std = [float(v) for v in (IMAGENET_DEFAULT_STD if image_std is None else image_std)]
        self.mask_type = mask_type
        self.mask_ratio = mask_ratio
        self.sampler_num_hidden_layers = sampler_num_hidden_layers
        self.sampler_hidden_size = hidden_size if sampler_hidden_size is None else sampler_hidden_size
        self.sampler_num_attention_heads = sampler_num_attention_heads
        self.sampler_intermediate_size = (
            4 * self.sampler_hidden_size if sampler_intermediate_size is None else sampler_intermediate_size
        )
        self.sampler_dropout_prob = sampler_dropout_prob
        self.sampler_layer_norm_eps = sampler_layer_norm_eps
        self.sampling_loss_weight = sampling_loss_weight
        # Every saved config.json lists all the AdaMAE classes, so that any saved folder loads with any of these Auto
        # classes (`trust_remote_code=True`), e.g. a pretraining folder with AutoModelForVideoClassification.
        kwargs.setdefault("auto_map", dict(AUTO_MAP))
        super().__init__(**kwargs)
        self._validate()

    # ----------------------------------------------------------------------------------------------------------------
    # Derived sizes (the token shapes are §1 of docs/method.md in the adamae-hf repository)

    @property
    def frame_size(self) -> tuple[int, int]:
        """(height, width) of a frame."""
        if isinstance(self.image_size, (list, tuple)):
            return int(self.image_size[0]), int(self.image_size[1])
        return int(self.image_size), int(self.image_size)

    @property
    def token_grid(self) -> tuple[int, int, int]:
        """(time slices, patch rows, patch columns): the token layout, flattened time-major into the sequence."""
        height, width = self.frame_size
        return self.num_frames // self.tubelet_size, height // self.patch_size, width // self.patch_size

    @property
    def num_patches(self) -> int:
        """Number of tokens N of one clip."""
        time_slices, rows, columns = self.token_grid
        return time_slices * rows * columns

    @property
    def patch_dim(self) -> int:
        """Values reconstructed per token: channels x tubelet x patch x patch (1536 for the default)."""
        return self.num_channels * self.tubelet_size * self.patch_size**2

    def get_num_visible_tokens(self, mask_type: str | None = None, mask_ratio: float | None = None) -> int:
        """Number of visible tokens K for a mask type and ratio (the config's when not given).

        Each mask type rounds as its reference implementation does (§2 of docs/method.md in the adamae-hf
        repository):
        - `adaptive`: K = int(N * (1 - ratio)) (AdaMAE; 78 of 1568 at 0.95);
        - `random`: int(ratio * N) tokens masked (VideoMAE's random masking);
        - `tube`: int(ratio * h * w) patches masked in every time slice (VideoMAE's tube masking);
        - `frame`: int(ratio * t) whole time slices masked.
        """
        mask_type = self.mask_type if mask_type is None else mask_type
        mask_ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        time_slices, rows, columns = self.token_grid
        tokens_per_slice = rows * columns
        if mask_type == "adaptive":
            return int(self.num_patches * (1 - mask_ratio))
        if mask_type == "random":
            return self.num_patches - int(mask_ratio * self.num_patches)
        if mask_type == "tube":
            return time_slices * (tokens_per_slice - int(mask_ratio * tokens_per_slice))
        if mask_type == "frame":
            return (time_slices - int(mask_ratio * time_slices)) * tokens_per_slice
        raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}.")

    def check_mask(self, mask_type: str | None = None, mask_ratio: float | None = None) -> int:
        """Validate a mask type and ratio for this config; return the number of visible tokens."""
        mask_type = self.mask_type if mask_type is None else mask_type
        mask_ratio = self.mask_ratio if mask_ratio is None else mask_ratio
        if mask_type not in MASK_TYPES:
            raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}.")
        if not isinstance(mask_ratio, (int, float)) or not 0.0 < mask_ratio < 1.0:
            raise ValueError(f"mask_ratio must be a number in the open interval (0, 1), got {mask_ratio!r}.")
        num_visible = self.get_num_visible_tokens(mask_type, mask_ratio)
        if not 0 < num_visible < self.num_patches:
            raise ValueError(
                f"mask_ratio={mask_ratio} with mask_type={mask_type!r} leaves {num_visible} visible tokens of "
                f"{self.num_patches} (token grid t x h x w = {self.token_grid}); at least 1 token must be visible and "
                "at least 1 masked. Choose a mask_ratio that keeps 1 <= visible tokens <= "
                f"{self.num_patches - 1} for this mask type."
            )
        return num_visible

    # ----------------------------------------------------------------------------------------------------------------
    # Validation

    def _validate(self):
        self._validate_layer_sizes()
        self._validate_clip_geometry()
        self._validate_head_widths()
        self._validate_rates_and_normalisation()
        self.check_mask()

    def _validate_layer_sizes(self):
        """Every size is a positive integer."""
        for name in (
            "patch_size",
            "num_channels",
            "num_frames",
            "tubelet_size",
            "hidden_size",
            "num_hidden_layers",
            "num_attention_heads",
            "intermediate_size",
            "decoder_hidden_size",
            "decoder_num_hidden_layers",
            "decoder_num_attention_heads",
            "decoder_intermediate_size",
            "sampler_num_hidden_layers",
            "sampler_hidden_size",
            "sampler_num_attention_heads",
            "sampler_intermediate_size",
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")

    def _validate_clip_geometry(self):
        """The clip cuts into whole patches and tubelets, and gives at most `MAX_NUM_PATCHES` tokens."""
        image_size = self.image_size
        sizes = image_size if isinstance(image_size, (list, tuple)) else [image_size]
        if len(sizes) not in (1, 2) or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
            raise ValueError(f"image_size must be a positive integer or a (height, width) pair, got {image_size!r}.")
        for side, size in zip(("height", "width"), self.frame_size):
            if size > MAX_IMAGE_SIZE:
                raise ValueError(f"image_size {side} must be at most {MAX_IMAGE_SIZE} pixels, got {size}.")
            if size % self.patch_size != 0:
                raise ValueError(f"image_size {side} ({size}) must be divisible by patch_size ({self.patch_size}).")
        if self.num_frames % self.tubelet_size != 0:
            raise ValueError(
                f"num_frames ({self.num_frames}) must be divisible by tubelet_size ({self.tubelet_size})."
            )
        if self.num_patches > MAX_NUM_PATCHES:
            raise ValueError(
                f"num_frames={self.num_frames}, image_size={self.image_size} give {self.num_patches} tokens "
                f"(token grid t x h x w = {self.token_grid}); at most {MAX_NUM_PATCHES} are supported. Use fewer "
                "frames, smaller frames, or a larger patch_size / tubelet_size."
            )

    def _validate_head_widths(self):
        """Each width splits evenly into its attention heads."""
        for width_name, heads_name in (
            ("hidden_size", "num_attention_heads"),
            ("decoder_hidden_size", "decoder_num_attention_heads"),
            ("sampler_hidden_size", "sampler_num_attention_heads"),
        ):
            width, heads = getattr(self, width_name), getattr(self, heads_name)
            if width % heads != 0:
                raise ValueError(f"{width_name} ({width}) must be divisible by {heads_name} ({heads}).")

    def _validate_rates_and_normalisation(self):
        """Dropout rates in [0, 1), one mean and one positive std per channel, a non-negative sampling loss weight."""
        for name in (
            "hidden_dropout_prob",
            "attention_probs_dropout_prob",
            "drop_path_rate",
            "sampler_dropout_prob",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not 0.0 <= value < 1.0:
                raise ValueError(f"{name} must be in [0, 1), got {value!r}.")
        for name in ("image_mean", "image_std"):
            values = getattr(self, name)
            if len(values) != self.num_channels:
                raise ValueError(f"{name} must have one value per channel ({self.num_channels}), got {values}.")
        if not all(value > 0 for value in self.image_std):
            raise ValueError(f"image_std must be positive, got {self.image_std}.")
        if not isinstance(self.sampling_loss_weight, (int, float)) or self.sampling_loss_weight < 0:
            raise ValueError(f"sampling_loss_weight must be >= 0, got {self.sampling_loss_weight!r}.")


AdaMaeConfig.register_for_auto_class()

__all__ = [
    "AdaMaeConfig",
    "MASK_TYPES",
    "MAX_IMAGE_SIZE",
    "MAX_NUM_PATCHES",
    "MIN_TRANSFORMERS_VERSION",
    "check_transformers_version",
]
