"""Sampler diagnostics: ranks and correlations, entropy and top mass, motion energy, and the whole batch report."""

import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tiny_configs import tiny_config

from adamae_hf.data import normalize, render_motion_clip
from adamae_hf.diagnostics import (
    average_ranks,
    averaged_sampler_diagnostics,
    clip_statistics,
    masked_token_errors,
    normalized_entropy,
    sampler_diagnostics,
    spearman_correlation,
    token_motion_energy,
    top_mass,
)
from adamae_hf.training import build_accelerator, reset_accelerate_state
from modeling_adamae import AdaMaeForPreTraining


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def brute_force_average_ranks(row):
    """Rank = number of smaller values + (number of equal values - 1) / 2."""
    return [sum(other < value for other in row) + (sum(other == value for other in row) - 1) / 2 for value in row]


def test_average_ranks_share_tied_positions():
    assert average_ranks(torch.tensor([[10.0, 30.0, 20.0, 20.0]])).tolist() == [[0.0, 3.0, 1.5, 1.5]]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.integers(0, 4), min_size=6, max_size=6), min_size=1, max_size=3))
def test_average_ranks_match_the_definition_with_many_ties(rows):
    values = torch.tensor(rows, dtype=torch.float32)
    assert average_ranks(values).tolist() == [brute_force_average_ranks(row) for row in rows]


def test_spearman_is_one_for_monotone_relations_and_minus_one_reversed():
    x = torch.randn(3, 50)
    assert torch.allclose(spearman_correlation(x, x.exp() * 5 + 2), torch.ones(3, dtype=torch.float64))
    assert torch.allclose(spearman_correlation(x, -(x**3)), -torch.ones(3, dtype=torch.float64))


def test_spearman_matches_the_textbook_formula_without_ties():
    generator = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 20, generator=generator), torch.randn(4, 20, generator=generator)
    rank_x, rank_y = average_ranks(x), average_ranks(y)
    n = x.shape[1]
    textbook = 1 - 6 * (rank_x - rank_y).pow(2).sum(dim=1) / (n * (n**2 - 1))
    assert torch.allclose(spearman_correlation(x, y), textbook)


def test_spearman_of_a_constant_row_is_undefined():
    result = spearman_correlation(
        torch.tensor([[1.0, 1.0, 1.0], [1.0, 2.0, 3.0]]), torch.tensor([[1.0, 2.0, 3.0]] * 2)
    )
    assert math.isnan(result[0]) and result[1] == pytest.approx(1.0)


def test_entropy_and_top_mass_of_uniform_and_concentrated_distributions():
    uniform = torch.full((1, 100), 0.01)
    one_hot = torch.zeros(1, 100)
    one_hot[0, 7] = 1.0
    assert normalized_entropy(uniform).item() == pytest.approx(1.0)
    assert normalized_entropy(one_hot).item() == pytest.approx(0.0)
    assert top_mass(uniform, 0.05).item() == pytest.approx(0.05)
    assert top_mass(one_hot, 0.05).item() == pytest.approx(1.0)
    assert top_mass(torch.full((1, 64), 1 / 64), 0.05).item() == pytest.approx(4 / 64)  # ceil(0.05 * 64) tokens


def test_motion_energy_is_the_mean_absolute_frame_difference_inside_each_tubelet():
    # 4 frames, 2 x 2 patches of 4 pixels, tubelet 2 -> tokens (time slice, row, column), 8 in all.
    frames = torch.zeros(1, 4, 3, 8, 8)  # in [0, 1]
    frames[0, 1, :, 0:4, 4:8] = 0.5  # frame 1 differs from frame 0 in the top-right patch: time slice 0, token 1
    frames[0, 2, 1, 4:8, 0:4] = 1.0  # frame 2 vs frame 3 (next tubelet), green channel only, bottom-left: token 6
    frames[0, 3, 1, 4:8, 0:4] = 1.0  # ...but frames 2 and 3 are equal: no motion inside that tubelet
    frames[0, 3, 0, 4:8, 4:8] = 0.3  # frame 3 vs frame 2 in the red channel, bottom-right patch: token 7
    normalized = (frames - torch.tensor(MEAN).view(1, 1, 3, 1, 1)) / torch.tensor(STD).view(1, 1, 3, 1, 1)
    energy = token_motion_energy(normalized, tubelet_size=2, patch_size=4, image_mean=MEAN, image_std=STD)
    expected = torch.zeros(1, 8)
    expected[0, 1] = 0.5  # every pixel and channel of the patch changed by 0.5
    expected[0, 7] = 0.3 / 3  # one channel of three changed by 0.3
    assert torch.allclose(energy, expected, atol=1e-6)


