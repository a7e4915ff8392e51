import itertools
import math
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import save_file
from tiny_configs import TINY, tiny_config
from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForPreTraining,
    AutoModelForVideoClassification,
    VideoMAEConfig,
    VideoMAEForPreTraining,
    VideoMAEForVideoClassification,
)
from transformers.models.videomae.modeling_videomae import get_sinusoid_encoding_table
from without_project import run_without_project

import adamae_hf  # noqa: F401  (registers the Auto classes)
from configuration_adamae import AdaMaeConfig
from modeling_adamae import (
    AdaMaeForPreTraining,
    AdaMaeForVideoClassification,
    AdaMaeModel,
    gumbel_top_k,
    sinusoid_position_table,
)


IMAGENET_MEAN = torch.tensor([0.485, 0.456, 0.406])
IMAGENET_STD = torch.tensor([0.229, 0.224, 0.225])


def pixel_values(batch_size=2, config=None, seed=0):
    config = config or tiny_config()
    generator = torch.Generator().manual_seed(seed)
    height, width = config.frame_size
    return torch.randn(batch_size, config.num_frames, config.num_channels, height, width, generator=generator)


def noise_for(batch_size, config, seed=1):
    return torch.rand(batch_size, config.num_patches, generator=torch.Generator().manual_seed(seed))


@pytest.fixture
def no_dropout_config():
    return tiny_config(sampler_dropout_prob=0.0)


# ---------------------------------------------------------------------------------------------------------------------
# The sampler


def exact_inclusion_probabilities(probs: list[float], num_samples: int):
    """Sequential sampling without replacement, enumerated: P(token i in the sample) and P(sample == set S)."""
    inclusion = [0.0] * len(probs)
    set_probability = {}
    for sequence in itertools.permutations(range(len(probs)), num_samples):
        probability, remaining = 1.0, 1.0
        for index in sequence:
            probability *= probs[index] / remaining
            remaining -= probs[index]
        for index in sequence:
            inclusion[index] += probability
        key = frozenset(sequence)
        set_probability[key] = set_probability.get(key, 0.0) + probability
    return inclusion, set_probability


def test_gumbel_top_k_always_draws_k_distinct_indices():
    torch.manual_seed(0)
    logits = torch.randn(500, 64) * 3
    indices = gumbel_top_k(torch.log_softmax(logits, -1), 16, torch.rand(500, 64))
    assert indices.shape == (500, 16)
    assert all(len(set(row.tolist())) == 16 for row in indices)
    assert indices.min() >= 0 and indices.max() < 64


def test_gumbel_top_k_matches_sequential_sampling_without_replacement():
    """Empirical inclusion frequencies match the exact enumerated probabilities of K sequential draws without
    replacement (the distribution of torch.multinomial(p, K, replacement=False)). Tolerance: 5 binomial standard
    errors per token / per set, with n = 200,000 draws."""
    probs = [0.4, 0.25, 0.15, 0.1, 0.07, 0.03]
    num_samples, draws = 3, 200_000
    inclusion, set_probability = exact_inclusion_probabilities(probs, num_samples)
    assert math.isclose(sum(inclusion), num_samples)

    generator = torch.Generator().manual_seed(1234)
    log_probs = torch.tensor(probs).log().expand(draws, -1)
    indices = gumbel_top_k(log_probs, num_samples, torch.rand(draws, len(probs), generator=generator))

    counts = torch.zeros(len(probs)).index_add_(0, indices.flatten(), torch.ones(indices.numel()))
    for token, (count, exact) in enumerate(zip(counts.tolist(), inclusion)):
        standard_error = math.sqrt(exact * (1 - exact) / draws)
        assert abs(count / draws - exact) < 5 * standard_error, f"token {token}: {count / draws:.4f} vs {exact:.4f}"

    sets = {}
    for row in indices.sort(dim=1).values.tolist():
        sets[frozenset(row)] = sets.get(frozenset(row), 0) + 1
    for key, exact in set_probability.items():
        standard_error = math.sqrt(exact * (1 - exact) / draws)
        assert abs(sets.get(key, 0) / draws - exact) < 5 * standard_error + 1e-6, f"set {sorted(key)}"


def test_sampler_probabilities_are_a_distribution_over_tokens():
    model = AdaMaeForPreTraining(tiny_config()).eval()
    outputs = model(pixel_values())
    assert outputs.token_probs.shape == (2, 64)
    torch.testing.assert_close(outputs.token_probs.sum(-1), torch.ones(2))


def test_adaptive_mask_follows_the_sampler():
    """Tokens the sampler puts (almost) all probability on are the visible ones."""
    model = AdaMaeForPreTraining(tiny_config()).eval()
    logits = torch.full((3, 64), -30.0)
    favourites = torch.stack([torch.randperm(64)[:16] for _ in range(3)])
    logits.scatter_(1, favourites, 30.0)
    mask = model.generate_mask(3, sampler_logits=logits)
    expected = torch.ones(3, 64, dtype=torch.bool).scatter(1, favourites, False)
    assert torch.equal(mask, expected)


