"""Motion measures on videos with known motion: a moving object on a static background, and the same under a pan."""

import numpy as np
import pytest
import torch
from tiny_configs import tiny_config

from adamae_hf.data import MOTION_CLASSES, generate_sample_videos, load_eval_clip, normalize, render_motion_clip
from adamae_hf.motion import (
    compensated_motion_energy,
    estimate_global_shift,
    motion_measures,
    shift_frames,
    token_motion_energy,
)


MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
SIDE, FRAMES, PATCH, TUBELET = 64, 16, 8, 2  # 8 x 8 x 8 = 512 tokens


def as_pixel_values(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> normalised (1, T, 3, H, W)."""
    return normalize(torch.from_numpy(frames).permute(0, 3, 1, 2), MEAN, STD)[None]


def covered_tokens(motion_mask: np.ndarray) -> np.ndarray:
    """Tokens (time slice, row, column order) whose patch the object covers in some frame of the tubelet."""
    frames, height, width = motion_mask.shape
    grid = motion_mask.reshape(frames // TUBELET, TUBELET, height // PATCH, PATCH, width // PATCH, PATCH)
    return grid.any(axis=(1, 3, 5)).reshape(-1)


def area_under_curve(scores: np.ndarray, positive: np.ndarray) -> float:
    """P(score of a random object token > score of a random background token), ties counting half."""
    greater = (scores[positive][:, None] > scores[~positive][None, :]).mean()
    equal = (scores[positive][:, None] == scores[~positive][None, :]).mean()
    return float(greater + 0.5 * equal)


def measures_of(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both measures of one rendered clip, `(N,)` each."""
    pixel_values = as_pixel_values(frames)
    plain = token_motion_energy(pixel_values, TUBELET, PATCH, MEAN, STD)[0].numpy()
    compensated = compensated_motion_energy(pixel_values, TUBELET, PATCH, MEAN, STD)[0].numpy()
    return plain, compensated


def brute_force_motion(frames01: np.ndarray, tubelet: int, patch: int) -> np.ndarray:
    """Per token, mean |frame[i+1] - frame[i]| over the pairs inside its tubelet (one-frame tubelets: the next frame,
    the last with the one before) and its patch's pixels and channels; (T, H, W, C) in [0, 1] -> (N,)."""
    num_frames, height, width, _ = frames01.shape
    values = []
    for start in range(0, num_frames, tubelet):
        pairs = range(start, start + tubelet - 1) if tubelet > 1 else [min(start, num_frames - 2)]
        for row in range(0, height, patch):
            for column in range(0, width, patch):
                differences = [
                    np.abs(frames01[i + 1] - frames01[i])[row : row + patch, column : column + patch] for i in pairs
                ]
                values.append(np.mean(differences))
    return np.array(values)


@pytest.mark.parametrize("tubelet", [1, 2, 4])
def test_frame_difference_matches_a_loop_over_tokens(tubelet):
    frames01 = np.random.default_rng(tubelet).random((8, 16, 24, 3))
    frames = torch.from_numpy(frames01).float().permute(0, 3, 1, 2)  # (T, C, H, W) in [0, 1]
    pixel_values = ((frames - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(3, 1, 1))[None]
    energy = token_motion_energy(pixel_values, tubelet, 8, MEAN, STD)[0].numpy()
    np.testing.assert_allclose(energy, brute_force_motion(frames01.astype(np.float32), tubelet, 8), atol=1e-5)


def test_shift_frames_moves_content_and_marks_pixels_without_a_source():
    frames = torch.arange(2 * 1 * 1 * 5 * 6, dtype=torch.float32).reshape(2, 1, 1, 5, 6)
    shifted, valid = shift_frames(frames, torch.tensor([[[1, -2]], [[0, 0]]]))
    expected = np.zeros((5, 6), dtype=np.float32)
    expected[1:, :4] = frames[0, 0, 0, :4, 2:].numpy()  # out(y, x) = in(y - 1, x + 2)
    np.testing.assert_array_equal(shifted[0, 0, 0].numpy(), expected)
    assert valid[0, 0, 0].sum() == 4 * 4 and valid[0, 0, 0, 0].sum() == 0 and valid[0, 0, 0, :, 4:].sum() == 0
    assert torch.equal(shifted[1], frames[1]) and valid[1].all()


@pytest.mark.parametrize("pan", [(0, 2), (1, -3), (-2, 1), (3, 0)])
def test_global_shift_is_the_pan_even_with_a_moving_object_in_view(pan):
    frames, _ = render_motion_clip("move_right", 6, SIDE, SIDE, np.random.default_rng(0), camera_pan=pan)
    shifts = estimate_global_shift(torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float() / 255)
    # frame t+1 at (y, x) shows frame t at (y + pan): a shift of -pan.
    assert shifts.tolist() == [[[-pan[0], -pan[1]]] * 5]


def test_global_shift_of_a_static_background_is_zero_whatever_the_object_does():
    frames, _ = render_motion_clip("move_up", 6, SIDE, SIDE, np.random.default_rng(1))
    shifts = estimate_global_shift(torch.from_numpy(frames).permute(0, 3, 1, 2)[None].float() / 255)
    assert shifts.abs().sum() == 0


def clips_of_every_class(pan=(0, 0), seed=2):
    """One rendered clip per motion class: both measures `(classes, N)` and the object's tokens `(classes, N)`."""
    rendered = [
        render_motion_clip(name, FRAMES, SIDE, SIDE, np.random.default_rng(seed), camera_pan=pan)
        for name in MOTION_CLASSES
    ]
    pixel_values = torch.cat([as_pixel_values(frames) for frames, _ in rendered])
    plain = token_motion_energy(pixel_values, TUBELET, PATCH, MEAN, STD).numpy()
    compensated = compensated_motion_energy(pixel_values, TUBELET, PATCH, MEAN, STD).numpy()
    return plain, compensated, np.stack([covered_tokens(mask) for _, mask in rendered])


def test_static_background_both_measures_agree_and_find_only_the_object():
    plain, compensated, covered = clips_of_every_class()
    np.testing.assert_allclose(compensated, plain, atol=1e-6)  # no camera motion: nothing to compensate
    for name, values, object_tokens in zip(MOTION_CLASSES, plain, covered):
        assert values[~object_tokens].max() == 0, name  # the background is static
        assert area_under_curve(values, object_tokens) > 0.95, name


# Diagonal pans: the objects move along one axis, so none moves with the background (an object that moves exactly as
# the pan does is still relative to the scene, and the compensated measure rightly sees no motion in it).
@pytest.mark.parametrize("pan", [(2, 2), (-2, 3)])
def test_under_a_pan_the_plain_measure_moves_everywhere_and_the_compensated_one_finds_the_object(pan):
    plain, compensated, covered = clips_of_every_class(pan)
    for name, plain_values, compensated_values, object_tokens in zip(MOTION_CLASSES, plain, compensated, covered):
        background_plain, background_compensated = plain_values[~object_tokens], compensated_values[~object_tokens]
        assert (background_plain > 0.01).mean() > 0.95, name  # the pan shows up on (nearly) every background token
        assert background_compensated.mean() < 0.05 * background_plain.mean(), name
        assert area_under_curve(compensated_values, object_tokens) > 0.9, name
        assert compensated_values[object_tokens].mean() > 5 * background_compensated.mean(), name


def test_a_rotating_bar_under_a_pan_is_found_only_by_the_compensated_measure():
    # The bar turns in place: its frame difference is no larger than the panned texture's.
    frames, motion_mask = render_motion_clip(
        "rotate_clockwise", FRAMES, SIDE, SIDE, np.random.default_rng(1), camera_pan=(0, 2)
    )
    plain, compensated = measures_of(frames)
    covered = covered_tokens(motion_mask)
    assert area_under_curve(plain, covered) < 0.7
    assert area_under_curve(compensated, covered) > 0.9


def test_decoded_panning_videos_keep_the_object_on_top(tmp_path):
    videos = generate_sample_videos(
        tmp_path,
        num_videos=5,
        num_frames=FRAMES,
        height=SIDE,
        width=SIDE,
        seed=5,
        motion_classes=MOTION_CLASSES,
        camera_pan=(2, 2),
    )
    plain_areas, compensated_areas = [], []
    for video in videos:
        pixel_values = load_eval_clip(video.path, num_frames=FRAMES, sampling_rate=1, crop_size=SIDE)[None]
        plain = token_motion_energy(pixel_values, TUBELET, PATCH)[0].numpy()
        compensated = compensated_motion_energy(pixel_values, TUBELET, PATCH)[0].numpy()
        covered = covered_tokens(video.motion_mask)
        assert (plain[~covered] > 0.01).mean() > 0.95, video.label
        assert compensated[~covered].mean() < plain[~covered].mean(), video.label  # H.264 leaves some residual
        plain_areas.append(area_under_curve(plain, covered))
        compensated_areas.append(area_under_curve(compensated, covered))
    assert min(compensated_areas) > 0.85 and np.mean(compensated_areas) > 0.95
    assert np.mean(compensated_areas) > np.mean(plain_areas)


def test_motion_measures_use_the_model_geometry():
    config = tiny_config()  # 8 frames of 32x32, patch 8, tubelet 2
    pixel_values = torch.randn(2, 8, 3, 32, 32)
    measures = motion_measures(pixel_values, config)
    assert set(measures) == {"frame_difference", "compensated"}
    assert all(values.shape == (2, config.num_patches) for values in measures.values())
    torch.testing.assert_close(measures["frame_difference"], token_motion_energy(pixel_values, 2, 8))


def test_single_frame_clips_have_no_motion():
    pixel_values = torch.randn(1, 1, 3, 16, 16)
    assert token_motion_energy(pixel_values, 1, 8).abs().sum() == 0
    assert compensated_motion_energy(pixel_values, 1, 8).abs().sum() == 0