def test_motion_energy_finds_the_moving_object_of_a_rendered_clip():
    frames, motion_mask = render_motion_clip("move_right", 8, 64, 64, np.random.default_rng(3))
    pixel_values = normalize(torch.from_numpy(frames).permute(0, 3, 1, 2), MEAN, STD)[None]  # (1, T, C, H, W)
    energy = token_motion_energy(pixel_values, tubelet_size=2, patch_size=16)[0]  # (4 * 4 * 4,)
    # Tokens whose patch the object covers in some frame of their tubelet, in the same (t, row, column) order.
    covered = torch.from_numpy(motion_mask).reshape(4, 2, 4, 16, 4, 16).any(dim=(1, 3, 5)).flatten()
    assert covered.any() and not covered.all()
    assert energy[~covered].max() == 0  # the background is static
    assert energy[covered].mean() > 0.01


def diagnostics_inputs(mask_type):
    config = tiny_config(mask_type=mask_type)
    torch.manual_seed(0)
    model = AdaMaeForPreTraining(config).eval()
    pixel_values = torch.randn(3, 8, 3, 32, 32)
    with torch.no_grad():
        outputs = model(pixel_values)
    return model, pixel_values, outputs


def test_masked_token_errors_reproduce_the_reconstruction_loss():
    model, pixel_values, outputs = diagnostics_inputs("adaptive")
    masked_indices, errors = masked_token_errors(model, pixel_values, outputs.logits, outputs.mask)
    assert masked_indices.shape == errors.shape == (3, 48)
    assert outputs.mask.gather(1, masked_indices).all()
    assert errors.mean().item() == pytest.approx(outputs.reconstruction_loss.item(), rel=1e-5)


def test_adaptive_diagnostics_have_every_key_in_range():
    model, pixel_values, outputs = diagnostics_inputs("adaptive")
    values = sampler_diagnostics(model, pixel_values, outputs)
    assert set(values) == {
        "mask/visible_motion_ratio",
        "sampler/entropy",
        "sampler/top5_mass",
        "sampler/spearman_error",
        "sampler/spearman_motion",
    }
    assert 0.5 < values["sampler/entropy"] < 1.0  # a fresh sampler is spread out, but not uniform
    assert 0.05 < values["sampler/top5_mass"] < 0.5  # above what a uniform p puts on 5% of the tokens
    assert -1.0 <= values["sampler/spearman_error"] <= 1.0 and -1.0 <= values["sampler/spearman_motion"] <= 1.0
    assert values["mask/visible_motion_ratio"] > 0


def test_baselines_report_no_sampler_values():
    model, pixel_values, outputs = diagnostics_inputs("tube")
    assert set(sampler_diagnostics(model, pixel_values, outputs)) == {"mask/visible_motion_ratio"}


def test_a_sampler_that_follows_motion_scores_one_and_sees_the_motion():
    model, pixel_values, outputs = diagnostics_inputs("adaptive")
    motion = token_motion_energy(pixel_values, 2, 8)  # (3, 64), random frames: all distinct
    probs = motion.softmax(dim=-1)  # a sampler whose p ranks tokens exactly by motion
    mask = torch.ones_like(outputs.mask)
    mask.scatter_(1, motion.topk(16, dim=-1).indices, False)  # the 16 most moving tokens stay visible
    fake = SimpleNamespace(mask=mask, token_probs=probs, logits=torch.zeros(3, 48, model.config.patch_dim))
    values = sampler_diagnostics(model, pixel_values, fake)
    assert values["sampler/spearman_motion"] == pytest.approx(1.0)
    assert values["mask/visible_motion_ratio"] > 1.0


