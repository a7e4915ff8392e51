"""VideoClipConfig: defaults, validation that names the field, use as a script-argument dataclass, and the
clip_config.json a model folder carries."""

import json

import pytest
from transformers import HfArgumentParser

from adamae_hf.data import (
    CLIP_GEOMETRY_FIELDS,
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    VideoClipConfig,
    load_clip_geometry,
    save_clip_config,
)


def test_defaults_follow_the_pretraining_recipe():
    config = VideoClipConfig()
    assert (config.num_frames, config.sampling_rate, config.crop_size) == (16, 4, 224)
    assert config.multiscale_scales == [1.0, 0.875, 0.75, 0.66]
    assert config.horizontal_flip is False
    assert config.eval_short_side == 224 and config.num_eval_views == 1
    assert config.image_mean == list(IMAGENET_DEFAULT_MEAN) and config.image_std == list(IMAGENET_DEFAULT_STD)


@pytest.mark.parametrize(
    "overrides, field_name",
    [
        ({"num_frames": 0}, "num_frames"),
        ({"num_frames": 2.5}, "num_frames"),
        ({"sampling_rate": 0}, "sampling_rate"),
        ({"num_sample": 0}, "num_sample"),
        ({"num_clips": -1}, "num_clips"),
        ({"crop_size": 0}, "crop_size"),
        ({"crop_size": 256, "short_side_size": 224}, "crop_size"),  # larger than the frames it is cut from
        ({"crop_size": 224, "short_side_size": 200}, "crop_size"),
        ({"crop_size": 10**9, "short_side_size": 10**9}, "crop_size"),  # absurd sizes fail before any decoding
        ({"short_side_size": 10**9}, "short_side_size"),
        ({"sampling_mode": "uniform"}, "sampling_mode"),
        ({"train_crop": "center"}, "train_crop"),
        ({"num_crops": 2}, "num_crops"),
        ({"multiscale_scales": [1.0, 1.5]}, "multiscale_scales"),
        ({"random_resized_scale": [0.5, 0.2]}, "random_resized_scale"),
        ({"rand_augment": "autoaugment"}, "rand_augment"),
        ({"random_erasing_prob": 1.5}, "random_erasing_prob"),
        ({"image_std": [0.2, 0.0, 0.2]}, "image_std"),
        ({"image_mean": [0.5]}, "image_mean"),
        ({"decode_threads": -1}, "decode_threads"),
    ],
)
def test_invalid_values_raise_naming_the_field(overrides, field_name):
    with pytest.raises(ValueError, match=rf"^{field_name} must be .*, got "):
        VideoClipConfig(**overrides)


def test_crop_up_to_the_short_side_is_allowed():
    config = VideoClipConfig(crop_size=256, short_side_size=320, rand_augment="rand-m7-n4-mstd0.5-inc1")
    assert config.eval_short_side == 320


def test_parses_from_command_line_arguments():
    (config,) = HfArgumentParser(VideoClipConfig).parse_args_into_dataclasses(
        [
            "--num_frames",
            "8",
            "--sampling_mode",
            "segment",
            "--multiscale_scales",
            "1",
            "0.5",
            "--horizontal_flip",
            "true",
        ]
    )
    assert config.num_frames == 8 and config.sampling_mode == "segment"
    assert config.multiscale_scales == [1.0, 0.5] and config.horizontal_flip is True
    assert config.to_dict()["num_frames"] == 8


def test_clip_config_file_round_trips_and_gives_back_the_geometry_only(tmp_path):
    config = VideoClipConfig(
        num_frames=8,
        sampling_rate=2,
        sampling_mode="segment",
        crop_size=32,
        short_side_size=40,
        rand_augment="rand-m7-n4-mstd0.5-inc1",
    )
    path = save_clip_config(tmp_path / "model", config)
    assert path.name == "clip_config.json" and json.loads(path.read_text()) == config.to_dict()
    geometry = load_clip_geometry(tmp_path / "model")
    assert set(geometry) == set(CLIP_GEOMETRY_FIELDS)  # not rand_augment: augmentation is the next run's choice
    assert VideoClipConfig(**geometry) == VideoClipConfig(
        num_frames=8, sampling_rate=2, sampling_mode="segment", crop_size=32, short_side_size=40
    )
    assert load_clip_geometry(tmp_path) is None  # a folder without one
    (tmp_path / "clip_config.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object of clip settings, got a list"):
        load_clip_geometry(tmp_path)
    (tmp_path / "clip_config.json").write_text('{"num_frames": 8,')
    with pytest.raises(ValueError, match="clip_config.json is not valid JSON"):
        load_clip_geometry(tmp_path)
    (tmp_path / "clip_config.json").write_text('{"num_frames": 8.0}')
    with pytest.raises(ValueError, match="clip_config.json holds invalid clip settings: num_frames must be"):
        load_clip_geometry(tmp_path)