# ---------------------------------------------------------------------------------------------------------------------
# Masks


@pytest.mark.parametrize("mask_type", ["adaptive", "tube", "random", "frame"])
def test_same_noise_gives_the_same_mask_and_outputs(mask_type):
    config = tiny_config(mask_type=mask_type)
    model = AdaMaeForPreTraining(config).eval()
    video, noise = pixel_values(), noise_for(2, config)
    first, second = model(video, noise=noise), model(video, noise=noise)
    assert torch.equal(first.mask, second.mask)
    torch.testing.assert_close(first.logits, second.logits)
    other = model(video, noise=noise_for(2, config, seed=2))
    assert not torch.equal(first.mask, other.mask)


@pytest.mark.parametrize(
    "mask_type, mask_ratio", [("adaptive", 0.75), ("adaptive", 0.9), ("tube", 0.75), ("random", 0.6), ("frame", 0.5)]
)
def test_each_mask_type_masks_the_configured_count_with_its_structure(mask_type, mask_ratio):
    config = tiny_config(mask_type=mask_type, mask_ratio=mask_ratio)
    model = AdaMaeForPreTraining(config).eval()
    batch_size = 6
    outputs = model(pixel_values(batch_size, config), noise=noise_for(batch_size, config))
    mask = outputs.mask
    num_masked = config.num_patches - config.get_num_visible_tokens()
    assert mask.dtype == torch.bool and mask.shape == (batch_size, 64)
    assert mask.sum(dim=1).tolist() == [num_masked] * batch_size
    assert outputs.logits.shape == (batch_size, num_masked, config.patch_dim)
    per_slice = mask.view(batch_size, 4, 16)  # (B, time slices, h * w)
    if mask_type == "tube":
        assert torch.equal(per_slice, per_slice[:, :1].expand_as(per_slice))
    if mask_type == "frame":
        assert torch.equal(per_slice, per_slice[:, :, :1].expand_as(per_slice))
    assert (outputs.token_probs is None) == (mask_type != "adaptive")
    assert (outputs.sampling_loss is None) == (mask_type != "adaptive")
    assert (model.sampler is None) == (mask_type != "adaptive")


def test_generate_mask_takes_another_type_and_ratio():
    model = AdaMaeForPreTraining(tiny_config())
    mask = model.generate_mask(2, mask_type="tube", mask_ratio=0.5)
    assert mask.sum(dim=1).tolist() == [32, 32]
    with pytest.raises(ValueError, match="mask_ratio"):
        model.generate_mask(2, mask_type="random", mask_ratio=1.0)
    with pytest.raises(ValueError, match="sampler_logits"):
        model.generate_mask(2, mask_type="adaptive")


def test_given_mask_overrides_sampling_and_the_sampler_still_reports():
    config = tiny_config()
    model = AdaMaeForPreTraining(config).eval()
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[:, 10:50] = True  # 24 visible instead of the configured 16
    outputs = model(pixel_values(), bool_masked_pos=mask)
    assert torch.equal(outputs.mask, mask)
    assert outputs.logits.shape == (2, 40, config.patch_dim)
    assert outputs.token_probs is not None and outputs.sampling_loss is not None
    ragged = mask.clone()
    ragged[1, 0] = True
    with pytest.raises(ValueError, match="same number of visible tokens"):
        model(pixel_values(), bool_masked_pos=ragged)


# ---------------------------------------------------------------------------------------------------------------------
# Losses


def reference_targets(video: torch.Tensor, config: AdaMaeConfig) -> torch.Tensor:
    """Targets written out token by token: (B, N, 1536-style) with pixels (t, y, x, c), normalised per patch."""
    frames = video * IMAGENET_STD[None, None, :, None, None] + IMAGENET_MEAN[None, None, :, None, None]
    time_slices, rows, columns = config.token_grid
    t, p = config.tubelet_size, config.patch_size
    batch = []
    for b in range(video.shape[0]):
        tokens = []
        for ti, hi, wi in itertools.product(range(time_slices), range(rows), range(columns)):
            patch = frames[b, ti * t : (ti + 1) * t, :, hi * p : (hi + 1) * p, wi * p : (wi + 1) * p]
            patch = patch.permute(0, 2, 3, 1).reshape(-1, config.num_channels)  # (t*p*p, C)
            patch = (patch - patch.mean(0)) / (patch.std(0, unbiased=True) + 1e-6)
            tokens.append(patch.flatten())
        batch.append(torch.stack(tokens))
    return torch.stack(batch)