def test_clip_statistics_has_one_value_per_clip_and_the_logged_means():
    model, pixel_values, outputs = diagnostics_inputs("adaptive")
    statistics = clip_statistics(model, pixel_values, outputs, token_motion_energy(pixel_values, 2, 8))
    assert all(values.shape == (3,) for values in statistics.values())
    logged = sampler_diagnostics(model, pixel_values, outputs)
    assert logged["sampler/spearman_motion"] == pytest.approx(statistics["spearman_p_motion"].mean().item())
    assert statistics["reconstruction_error"].mean().item() == pytest.approx(outputs.reconstruction_loss.item())


def seeded_noise(seed, *shapes):
    generator = torch.Generator().manual_seed(seed)
    return [torch.rand(*shape, generator=generator) for shape in shapes]


def test_averaged_diagnostics_average_every_clip_of_every_batch_in_eval_mode():
    config = tiny_config(sampler_dropout_prob=0.5)
    torch.manual_seed(0)
    model = AdaMaeForPreTraining(config).train()
    batches = [torch.randn(3, 8, 3, 32, 32), torch.randn(2, 8, 3, 32, 32)]
    averaged = averaged_sampler_diagnostics(model, batches, seed=4)
    assert model.training  # restored
    # The same clips as one batch, with the same noise, in eval mode.
    noise = torch.cat(seeded_noise(4, (3, config.num_patches), (2, config.num_patches)))
    everything = torch.cat(batches)
    with torch.no_grad():
        outputs = model.eval()(everything, noise=noise)
    expected = sampler_diagnostics(model, everything, outputs)
    assert set(averaged) == set(expected)
    for key, value in expected.items():
        assert averaged[key] == pytest.approx(value, abs=1e-9), key


class SumOverTwoProcesses:
    """An accelerator stand-in for two processes: `reduce` adds what the other process contributed."""

    num_processes = 2

    def __init__(self, other_totals=None):
        self.other_totals, self.reduced = other_totals, None

    def unwrap_model(self, model):
        return model

    def reduce(self, tensor, reduction):
        assert reduction == "sum"
        self.reduced = tensor.clone()
        return tensor if self.other_totals is None else tensor + self.other_totals


def test_averaged_diagnostics_pool_clips_across_processes():
    torch.manual_seed(0)
    model = AdaMaeForPreTraining(tiny_config()).eval()
    first, second = torch.randn(3, 8, 3, 32, 32), torch.randn(1, 8, 3, 32, 32)
    other = SumOverTwoProcesses()
    averaged_sampler_diagnostics(model, [second], accelerator=other, seed=1)  # the other process: one clip
    pooled = averaged_sampler_diagnostics(model, [first], accelerator=SumOverTwoProcesses(other.reduced), seed=1)
    with torch.no_grad():
        (noise_first,) = seeded_noise(1, (3, 64))
        outputs = [model(first, noise=noise_first), model(second, noise=noise_first[:1])]
    per_clip = [
        clip_statistics(model, clips, out, token_motion_energy(clips, 2, 8))
        for clips, out in zip((first, second), outputs)
    ]
    expected = torch.cat([statistics["spearman_p_motion"] for statistics in per_clip]).mean().item()
    assert pooled["sampler/spearman_motion"] == pytest.approx(expected)  # 4 clips weigh equally, not 2 processes


def test_averaged_diagnostics_through_a_prepared_model_match_the_plain_call(tmp_path):
    reset_accelerate_state()
    try:
        accelerator = build_accelerator(tmp_path, report_to="none", use_cpu=True)
        torch.manual_seed(0)
        model = AdaMaeForPreTraining(tiny_config())
        batches = [torch.randn(2, 8, 3, 32, 32)]
        plain = averaged_sampler_diagnostics(model, batches, seed=2)
        prepared = accelerator.prepare(model)
        assert averaged_sampler_diagnostics(prepared, batches, accelerator=accelerator, seed=2) == pytest.approx(plain)
    finally:
        reset_accelerate_state()


def test_averaged_diagnostics_of_a_baseline_report_the_mask_only():
    torch.manual_seed(0)
    model = AdaMaeForPreTraining(tiny_config(mask_type="tube"))
    values = averaged_sampler_diagnostics(model, [torch.randn(2, 8, 3, 32, 32)])
    assert set(values) == {"mask/visible_motion_ratio"} and values["mask/visible_motion_ratio"] > 0
