"""The sampler evaluation: its statistics against an independent computation, determinism, and the command line."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_configs import tiny_config

from adamae_hf.data import VideoClipConfig, generate_sample_videos, save_clip_config, write_index_file
from adamae_hf.motion import compensated_motion_energy, token_motion_energy
from adamae_hf.sampler_evaluation import (
    MASK_MEASURES,
    SAMPLER_MEASURES,
    bootstrap_interval,
    clip_noise,
    evaluate_sampler,
    main,
)
from adamae_hf.sampler_evaluation_figure import reference_value
from modeling_adamae import AdaMaeForPreTraining


RATIOS = {"adaptive": 0.75, "random": 0.9, "tube": 0.9, "frame": 0.875}


def tiny_model(**overrides):
    torch.manual_seed(0)
    return AdaMaeForPreTraining(tiny_config(**overrides))


def random_clips(count=4, seed=1):
    return torch.randn(count, 8, 3, 32, 32, generator=torch.Generator().manual_seed(seed))


def numpy_spearman(x, y):
    """Pearson correlation of argsort ranks (the values here have no ties)."""
    rank_x, rank_y = np.argsort(np.argsort(x)), np.argsort(np.argsort(y))
    return float(np.corrcoef(rank_x, rank_y)[0, 1])


def reference_values(model, clip, clip_id, mask_type, ratio, seed=0):
    """Every measure of one clip and mask, computed here with numpy from the model's mask, output and targets."""
    config = model.config
    noise = clip_noise(seed, clip_id, config.num_patches)[None]
    with torch.no_grad():
        logits = model.sampler(model.videomae.embeddings.embed_patches(model.patchify(clip[None])))
        mask = model.generate_mask(1, logits, noise, mask_type=mask_type, mask_ratio=ratio)
        outputs = model(clip[None], bool_masked_pos=mask)
        targets = model.compute_targets(clip[None])[0].numpy()  # (N, patch_dim)
    mask = mask[0].numpy()
    masked = np.flatnonzero(mask)  # ascending: the order of the logits
    errors = ((outputs.logits[0].numpy() - targets[masked]) ** 2).mean(axis=1)
    probs = outputs.token_probs[0].numpy().astype(np.float64)
    values = {
        "spearman_p_error": numpy_spearman(probs[masked], errors),
        "reconstruction_error": errors.mean(),
        "entropy": -(probs * np.log(probs)).sum() / np.log(probs.size),
        "top5_mass": np.sort(probs)[::-1][: math.ceil(0.05 * probs.size)].sum(),
    }
    for suffix, measure in (("", token_motion_energy), ("_compensated", compensated_motion_energy)):
        motion = measure(clip[None], config.tubelet_size, config.patch_size)[0].numpy().astype(np.float64)
        values["spearman_p_motion" + suffix] = numpy_spearman(probs, motion)
        values["spearman_error_motion" + suffix] = numpy_spearman(errors, motion[masked])
        values["visible_motion_ratio" + suffix] = motion[~mask].mean() / motion.mean()
    return values


def test_per_clip_statistics_match_an_independent_computation():
    model, clips = tiny_model().eval(), random_clips()
    evaluation = evaluate_sampler(model, clips, mask_ratios=RATIOS, num_bootstrap=50)
    assert evaluation.clip_ids == [0, 1, 2, 3] and evaluation.mask_ratios == RATIOS
    for mask_type, ratio in RATIOS.items():
        for clip_id, clip in enumerate(clips):
            expected = reference_values(model, clip, clip_id, mask_type, ratio)
            for name in MASK_MEASURES:
                assert evaluation.per_clip[mask_type][name][clip_id] == pytest.approx(expected[name], abs=1e-6), name
            if mask_type == "adaptive":
                for name in SAMPLER_MEASURES:
                    assert evaluation.per_clip["sampler"][name][clip_id] == pytest.approx(expected[name], abs=1e-6)


