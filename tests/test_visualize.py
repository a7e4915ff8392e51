"""The five-panel picture (input, reconstruction, error, p, mask): files, panel contents, determinism, bad input."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_configs import tiny_config

from adamae_hf.data import (
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    VideoDecodeError,
    load_eval_clip,
    probe_video,
    unnormalize,
)
from adamae_hf.figure_rendering import (
    ERROR_PANEL,
    INFERNO,
    INPUT_PANEL,
    MASK_PANEL,
    MASKED_GREY,
    NUM_PANELS,
    PLACEHOLDER_GREY,
    PROBS_PANEL,
    RECONSTRUCTION_PANEL,
    VIRIDIS,
    apply_colormap,
    render_comparison,
    render_panels,
    render_strip,
)
from adamae_hf.mask_figure import (
    compare,
    fill_masked_patches,
    load_clip,
    load_pretraining_model,
    reconstruct,
    visualize,
)
from adamae_hf.visualize import main
from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification


# tiny_config: 8 frames of 32x32, patch 8, tubelet 2 -> token grid 4 x 4 x 4 = 64 tokens, mask ratio 0.75.
NUM_FRAMES, CROP, PATCH, TUBELET = 8, 32, 8, 2


@pytest.fixture(scope="module")
def model_folder(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_pretraining")
    AdaMaeForPreTraining(tiny_config()).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def model(model_folder):
    return load_pretraining_model(model_folder)


@pytest.fixture(scope="module")
def tube_model():
    torch.manual_seed(1)
    return AdaMaeForPreTraining(tiny_config(mask_type="tube")).eval()


@pytest.fixture(scope="module")
def video(sample_videos):
    return sample_videos[0].path  # 16 frames of 64x48


@pytest.fixture(scope="module")
def clip(model, video):
    return load_clip(video, model.config)


@pytest.fixture(scope="module")
def result(model, clip):
    return reconstruct(model, clip, seed=0)


def token_grid_of(panels: np.ndarray) -> np.ndarray:
    """(T, H, W, 3) panel pixels -> (T, h, w, patch*patch*3): each token's pixels in its frame."""
    num_frames = panels.shape[0]
    patches = panels.reshape(num_frames, CROP // PATCH, PATCH, CROP // PATCH, PATCH, 3)
    return patches.transpose(0, 1, 3, 2, 4, 5).reshape(num_frames, CROP // PATCH, CROP // PATCH, -1)


def per_frame(token_values: np.ndarray) -> np.ndarray:
    """(t, h, w) token grid -> (T, h, w): both frames of a tubelet show their token."""
    return np.repeat(token_values, TUBELET, axis=0)


# ---------------------------------------------------------------------------------------------------------------------
# Files and geometry


def test_gif_and_strip_have_every_frame_and_five_panels_side_by_side(model, video, result, tmp_path):
    written = visualize(model, video, tmp_path / "masks.gif", scale=2)
    assert written == [tmp_path / "masks.gif", tmp_path / "masks.png"]

    frames, geometry = render_panels(result, scale=2)
    assert frames.shape == (NUM_FRAMES, geometry.height, geometry.width, 3)
    with Image.open(written[0]) as gif:
        assert gif.n_frames == NUM_FRAMES
        assert gif.size == (geometry.width, geometry.height)
    # Five panels of crop x crop (scaled) left to right, inside the image, not overlapping; the rest is margins.
    boxes = [geometry.panel_box(panel) for panel in range(NUM_PANELS)]
    for top, left, bottom, right in boxes:
        assert (bottom - top, right - left) == (2 * CROP, 2 * CROP)
        assert 0 <= top and bottom <= geometry.height and 0 <= left and right <= geometry.width
    assert all(boxes[i][3] < boxes[i + 1][1] for i in range(NUM_PANELS - 1))
    assert geometry.width == 5 * 2 * CROP + (geometry.width - boxes[-1][3]) + boxes[0][1] + 4 * geometry.gap
    assert geometry.width % 2 == 0 and geometry.height % 2 == 0  # H.264 4:2:0

    strip, strip_geometry = render_strip(result, scale=2)
    assert strip_geometry.num_rows == 4  # one row per time slice of the 8-frame clip
    with Image.open(written[1]) as png:
        assert png.size == (strip_geometry.width, strip_geometry.height)
        np.testing.assert_array_equal(np.asarray(png.convert("RGB")), strip)


def test_mp4_through_pyav_and_png_only(model, video, result, tmp_path):
    mp4, png = visualize(model, video, tmp_path / "masks.mp4", scale=1)
    _, geometry = render_panels(result, scale=1)
    info = probe_video(mp4)
    assert (info.num_frames, info.width, info.height) == (NUM_FRAMES, geometry.width, geometry.height)
    assert info.codec == "h264" and info.pix_fmt == "yuv420p"  # plays in browsers
    assert png.exists()
    assert visualize(model, video, tmp_path / "only.png", scale=1) == [tmp_path / "only.png"]
    assert not (tmp_path / "only.gif").exists()


def test_scale_enlarges_panels_nearest_neighbour(result):
    frames, geometry = render_panels(result, scale=1)
    frames_3, geometry_3 = render_panels(result, scale=3)
    for panel in range(NUM_PANELS):
        if panel == PROBS_PANEL:
            continue  # identical too, but covered by its own test
        enlarged = geometry_3.panel(frames_3, panel)
        assert enlarged.shape[1:3] == (3 * CROP, 3 * CROP)
        np.testing.assert_array_equal(enlarged[:, ::3, ::3], geometry.panel(frames, panel))
        np.testing.assert_array_equal(enlarged[:, 2::3, 1::3], geometry.panel(frames, panel))


# ---------------------------------------------------------------------------------------------------------------------
# Panel contents


def test_load_clip_is_the_data_pipelines_eval_clip(model, video, clip):
    # 16-frame video, 8-frame model: the default stride 4 would not fit, so it is lowered to 2.
    expected = load_eval_clip(video, num_frames=NUM_FRAMES, crop_size=CROP, sampling_rate=2)
    assert torch.equal(clip, expected)
    stride_1 = load_eval_clip(video, num_frames=NUM_FRAMES, crop_size=CROP, sampling_rate=1)
    assert torch.equal(load_clip(video, model.config, sampling_rate=1), stride_1)


def test_input_panel_is_the_unnormalised_clip(result, clip):
    frames, geometry = render_panels(result)
    expected = unnormalize(clip, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD).permute(0, 2, 3, 1)  # (T, H, W, C)
    expected = (expected * 255).round().to(torch.uint8).numpy()
    np.testing.assert_array_equal(geometry.panel(frames, INPUT_PANEL), expected)


def test_mask_panel_greys_exactly_the_models_mask(model, clip, result):
    # The mask is the model's own: forward with the same noise and ratio samples the same tokens.
    noise = torch.rand(1, model.config.num_patches, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model_mask = model(clip[None], noise=noise).mask[0]
    np.testing.assert_array_equal(result.mask.reshape(-1), model_mask.numpy())

    frames, geometry = render_panels(result)
    mask_tokens = token_grid_of(geometry.panel(frames, MASK_PANEL))
    input_tokens = token_grid_of(geometry.panel(frames, INPUT_PANEL))
    greyed = (mask_tokens == MASKED_GREY).all(axis=-1)  # (T, h, w)
    np.testing.assert_array_equal(greyed, per_frame(result.mask))
    num_masked = model.config.num_patches - model.config.get_num_visible_tokens()  # 48
    assert greyed[::TUBELET].sum() == int(model_mask.sum()) == num_masked
    np.testing.assert_array_equal(mask_tokens[~greyed], input_tokens[~greyed])


def test_reconstruction_panel_keeps_visible_patches_and_shows_predictions(result):
    frames, geometry = render_panels(result)
    reconstruction_tokens = token_grid_of(geometry.panel(frames, RECONSTRUCTION_PANEL))
    input_tokens = token_grid_of(geometry.panel(frames, INPUT_PANEL))
    masked = per_frame(result.mask)
    np.testing.assert_array_equal(reconstruction_tokens[~masked], input_tokens[~masked])
    assert (reconstruction_tokens[masked] != input_tokens[masked]).any(axis=-1).mean() > 0.9  # untrained predictions


@pytest.mark.parametrize("norm_pix_loss", [True, False])
def test_perfect_predictions_reconstruct_the_input(norm_pix_loss, clip):
    # Un-normalising the model's own targets (per-patch normalised with norm_pix_loss) must give the input back.
    model = AdaMaeForPreTraining(tiny_config(norm_pix_loss=norm_pix_loss))
    frames = unnormalize(clip, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)
    input_patches = model.patchify(frames[None])[0]  # (N, t*p*p, C)
    masked_indices = torch.arange(0, model.config.num_patches, 3)
    targets = model.compute_targets(clip[None], masked_indices[None])[0]  # (N_masked, patch_dim)
    reconstructed = fill_masked_patches(input_patches, targets, masked_indices, norm_pix_loss)
    torch.testing.assert_close(reconstructed, input_patches, atol=2e-5, rtol=0)


def test_error_panel_is_per_patch_mse_on_a_fixed_colour_scale(result):
    squared = (result.reconstruction - result.frames) ** 2  # (T, H, W, 3)
    expected_error = squared.reshape(NUM_FRAMES // TUBELET, TUBELET, 4, PATCH, 4, PATCH, 3).mean(axis=(1, 3, 5, 6))
    np.testing.assert_allclose(result.patch_error, expected_error, atol=1e-7)
    assert (result.patch_error[~result.mask] == 0).all()

    for error_max in (0.05, 0.2):
        frames, geometry = render_panels(result, error_max=error_max)
        error_tokens = token_grid_of(geometry.panel(frames, ERROR_PANEL))
        expected = apply_colormap(per_frame(result.patch_error) / error_max, INFERNO)  # (T, h, w, 3)
        np.testing.assert_array_equal(error_tokens, np.tile(expected, (1, 1, 1, PATCH * PATCH)))


def test_probability_panel_shows_p_per_time_slice(result):
    frames, geometry = render_panels(result)
    probs_tokens = token_grid_of(geometry.panel(frames, PROBS_PANEL))
    probs = result.token_probs  # (t, h, w)
    assert probs.sum() == pytest.approx(1.0, abs=1e-5)
    expected = apply_colormap(per_frame(probs) / probs.max(), VIRIDIS)
    np.testing.assert_array_equal(probs_tokens, np.tile(expected, (1, 1, 1, PATCH * PATCH)))
    time_slice, row, column = np.unravel_index(probs.argmax(), probs.shape)
    assert tuple(probs_tokens[TUBELET * time_slice, row, column, :3]) == tuple(VIRIDIS[-1].astype(np.uint8))


def test_model_without_sampler_gets_a_labelled_placeholder(tube_model, clip):
    result = reconstruct(tube_model, clip)
    assert result.token_probs is None and "no sampler" in result.note and "tube" in result.note
    frames, geometry = render_panels(result)
    assert (geometry.panel(frames, PROBS_PANEL) == PLACEHOLDER_GREY).mean() > 0.5
    with pytest.raises(ValueError, match="needs the token sampler"):
        reconstruct(tube_model, clip, mask_type="adaptive")


def test_mask_ratio_overrides_the_models_ratio(model, tube_model, clip):
    assert reconstruct(model, clip, mask_ratio=0.5).num_masked == 32  # adaptive: int(64 * 0.5) visible
    tube = reconstruct(tube_model, clip, mask_ratio=0.5)
    assert tube.num_masked == 32 and (tube.mask == tube.mask[:1]).all()  # one spatial pattern for every slice


def test_same_seed_same_picture(model, video, clip, tmp_path):
    first = visualize(model, video, tmp_path / "a" / "masks.png", seed=3, scale=1)[0]
    second = visualize(model, video, tmp_path / "b" / "masks.png", seed=3, scale=1)[0]
    assert first.read_bytes() == second.read_bytes()
    masks = {seed: reconstruct(model, clip, seed=seed).mask for seed in (0, 1)}
    assert not np.array_equal(masks[0], masks[1])


def test_model_mode_is_restored(model, clip):
    model.train()
    try:
        reconstruct(model, clip)
        assert model.training
    finally:
        model.eval()


# ---------------------------------------------------------------------------------------------------------------------
# Comparison figure


def test_compare_has_one_row_per_mask_type(model, tube_model, video, clip, tmp_path):
    written = compare(model, video, tmp_path / "compare.gif", mask_ratio=0.75, scale=1)
    assert [path.name for path in written] == ["compare.gif", "compare.png"]
    results = [reconstruct(model, clip, mask_type, 0.75) for mask_type in ("adaptive", "random", "tube", "frame")]
    frames, geometry = render_comparison(results)
    assert geometry.num_rows == 4
    with Image.open(written[0]) as gif:
        assert gif.n_frames == NUM_FRAMES and gif.size == (geometry.width, geometry.height)
    for row, row_result in enumerate(results):
        greyed = (token_grid_of(geometry.panel(frames, MASK_PANEL, row)) == MASKED_GREY).all(axis=-1)
        np.testing.assert_array_equal(greyed, per_frame(row_result.mask))
        assert (row_result.token_probs is None) == (row_result.mask_type != "adaptive")
    tube_mask, frame_mask = results[2].mask, results[3].mask
    assert (tube_mask == tube_mask[:1]).all()  # the same spatial pattern in every time slice
    assert all(frame_mask[t].all() or not frame_mask[t].any() for t in range(len(frame_mask)))  # whole slices

    # Without a sampler there is no adaptive row, and the figure says why.
    (still,) = compare(tube_model, video, tmp_path / "tube.png", scale=1)
    tube_results = [reconstruct(tube_model, clip, mask_type, 0.8) for mask_type in ("random", "tube", "frame")]
    _, tube_geometry = render_comparison(tube_results, caption="no adaptive row: this model has no sampler")
    with Image.open(still) as png:
        assert png.size == (tube_geometry.width, tube_geometry.height)


# ---------------------------------------------------------------------------------------------------------------------
# Command line and bad input


def test_command_line_writes_the_gif_and_strip(model_folder, video, tmp_path, capsys):
    out = tmp_path / "demo.gif"
    assert main(["--model", str(model_folder), "--video", video, "--out", str(out), "--mask_ratio", "0.9"]) == 0
    assert capsys.readouterr().out.split() == [str(out), str(out.with_suffix(".png"))]
    with Image.open(out) as gif:
        assert gif.n_frames == NUM_FRAMES
        assert gif.width > 5 * 4 * CROP  # the automatic scale makes 128-pixel panels


def test_non_video_file_is_a_clear_error(model, model_folder, tmp_path, capsys):
    text_file = tmp_path / "notes.mp4"
    text_file.write_text("not a video\n")
    with pytest.raises(VideoDecodeError, match="notes.mp4"):
        visualize(model, text_file, tmp_path / "out.gif")
    assert main(["--model", str(model_folder), "--video", str(text_file), "--out", str(tmp_path / "out.gif")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "notes.mp4" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.gif").exists()


def test_folder_without_pretraining_head_is_a_clear_error(tmp_path, video, capsys):
    classifier_folder = tmp_path / "classifier"
    AdaMaeForVideoClassification(tiny_config(num_labels=3)).save_pretrained(classifier_folder)
    with pytest.raises(ValueError, match="no pretraining head: it was saved from AdaMaeForVideoClassification"):
        load_pretraining_model(classifier_folder)
    assert main(["--model", str(classifier_folder), "--video", video, "--out", str(tmp_path / "out.gif")]) == 1
    assert "no pretraining head" in capsys.readouterr().err

    # Without `architectures` in its config, the missing decoder weights give it away.
    config_path = classifier_folder / "config.json"
    config = json.loads(config_path.read_text())
    del config["architectures"]
    config_path.write_text(json.dumps(config))
    with pytest.raises(ValueError, match="no complete pretraining head.*decoder"):
        load_pretraining_model(classifier_folder)


def test_bad_output_name_and_model_object(model, video, tmp_path):
    with pytest.raises(ValueError, match=r"must end in one of \.gif, \.mp4, \.png, got .*masks\.webm"):
        visualize(model, video, tmp_path / "masks.webm")
    with pytest.raises(TypeError, match="AdaMaeForPreTraining"):
        visualize(AdaMaeForVideoClassification(tiny_config(num_labels=3)), video, tmp_path / "masks.gif")


@pytest.mark.parametrize(
    "flag, value, message",
    [
        (
            "--model",
            "{tmp}/no_such_folder",
            "error: --model: expected a model folder or a Hub id ('name' or "
            "'user/name'), got '{tmp}/no_such_folder': no such folder, and not a valid Hub id.",
        ),
        (
            "--video",
            "{tmp}/no_such.mp4",
            "error: --video: expected a video file, got '{tmp}/no_such.mp4': no such file.",
        ),
    ],
)
def test_a_missing_model_folder_or_video_is_one_line_and_debug_shows_the_traceback(
    model_folder, video, tmp_path, capsys, flag, value, message
):
    arguments = {"--model": str(model_folder), "--video": video, "--out": str(tmp_path / "out.gif")}
    arguments[flag] = value.format(tmp=tmp_path)
    argv = [item for pair in arguments.items() for item in pair]
    assert main(argv) == 1
    assert capsys.readouterr().err == message.format(tmp=tmp_path) + "\n"
    assert main(argv + ["--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1] == message.format(tmp=tmp_path)