def test_losses_equal_a_per_sample_reference_computation():
    config = tiny_config()
    model = AdaMaeForPreTraining(config).eval()
    video = pixel_values(3, config)
    outputs = model(video, noise=noise_for(3, config))
    targets = reference_targets(video, config)

    per_token, sampling = [], []
    for b in range(3):
        masked_targets = targets[b][outputs.mask[b]]  # masked tokens in ascending order
        l_r = ((outputs.logits[b] - masked_targets) ** 2).mean(-1)
        per_token.append(l_r)
        categorical = torch.distributions.Categorical(probs=outputs.token_probs[b])
        log_probs = categorical.log_prob(torch.arange(config.num_patches))[outputs.mask[b]]
        sampling.append(-(log_probs * l_r.detach()).mean())
    torch.testing.assert_close(outputs.reconstruction_loss, torch.cat(per_token).mean())
    torch.testing.assert_close(outputs.sampling_loss, 1e-4 * torch.stack(sampling).mean())
    torch.testing.assert_close(outputs.loss, outputs.reconstruction_loss + outputs.sampling_loss)


def test_targets_without_norm_pix_loss_are_unnormalised_pixels():
    config = tiny_config(norm_pix_loss=False)
    model = AdaMaeForPreTraining(config)
    video = pixel_values(1, config)
    frames = video * IMAGENET_STD[None, None, :, None, None] + IMAGENET_MEAN[None, None, :, None, None]
    targets = model.compute_targets(video)
    first_patch = frames[0, 0:2, :, 0:8, 0:8].permute(0, 2, 3, 1).flatten()
    torch.testing.assert_close(targets[0, 0], first_patch)
    torch.testing.assert_close(model.unpatchify(targets), frames)


def test_targets_un_normalise_with_the_configs_statistics():
    mean, std = [0.5, 0.4, 0.3], [0.1, 0.2, 0.3]
    config = tiny_config(norm_pix_loss=False, image_mean=mean, image_std=std)
    video = pixel_values(1, config)
    frames = video * torch.tensor(std)[None, None, :, None, None] + torch.tensor(mean)[None, None, :, None, None]
    model = AdaMaeForPreTraining(config)
    torch.testing.assert_close(model.unpatchify(model.compute_targets(video)), frames)


def test_sampling_loss_reaches_the_sampler_and_the_patch_embedding():
    model = AdaMaeForPreTraining(tiny_config()).eval()
    outputs = model(pixel_values())
    sampler_params = [p for p in model.sampler.parameters()]
    patch_embedding = model.videomae.embeddings.patch_embeddings.projection.weight
    grads = torch.autograd.grad(outputs.sampling_loss, sampler_params + [patch_embedding], allow_unused=True)
    assert all(g is not None for g in grads)
    assert grads[-1].abs().sum() > 0
    assert sum(g.abs().sum() for g in grads[:-1]) > 0
    # The decoder gets no gradient from the sampling loss: the reconstruction error is a stopped reward.
    decoder_grads = torch.autograd.grad(outputs.sampling_loss, list(model.decoder.parameters()), allow_unused=True)
    assert all(g is None for g in decoder_grads)


def test_reconstruction_gradients_do_not_flow_through_p():
    model = AdaMaeForPreTraining(tiny_config()).eval()
    outputs = model(pixel_values())
    grads = torch.autograd.grad(outputs.reconstruction_loss, list(model.sampler.parameters()), allow_unused=True)
    assert all(g is None for g in grads)


# ---------------------------------------------------------------------------------------------------------------------
# Model API


def test_pretraining_outputs_hidden_states_and_tuples():
    config = tiny_config()
    model = AdaMaeForPreTraining(config).eval()
    video, noise = pixel_values(), noise_for(2, config)
    outputs = model(video, noise=noise, output_hidden_states=True)
    assert len(outputs.hidden_states) == config.num_hidden_layers + 1
    assert all(h.shape == (2, 16, 32) for h in outputs.hidden_states)
    as_tuple = model(video, noise=noise, return_dict=False)
    assert isinstance(as_tuple, tuple) and len(as_tuple) == 6
    torch.testing.assert_close(as_tuple[0], outputs.loss)
    torch.testing.assert_close(as_tuple[3], outputs.logits)