def test_summaries_are_bootstrap_intervals_computed_by_hand():
    evaluation = evaluate_sampler(tiny_model(), random_clips(6), mask_ratios=RATIOS, seed=3, num_bootstrap=300)
    for group, measures in evaluation.per_clip.items():
        for name, values in measures.items():
            values = np.array(values)
            resampled = np.random.default_rng(3).integers(0, len(values), size=(300, len(values)))
            means = np.array([values[row].mean() for row in resampled])
            summary = evaluation.summary[group][name]
            assert summary.mean == pytest.approx(values.mean())
            assert summary.ci_low == pytest.approx(np.percentile(means, 2.5))
            assert summary.ci_high == pytest.approx(np.percentile(means, 97.5))
            assert summary.num_clips == 6


def test_bootstrap_interval_covers_the_mean_like_the_normal_approximation_and_skips_undefined_values():
    values = np.random.default_rng(0).normal(2.0, 1.0, size=400)
    summary = bootstrap_interval(np.append(values, np.nan), num_bootstrap=2000, seed=1)
    half_width = 1.96 * values.std(ddof=1) / math.sqrt(values.size)
    assert summary.num_clips == 400 and summary.mean == pytest.approx(values.mean())
    assert summary.ci_high - summary.mean == pytest.approx(half_width, rel=0.15)
    assert summary.mean - summary.ci_low == pytest.approx(half_width, rel=0.15)
    assert math.isnan(bootstrap_interval([math.nan]).mean)


def test_results_do_not_depend_on_the_batching_or_the_model_mode():
    clips = random_clips(3)
    model = tiny_model(sampler_dropout_prob=0.5)
    whole = evaluate_sampler(model.eval(), clips, mask_ratios=RATIOS, num_bootstrap=20)
    model.train()
    one_by_one = evaluate_sampler(model, [clip[None] for clip in clips], mask_ratios=RATIOS, num_bootstrap=20)
    assert model.training  # the mode is restored
    for group, measures in whole.per_clip.items():
        for name, values in measures.items():
            np.testing.assert_allclose(one_by_one.per_clip[group][name], values, atol=1e-6, err_msg=name)


def test_a_video_met_twice_counts_once_and_its_noise_follows_the_video():
    clips = random_clips(3)
    batches = [
        {"pixel_values": clips[:2], "video_index": torch.tensor([7, 9])},
        {"pixel_values": clips[[0, 2]], "video_index": torch.tensor([7, 4])},  # video 7 again: a replacement
    ]
    evaluation = evaluate_sampler(tiny_model(), batches, mask_ratios=RATIOS, num_bootstrap=20)
    assert evaluation.clip_ids == [7, 9, 4]
    alone = evaluate_sampler(
        tiny_model(),
        [{"pixel_values": clips[2:], "video_index": torch.tensor([4])}],
        mask_ratios=RATIOS,
        num_bootstrap=20,
    )
    assert alone.per_clip["adaptive"]["reconstruction_error"][0] == pytest.approx(
        evaluation.per_clip["adaptive"]["reconstruction_error"][2]
    )


def test_a_baseline_model_has_no_sampler_row_and_only_adaptive_is_an_error():
    model = tiny_model(mask_type="tube", mask_ratio=0.5)
    evaluation = evaluate_sampler(model, random_clips(2), num_bootstrap=20)
    assert list(evaluation.per_clip) == ["random", "tube", "frame"]
    assert "spearman_p_error" not in evaluation.per_clip["tube"]
    assert evaluation.visible_tokens == {
        mask_type: model.config.get_num_visible_tokens(mask_type, ratio)
        for mask_type, ratio in evaluation.mask_ratios.items()
    }
    with pytest.raises(ValueError, match="no sampler"):
        evaluate_sampler(model, random_clips(2), mask_types=["adaptive"])


def test_uniform_references_of_the_figure():
    assert reference_value("top5_mass", 64) == math.ceil(0.05 * 64) / 64 == 4 / 64  # not 0.05
    assert reference_value("spearman_p_motion", 64) == 0.0 and reference_value("visible_motion_ratio", 64) == 1.0
    assert reference_value("reconstruction_error", 64) is None


# ---------------------------------------------------------------------------------------------------------------------
# Command line


@pytest.fixture(scope="module")
def model_and_videos(tmp_path_factory):
    root = tmp_path_factory.mktemp("sampler_evaluation")
    tiny_model().save_pretrained(root / "model")
    save_clip_config(root / "model", VideoClipConfig(num_frames=8, sampling_rate=2, crop_size=32))
    generate_sample_videos(
        root / "videos", num_videos=4, num_frames=16, height=32, width=40, index_file="index.csv", camera_pan=(1, 1)
    )
    return root


def test_command_line_writes_json_and_figure_and_prints_the_table(model_and_videos, tmp_path, capsys):
    root = model_and_videos
    arguments = [
        "--model",
        str(root / "model"),
        "--index",
        str(root / "videos" / "index.csv"),
        "--output_dir",
        str(tmp_path),
        "--seed",
        "0",
        "--max_videos",
        "3",
        "--batch_size",
        "2",
        "--num_bootstrap",
        "100",
        "--mask_types",
        "adaptive",
        "random",
        "tube",
        "frame",
        "--device",
        "cpu",
    ]
    assert main(arguments) == 0
    table = capsys.readouterr().out
    assert "spearman_p_motion_compensated" in table and "tube 0.9" in table and "95% bootstrap" in table
    results = json.loads((tmp_path / "sampler_evaluation.json").read_text())
    assert {
        "model",
        "index",
        "seed",
        "num_clips",
        "num_tokens",
        "num_bootstrap",
        "confidence",
        "mask_ratios",
        "visible_tokens",
        "clip_geometry",
        "motion_measures",
        "measures",
        "summary",
        "per_clip",
        "clip_ids",
        "videos",
    } <= set(results)
    assert results["mask_ratios"] == {"adaptive": 0.75, "random": 0.9, "tube": 0.9, "frame": 0.875}
    assert results["num_clips"] == 3 and len(results["videos"]) == 3
    assert results["clip_geometry"]["sampling_rate"] == 2  # from the model's clip_config.json
    assert set(results["summary"]) == {"sampler", "adaptive", "random", "tube", "frame"}
    assert set(results["summary"]["random"]["visible_motion_ratio_compensated"]) == {
        "mean",
        "ci_low",
        "ci_high",
        "num_clips",
    }
    with Image.open(tmp_path / "sampler_evaluation.png") as figure:
        assert figure.format == "PNG" and figure.width >= 800 and figure.height >= 800
    # The same seed gives the same numbers.
    assert main(arguments[:5] + [str(tmp_path / "again")] + arguments[6:]) == 0
    again = json.loads((tmp_path / "again" / "sampler_evaluation.json").read_text())
    assert again["per_clip"] == results["per_clip"] and again["summary"] == results["summary"]


def test_command_line_user_errors_are_one_line(model_and_videos, tmp_path, capsys):
    root = model_and_videos
    index = str(root / "videos" / "index.csv")
    assert main(["--model", str(tmp_path / "missing"), "--index", index, "--output_dir", str(tmp_path)]) == 1
    assert main(["--model", str(root / "model"), "--index", str(tmp_path / "none.csv"), "--output_dir", "o"]) == 1
    (tmp_path / "broken.mp4").write_text("not a video")
    bad_index = write_index_file(tmp_path / "bad.csv", [(str(tmp_path / "broken.mp4"), "x")])
    assert main(["--model", str(root / "model"), "--index", bad_index, "--output_dir", str(tmp_path)]) == 1
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]  # no progress bars
    assert len(lines) == 3
    assert "missing" in lines[0] and "none.csv" in lines[1] and "can be decoded" in lines[2]
    assert not (tmp_path / "sampler_evaluation.json").exists()


def test_module_runs_as_a_script(tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "adamae_hf.sampler_evaluation",
            "--model",
            str(tmp_path / "missing"),
            "--index",
            "x",
            "--output_dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("error: --model: expected a model folder")