def attention_weights_by_hand(layer, layer_input: torch.Tensor, num_heads: int) -> torch.Tensor:
    """softmax(q k^T / sqrt(head_dim)) of one encoder layer, from its input `(B, L, D)`: `(B, heads, L, L)`."""
    attention = layer.attention.attention
    normed = layer.layernorm_before(layer_input)
    batch_size, length, width = normed.shape
    heads_shape = (batch_size, length, num_heads, width // num_heads)
    query = attention.query(normed).view(heads_shape).transpose(1, 2)
    key = attention.key(normed).view(heads_shape).transpose(1, 2)
    return (query @ key.transpose(-1, -2) / math.sqrt(width // num_heads)).softmax(dim=-1)


def test_output_attentions_are_each_encoder_layers_attention_weights():
    config = tiny_config(num_labels=3)
    model = AdaMaeForVideoClassification(config).eval()
    model.set_attn_implementation("eager")  # sdpa does not form the weights
    video = pixel_values()
    outputs = model(video, output_attentions=True, output_hidden_states=True)
    assert len(outputs.attentions) == config.num_hidden_layers
    for layer, layer_input, weights in zip(model.videomae.encoder.layer, outputs.hidden_states, outputs.attentions):
        assert weights.shape == (2, 2, 64, 64)
        torch.testing.assert_close(weights, attention_weights_by_hand(layer, layer_input, num_heads=2))
    assert model(video).attentions is None
    torch.testing.assert_close(model(video, output_attentions=True).logits, outputs.logits)


def test_pretraining_output_attentions_cover_the_visible_tokens_of_the_encoder_only():
    config = tiny_config()
    model = AdaMaeForPreTraining(config).eval()
    model.set_attn_implementation("eager")
    video, noise = pixel_values(), noise_for(2, config)
    outputs = model(video, noise=noise, output_attentions=True, output_hidden_states=True)
    # the encoder's 2 layers on 16 visible tokens; the sampler's and decoder's layers are not recorded
    assert [tuple(weights.shape) for weights in outputs.attentions] == [(2, 2, 16, 16)] * config.num_hidden_layers
    first_layer = model.videomae.encoder.layer[0]
    torch.testing.assert_close(
        outputs.attentions[0], attention_weights_by_hand(first_layer, outputs.hidden_states[0], num_heads=2)
    )
    plain = model(video, noise=noise)
    assert plain.attentions is None and plain.hidden_states is None
    torch.testing.assert_close(plain.loss, outputs.loss)
    as_tuple = model(video, noise=noise, output_attentions=True, return_dict=False)
    assert len(as_tuple) == 7 and len(as_tuple[-1]) == config.num_hidden_layers


def test_output_flags_and_return_dict_default_to_the_configs():
    config = tiny_config(num_labels=3, output_hidden_states=True, return_dict=False)
    classifier = AdaMaeForVideoClassification(config).eval()
    logits, hidden_states = classifier(pixel_values())
    assert logits.shape == (2, 3) and len(hidden_states) == config.num_hidden_layers + 1
    pretraining = AdaMaeForPreTraining(tiny_config(output_hidden_states=True)).eval()
    outputs = pretraining(pixel_values(), return_dict=True)
    assert [tuple(h.shape) for h in outputs.hidden_states] == [(2, 16, 32)] * 3


def test_base_model_encodes_given_tokens_like_the_masked_video():
    model = AdaMaeModel(tiny_config()).eval()
    video = pixel_values()
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[:, 1::2] = True
    visible_tokens = model.embeddings(video)[:, ::2]  # the visible tokens, with their positions
    torch.testing.assert_close(
        model(inputs_embeds=visible_tokens).last_hidden_state, model(video, bool_masked_pos=mask).last_hidden_state
    )
    with pytest.raises(ValueError, match="exactly one of pixel_values and inputs_embeds"):
        model(video, inputs_embeds=visible_tokens)


def test_bad_pixel_values_shape_names_expected_and_got():
    model = AdaMaeForPreTraining(tiny_config())
    with pytest.raises(ValueError, match=r"\(batch_size, 8, 3, 32, 32\).*got \(2, 3, 8, 32, 32\)"):
        model(torch.randn(2, 3, 8, 32, 32))


def test_base_model_encodes_all_or_visible_tokens():
    config = tiny_config(use_mean_pooling=False)
    model = AdaMaeModel(config).eval()
    video = pixel_values()
    assert model(video).last_hidden_state.shape == (2, 64, 32)
    mask = torch.zeros(2, 64, dtype=torch.bool)
    mask[:, ::2] = True
    visible = model(video, bool_masked_pos=mask).last_hidden_state
    assert visible.shape == (2, 32, 32)
    assert model.layernorm is not None and AdaMaeModel(tiny_config()).layernorm is None


def test_classification_mean_pooling_head():
    config = tiny_config(num_labels=5)
    model = AdaMaeForVideoClassification(config).eval()
    video = pixel_values()
    outputs = model(video, output_hidden_states=True)
    sequence = model.videomae(video).last_hidden_state
    expected = model.classifier(model.fc_norm(sequence.mean(1)))
    torch.testing.assert_close(outputs.logits, expected)
    assert len(outputs.hidden_states) == 3 and outputs.hidden_states[0].shape == (2, 64, 32)
    # The new head starts tiny (the reference's init_scale 0.001).
    assert model.classifier.weight.abs().max() < 1e-3


def test_classification_first_token_head_without_mean_pooling():
    config = tiny_config(num_labels=3, use_mean_pooling=False)
    model = AdaMaeForVideoClassification(config).eval()
    assert model.fc_norm is None and model.videomae.layernorm is not None
    video = pixel_values()
    sequence = model.videomae(video).last_hidden_state  # already normalised by the final LayerNorm
    torch.testing.assert_close(model(video).logits, model.classifier(sequence[:, 0]))


def test_classification_losses_follow_problem_type():
    video = pixel_values()
    model = AdaMaeForVideoClassification(tiny_config(num_labels=4)).eval()
    labels = torch.tensor([1, 3])
    outputs = model(video, labels=labels)
    torch.testing.assert_close(outputs.loss, torch.nn.functional.cross_entropy(outputs.logits, labels))
    assert model.config.problem_type == "single_label_classification"

    soft = torch.tensor([[0.0, 0.7, 0.3, 0.0], [0.25, 0.25, 0.25, 0.25]])
    expected = -(soft * outputs.logits.log_softmax(-1)).sum(-1).mean()
    torch.testing.assert_close(model(video, labels=soft).loss, expected)

    multi = AdaMaeForVideoClassification(tiny_config(num_labels=4, problem_type="multi_label_classification")).eval()
    targets = torch.tensor([[1.0, 0, 1, 0], [0, 0, 0, 1]])
    logits = multi(video).logits
    torch.testing.assert_close(
        multi(video, labels=targets).loss, torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
    )

    regression = AdaMaeForVideoClassification(tiny_config(num_labels=1)).eval()
    values = torch.tensor([0.5, -1.0])
    torch.testing.assert_close(
        regression(video, labels=values).loss,
        torch.nn.functional.mse_loss(regression(video).logits.squeeze(-1), values),
    )


def test_drop_path_is_stochastic_in_training_only():
    model = AdaMaeForVideoClassification(tiny_config(num_labels=2, drop_path_rate=0.5))
    rates = [
        layer.drop_path.drop_prob for layer in model.videomae.encoder.layer if hasattr(layer.drop_path, "drop_prob")
    ]
    assert rates == [0.5]  # linear from 0 (first layer: no drop path) to 0.5 (last)
    video = pixel_values(4)
    model.train()
    torch.manual_seed(0)
    first = model(video).logits
    second = model(video).logits
    assert not torch.allclose(first, second)
    model.eval()
    torch.testing.assert_close(model(video).logits, model(video).logits)


def test_patch_embedding_as_a_matrix_product_equals_the_conv3d():
    model = AdaMaeModel(tiny_config()).eval()
    video = pixel_values()
    conv = model.embeddings.patch_embeddings(video)  # VideoMAE's Conv3d module: (B, N, D)
    ours = model.embeddings(video) - model.embeddings.position_embeddings
    torch.testing.assert_close(ours, conv, rtol=1e-5, atol=1e-5)


def test_initialisation_follows_the_reference():
    torch.manual_seed(0)
    model = AdaMaeForPreTraining(tiny_config())
    # xavier-uniform linears: bound sqrt(6 / (fan_in + fan_out)); query/key/value are thirds of a fused 3D x D layer
    query = model.videomae.encoder.layer[0].attention.attention.query
    bound = math.sqrt(6 / (32 + 3 * 32))
    assert query.weight.abs().max() <= bound and query.weight.abs().max() > 0.9 * bound
    assert torch.count_nonzero(query.bias) == 0
    fc1 = model.videomae.encoder.layer[0].intermediate.dense.weight  # 64 x 32
    assert fc1.abs().max() <= math.sqrt(6 / 96) and fc1.abs().max() > 0.9 * math.sqrt(6 / 96)
    # encoder_to_decoder keeps torch's default (kaiming-uniform, a = sqrt(5)): bound 1 / sqrt(fan_in)
    projection = model.encoder_to_decoder.weight
    assert projection.abs().max() <= 1 / math.sqrt(32) and projection.abs().max() > 0.9 / math.sqrt(32)
    # mask token: normal(0, 0.02) truncated at one standard deviation; sampler positions start at zero
    assert model.mask_token.abs().max() <= 0.02 and model.mask_token.std() > 0.005
    assert torch.count_nonzero(model.sampler.position_embeddings) == 0


def test_query_key_value_start_as_thirds_of_the_references_fused_qkv_layer():
    """The reference's q, k, v are one xavier-uniform Linear (3D x D): each gets std sqrt(2 / (D + 3D)) (0.0255 at
    D = 768, 0.036 at the decoder's 384), not the sqrt(2 / 2D) (0.0361, 0.051) of a separate D x D layer. Every other
    Linear keeps plain xavier."""
    torch.manual_seed(0)
    config = tiny_config(
        hidden_size=128,
        num_attention_heads=2,
        intermediate_size=256,
        decoder_hidden_size=96,
        decoder_num_attention_heads=2,
        decoder_intermediate_size=192,
        sampler_num_attention_heads=2,
    )
    model = AdaMaeForPreTraining(config)
    parts = {"encoder": model.videomae.encoder.layer, "sampler": model.sampler.layer}
    parts["decoder"] = model.decoder.decoder_layers
    checked = 0
    for part, layers in parts.items():
        for layer in layers:
            attention = layer.attention.attention
            for name in ("query", "key", "value"):
                weight = getattr(attention, name).weight
                width = weight.shape[1]
                expected = math.sqrt(2 / (width + 3 * width))
                # std of a uniform estimated from >= 9216 samples: relative error ~ 0.6%; sqrt(2) apart from separate
                assert abs(weight.std().item() / expected - 1) < 0.05, (part, name, weight.std().item(), expected)
                assert weight.abs().max() <= math.sqrt(3) * expected
                checked += 1
            for linear in (layer.attention.output.dense, layer.intermediate.dense, layer.output.dense):
                fan_out, fan_in = linear.weight.shape
                expected = math.sqrt(2 / (fan_in + fan_out))
                assert abs(linear.weight.std().item() / expected - 1) < 0.05, (part, linear.weight.shape)
    num_layers = config.num_hidden_layers + config.sampler_num_hidden_layers + config.decoder_num_hidden_layers
    assert checked == 3 * num_layers


def test_sinusoid_table_equals_videomae():
    torch.testing.assert_close(sinusoid_position_table(64, 32), get_sinusoid_encoding_table(64, 32), rtol=0, atol=0)
    torch.testing.assert_close(sinusoid_position_table(1568, 384), get_sinusoid_encoding_table(1568, 384))


def videomae_config_like(config: AdaMaeConfig, **overrides) -> VideoMAEConfig:
    return VideoMAEConfig(
        **{k: v for k, v in TINY.items() if not k.startswith(("sampler", "mask"))},
        layer_norm_eps=config.layer_norm_eps,
        **overrides,
    )


def test_parameter_names_line_up_with_videomae():
    def names(model):
        return {k for k in model.state_dict() if not k.endswith("attention.attention.key.bias")}

    config = tiny_config(num_labels=3)
    classifier_names = names(AdaMaeForVideoClassification(config))
    assert classifier_names == names(VideoMAEForVideoClassification(videomae_config_like(config, num_labels=3)))
    pretraining_names = {k for k in names(AdaMaeForPreTraining(config)) if not k.startswith("sampler.")}
    assert pretraining_names == names(VideoMAEForPreTraining(videomae_config_like(config, use_mean_pooling=False)))
    # keys never have a bias, whichever transformers release builds the layers
    assert all(not k.endswith("key.bias") for k in AdaMaeForPreTraining(config).state_dict())


# ---------------------------------------------------------------------------------------------------------------------
# transformers integration


def test_save_and_load_round_trip_with_safetensors(tmp_path):
    config = tiny_config()
    model = AdaMaeForPreTraining(config).eval()
    model.save_pretrained(tmp_path)
    files = set(os.listdir(tmp_path))
    assert {"model.safetensors", "config.json", "configuration_adamae.py", "modeling_adamae.py"} <= files
    assert not any(name.endswith((".bin", ".pt", ".pth")) for name in files)
    loaded = AdaMaeForPreTraining.from_pretrained(tmp_path).eval()
    video, noise = pixel_values(), noise_for(2, config)
    torch.testing.assert_close(loaded(video, noise=noise).logits, model(video, noise=noise).logits)
    auto_map = AdaMaeConfig.from_pretrained(tmp_path).auto_map
    assert auto_map["AutoModelForVideoClassification"] == "modeling_adamae.AdaMaeForVideoClassification"
    assert auto_map["AutoConfig"] == "configuration_adamae.AdaMaeConfig"


def test_auto_classes(tmp_path):
    AdaMaeForPreTraining(tiny_config()).save_pretrained(tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), AdaMaeConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), AdaMaeModel)
    assert isinstance(AutoModelForPreTraining.from_pretrained(tmp_path), AdaMaeForPreTraining)
    classifier = AutoModelForVideoClassification.from_pretrained(tmp_path, num_labels=4)
    assert isinstance(classifier, AdaMaeForVideoClassification) and classifier.classifier.out_features == 4


def test_classification_from_pretraining_checkpoint_reports_dropped_and_new_weights(tmp_path):
    """transformers' loading info (and its load report) lists what a classifier drops from a pretraining folder and
    what it initialises anew; the encoder's weights are the pretraining's."""
    pretraining = AdaMaeForPreTraining(tiny_config())
    pretraining.save_pretrained(tmp_path)
    classifier, info = AdaMaeForVideoClassification.from_pretrained(tmp_path, num_labels=3, output_loading_info=True)
    unexpected = info["unexpected_keys"]
    groups = {".".join(k.split(".")[:2]) if k.startswith("videomae.") else k.split(".")[0] for k in unexpected}
    # the pretraining encoder's final LayerNorm too: the mean-pooling classifier has fc_norm instead
    assert groups == {"sampler", "decoder", "encoder_to_decoder", "mask_token", "videomae.layernorm"}
    assert set(info["missing_keys"]) == {"classifier.weight", "classifier.bias", "fc_norm.weight", "fc_norm.bias"}
    encoder = pretraining.videomae.encoder.layer[0].attention.attention.query.weight
    torch.testing.assert_close(classifier.videomae.encoder.layer[0].attention.attention.query.weight, encoder)


def test_head_size_mismatch_is_an_error_unless_told_to_reinitialise(tmp_path):
    AdaMaeForVideoClassification(tiny_config(num_labels=3)).save_pretrained(tmp_path)
    with pytest.raises(RuntimeError, match=r"ignore_mismatched_sizes"):
        AdaMaeForVideoClassification.from_pretrained(tmp_path, num_labels=5)
    resized, info = AdaMaeForVideoClassification.from_pretrained(
        tmp_path, num_labels=5, ignore_mismatched_sizes=True, output_loading_info=True
    )
    assert resized.classifier.out_features == 5
    assert {key for key, *_ in info["mismatched_keys"]} == {"classifier.weight", "classifier.bias"}


def test_eager_and_sdpa_give_equal_outputs(tmp_path):
    config = tiny_config()
    AdaMaeForPreTraining(config).save_pretrained(tmp_path)
    video, noise = pixel_values(), noise_for(2, config)
    outputs = {}
    for implementation in ("eager", "sdpa"):
        model = AdaMaeForPreTraining.from_pretrained(tmp_path, attn_implementation=implementation).eval()
        assert model.config._attn_implementation == implementation
        assert model.sampler.layer[0].attention.attention.config._attn_implementation == implementation
        outputs[implementation] = model(video, noise=noise)
    for field in ("logits", "token_probs", "loss"):
        torch.testing.assert_close(outputs["eager"][field], outputs["sdpa"][field], rtol=1e-5, atol=1e-5)
    # switching at run time reaches the sampler's and decoder's layers too
    model.set_attn_implementation("eager")
    assert model.decoder.decoder_layers[0].attention.attention.config._attn_implementation == "eager"


def test_gradient_checkpointing_gives_the_same_gradients(no_dropout_config):
    config = no_dropout_config
    video, noise = pixel_values(config=config), noise_for(2, config)

    def gradients(model):
        model.zero_grad()
        model(video, noise=noise).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    model = AdaMaeForPreTraining(config).train()
    reference = gradients(model)
    calls = []
    model.videomae.encoder.layer[0].intermediate.register_forward_hook(lambda *args: calls.append(1))
    getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()  # renamed in 5.2x
    assert all(layer.gradient_checkpointing for layer in model.videomae.encoder.layer)
    checkpointed = gradients(model)
    assert len(calls) == 2  # the layer ran again during backward
    assert reference.keys() == checkpointed.keys()
    for name in reference:
        torch.testing.assert_close(checkpointed[name], reference[name], rtol=1e-5, atol=1e-6)


def test_loads_in_bfloat16(tmp_path):
    config = tiny_config()
    model = AdaMaeForPreTraining(config).eval()
    model.save_pretrained(tmp_path)
    bf16 = AdaMaeForPreTraining.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    assert all(p.dtype == torch.bfloat16 for p in bf16.parameters())
    video, noise = pixel_values(), noise_for(2, config)
    outputs = bf16(video.to(torch.bfloat16), noise=noise)
    reference = model(video, noise=noise)
    assert torch.isfinite(outputs.loss)
    assert torch.equal(outputs.mask, reference.mask) or outputs.mask.sum() == reference.mask.sum()
    assert abs(outputs.reconstruction_loss.item() - reference.reconstruction_loss.item()) < 0.05 * abs(
        reference.reconstruction_loss.item()
    )
    classifier = AdaMaeForVideoClassification.from_pretrained(tmp_path, dtype=torch.bfloat16, num_labels=2)
    assert classifier(video.to(torch.bfloat16)).logits.dtype == torch.bfloat16


def test_pretraining_step_compiles_without_graph_breaks():
    """Static shapes end to end: the whole forward is one graph (dynamo's fullgraph mode fails on any break)."""
    config = tiny_config()
    model = AdaMaeForPreTraining(config).eval()
    video, noise = pixel_values(), noise_for(2, config)
    torch._dynamo.reset()
    compiled = torch.compile(model, backend="eager", fullgraph=True)
    torch.testing.assert_close(compiled(video, noise=noise).loss, model(video, noise=noise).loss)


def test_compiled_training_step_matches_eager_outputs_and_gradients(no_dropout_config):
    """The compiled path (AOTAutograd traces forward and backward, as inductor does on a GPU) computes the same loss
    and gradients as the plain one."""
    config = no_dropout_config
    video, noise = pixel_values(config=config), noise_for(2, config)
    model = AdaMaeForPreTraining(config).train()

    def loss_and_gradients(module):
        model.zero_grad()
        loss = module(video, noise=noise).loss
        loss.backward()
        return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}

    eager_loss, eager_grads = loss_and_gradients(model)
    torch._dynamo.reset()
    compiled_loss, compiled_grads = loss_and_gradients(torch.compile(model, backend="aot_eager", fullgraph=True))
    torch.testing.assert_close(compiled_loss, eager_loss)
    for name, grad in eager_grads.items():
        torch.testing.assert_close(compiled_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)


REMOTE_CODE_SCRIPT = textwrap.dedent(
    """
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForPreTraining, AutoModelForVideoClassification

    pretraining_dir, classification_dir, expected_file = sys.argv[1:4]
    expected = load_file(expected_file)
    model = AutoModelForPreTraining.from_pretrained(pretraining_dir, trust_remote_code=True).eval()
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    outputs = model(expected["pixel_values"], noise=expected["noise"])
    torch.testing.assert_close(outputs.logits, expected["pretraining_logits"])
    torch.testing.assert_close(outputs.token_probs, expected["token_probs"])

    classifier = AutoModelForVideoClassification.from_pretrained(classification_dir, trust_remote_code=True).eval()
    torch.testing.assert_close(classifier(expected["pixel_values"]).logits, expected["classification_logits"])
    # a pretraining folder also loads for classification
    fresh = AutoModelForVideoClassification.from_pretrained(pretraining_dir, trust_remote_code=True, num_labels=4)
    assert fresh.classifier.out_features == 4
    print("REMOTE CODE OK")
    """
)


def test_trust_remote_code_loads_in_a_fresh_process_without_the_project(tmp_path):
    config = tiny_config()
    video, noise = pixel_values(config=config), noise_for(2, config)
    pretraining = AdaMaeForPreTraining(config).eval()
    classifier = AdaMaeForVideoClassification(tiny_config(num_labels=3)).eval()
    pretraining.save_pretrained(tmp_path / "pretraining")
    classifier.save_pretrained(tmp_path / "classification")
    with torch.no_grad():
        outputs = pretraining(video, noise=noise)
        expected = {
            "pixel_values": video,
            "noise": noise,
            "pretraining_logits": outputs.logits,
            "token_probs": outputs.token_probs,
            "classification_logits": classifier(video).logits,
        }
    save_file({k: v.contiguous() for k, v in expected.items()}, tmp_path / "expected.safetensors")
    result = run_without_project(
        REMOTE_CODE_SCRIPT,
        [tmp_path / "pretraining", tmp_path / "classification", tmp_path / "expected.safetensors"],
        tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "REMOTE CODE OK" in result.stdout


# ---------------------------------------------------------------------------------------------------------------------
# The transformers version floor


@pytest.mark.parametrize(
    "version, ok",
    [("4.57.1", False), ("5.17.0", False), ("5.18.0", True), ("5.18.0.dev0", True), ("5.24.0", True), ("6.0", True)],
)
def test_transformers_version_check(version, ok):
    from configuration_adamae import MIN_TRANSFORMERS_VERSION, check_transformers_version

    assert MIN_TRANSFORMERS_VERSION == "5.18"
    if ok:
        check_transformers_version(version)
    else:
        with pytest.raises(ImportError, match=rf"AdaMAE needs transformers>=5\.18, but transformers {version} is"):
            check_transformers_version(version)


OLD_TRANSFORMERS = "import transformers\ntransformers.__version__ = '4.57.1'\n"


@pytest.mark.parametrize("module", ["adamae_hf", "modeling_adamae"])
def test_package_on_an_old_transformers_says_which_version_it_needs(module):
    result = subprocess.run(
        [sys.executable, "-c", OLD_TRANSFORMERS + f"import {module}"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    last_line = result.stderr.strip().splitlines()[-1]
    assert last_line.startswith("ImportError: AdaMAE needs transformers>=5.18, but transformers 4.57.1 is installed")


def test_hub_files_on_an_old_transformers_say_which_version_they_need(tmp_path):
    AdaMaeForPreTraining(tiny_config()).save_pretrained(tmp_path / "model")
    script = OLD_TRANSFORMERS + textwrap.dedent(
        """
        import sys
        from transformers import AutoModelForPreTraining

        try:
            AutoModelForPreTraining.from_pretrained(sys.argv[1], trust_remote_code=True)
        except ImportError as error:
            print(f"IMPORT ERROR: {error}")
        """
    )
    result = run_without_project(script, [tmp_path / "model"], tmp_path)
    assert "IMPORT ERROR: AdaMAE needs transformers>=5.18, but transformers 4.57.1" in result.stdout, result.stderr
