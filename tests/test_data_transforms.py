"""Clip transforms: output shapes, dtypes and value ranges, crop geometry, flips, RandAugment, erasing."""

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from adamae_hf.data import (
    EvalTransform,
    TrainTransform,
    VideoClipConfig,
    VideoRandAugment,
    normalize,
    unnormalize,
    write_video,
)
from adamae_hf.data.dataset import read_clips
from adamae_hf.data.transforms import (
    as_uint8_video,
    center_crop,
    decode_short_side,
    multiscale_crop_box,
    random_erasing,
    random_resized_crop_box,
    resize_short_side,
    short_side_resize_shape,
    three_crops,
)


MEAN, STD = VideoClipConfig().image_mean, VideoClipConfig().image_std
LOW = min((0 - m) / s for m, s in zip(MEAN, STD))
HIGH = max((1 - m) / s for m, s in zip(MEAN, STD))


def random_frames(num_frames=4, height=48, width=64, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (num_frames, height, width, 3), dtype=np.uint8)


def test_as_uint8_video_is_a_channels_first_view():
    frames = random_frames()
    video = as_uint8_video(frames)
    assert video.shape == (4, 3, 48, 64) and video.dtype == torch.uint8
    assert video.data_ptr() == torch.from_numpy(frames).data_ptr()
    with pytest.raises(ValueError, match="uint8"):
        as_uint8_video(frames.astype(np.float32))


@pytest.mark.parametrize(
    "size, short_side, expected",
    [((48, 64), 32, (32, 42)), ((273, 641), 224, (224, 525)), ((144, 176), 224, (224, 273)), ((64, 48), 32, (42, 32))],
)
def test_short_side_resize_keeps_the_aspect_ratio_like_transformers(size, short_side, expected):
    # transformers: new_long = int(short_side * long / short)
    assert short_side_resize_shape(*size, short_side) == expected
    video = resize_short_side(torch.zeros(2, 3, *size, dtype=torch.uint8), short_side)
    assert video.shape[-2:] == expected and video.dtype == torch.uint8


def test_center_and_three_crops_positions():
    video = as_uint8_video(random_frames(height=40, width=100))
    np.testing.assert_array_equal(center_crop(video, 32), video[..., 4:36, 34:66])
    left, middle, right = three_crops(video, 32)
    np.testing.assert_array_equal(left, video[..., 4:36, 0:32])
    np.testing.assert_array_equal(middle, video[..., 4:36, 34:66])
    np.testing.assert_array_equal(right, video[..., 4:36, 68:100])
    top, _, bottom = three_crops(video.transpose(-1, -2), 32)  # portrait: crops run down the long side
    np.testing.assert_array_equal(top, video.transpose(-1, -2)[..., 0:32, 4:36])
    np.testing.assert_array_equal(bottom, video.transpose(-1, -2)[..., 68:100, 4:36])


def test_multiscale_crop_boxes_use_the_scales_and_fixed_positions():
    rng = np.random.default_rng(0)
    allowed_sides = {320, 280, 240, 211}  # int(320 * s) for s in (1, .875, .75, .66)
    for _ in range(300):
        top, left, height, width = multiscale_crop_box(320, 568, 224, [1, 0.875, 0.75, 0.66], rng)
        assert height in allowed_sides and width in allowed_sides
        assert 0 <= top and top + height <= 320 and 0 <= left and left + width <= 568
        assert top % max((320 - height) // 4, 1) == 0 and left % max((568 - width) // 4, 1) == 0
    # Sides within 2 pixels of the crop size snap to it (here 0.875 * 256 = 224).
    sides = {multiscale_crop_box(256, 256, 224, [0.875], rng)[2] for _ in range(5)}
    assert sides == {224}


def test_random_resized_crop_box_stays_inside_with_its_area_range():
    rng = np.random.default_rng(0)
    for _ in range(300):
        top, left, height, width = random_resized_crop_box(60, 80, [0.08, 1.0], [3 / 4, 4 / 3], rng)
        assert 0 <= top and top + height <= 60 and 0 <= left and left + width <= 80
        assert 0.08 * 4800 * 0.8 <= height * width <= 4800


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"train_crop": "random_resized", "horizontal_flip": True},
        {"train_crop": "random_resized", "rand_augment": "rand-m7-n4-mstd0.5-inc1", "random_erasing_prob": 0.25},
    ],
)
@pytest.mark.parametrize("size", [(48, 64), (144, 176), (273, 641), (12, 16)])
def test_train_transform_shape_dtype_and_range(overrides, size):
    config = VideoClipConfig(crop_size=32, **overrides)
    pixel_values = TrainTransform(config)(random_frames(height=size[0], width=size[1]), np.random.default_rng(0))
    assert pixel_values.shape == (4, 3, 32, 32) and pixel_values.dtype == torch.float32
    assert pixel_values.is_contiguous()
    if not overrides.get("random_erasing_prob"):  # erasing writes unbounded Gaussian noise
        assert LOW - 1e-5 <= pixel_values.min() and pixel_values.max() <= HIGH + 1e-5


@pytest.mark.parametrize("num_crops", [1, 3])
@pytest.mark.parametrize("size", [(48, 64), (144, 176), (273, 641), (12, 16)])
def test_eval_transform_shape_dtype_and_range(num_crops, size):
    config = VideoClipConfig(crop_size=32, short_side_size=36, num_crops=num_crops)
    views = EvalTransform(config)(random_frames(height=size[0], width=size[1]))
    assert views.shape == (num_crops, 4, 3, 32, 32) and views.dtype == torch.float32
    assert LOW - 1e-5 <= views.min() and views.max() <= HIGH + 1e-5


def test_eval_transform_is_resize_crop_normalize():
    frames = random_frames(height=40, width=60)
    config = VideoClipConfig(crop_size=24, short_side_size=30)
    resized = torch.nn.functional.interpolate(
        torch.from_numpy(frames).permute(0, 3, 1, 2), size=(30, 45), mode="bilinear", antialias=True
    )
    expected = (resized[..., 3:27, 10:34].float() / 255 - torch.tensor(MEAN).view(3, 1, 1)) / torch.tensor(STD).view(
        3, 1, 1
    )
    torch.testing.assert_close(EvalTransform(config)(frames)[0], expected, atol=1e-5, rtol=0)


def test_frames_smaller_than_the_crop_are_resized_up():
    frames = random_frames(height=12, width=10)
    assert TrainTransform(VideoClipConfig(crop_size=32))(frames, np.random.default_rng(0)).shape == (4, 3, 32, 32)
    assert EvalTransform(VideoClipConfig(crop_size=32))(frames).shape == (1, 4, 3, 32, 32)


def test_horizontal_flip_only_when_enabled():
    frames = random_frames(height=32, width=32)  # square and scale 1: the crop is the whole frame
    unflipped = normalize(as_uint8_video(frames), MEAN, STD)
    flipped = unflipped.flip(-1)

    def outcomes(flip):
        config = VideoClipConfig(crop_size=32, multiscale_scales=[1.0], horizontal_flip=flip)
        transform = TrainTransform(config)
        results = set()
        for seed in range(20):
            out = transform(frames, np.random.default_rng(seed))
            results.add(
                "flipped" if torch.equal(out, flipped) else "unflipped" if torch.equal(out, unflipped) else "?"
            )
        return results

    assert outcomes(False) == {"unflipped"}
    assert outcomes(True) == {"flipped", "unflipped"}


def test_normalize_then_unnormalize_round_trips():
    video = as_uint8_video(random_frames())
    pixel_values = normalize(video, MEAN, STD)
    torch.testing.assert_close(unnormalize(pixel_values, MEAN, STD), video.float() / 255, atol=1e-6, rtol=0)
    out = torch.empty(4, 3, 48, 64)
    assert normalize(video, MEAN, STD, out=out) is out


@pytest.mark.parametrize("train", [True, False])
def test_uint8_output_normalised_later_equals_the_normalised_output(train):
    # The pretraining loop normalises uint8 batches where they land (--normalize_on_device): bit for bit the same.
    config = VideoClipConfig(
        crop_size=32, short_side_size=36, num_crops=3, horizontal_flip=True, rand_augment="rand-m7-n4-mstd0.5-inc1"
    )
    frames = random_frames(height=48, width=64)
    transforms = [(TrainTransform if train else EvalTransform)(config, normalize=flag) for flag in (True, False)]
    normalised, raw = (transform(frames, np.random.default_rng(3)) for transform in transforms)
    assert raw.dtype == torch.uint8 and raw.shape == normalised.shape
    batch = torch.stack([raw, raw])  # a batch, as the loop sees it
    assert torch.equal(normalize(batch, MEAN, STD)[1], normalised)


def test_uint8_output_refuses_random_erasing():
    with pytest.raises(ValueError, match=r"random erasing \(random_erasing_prob=0.25\) needs normalised clips"):
        TrainTransform(VideoClipConfig(random_erasing_prob=0.25), normalize=False)


@pytest.mark.parametrize("op", VideoRandAugment._OPS)
def test_each_rand_augment_op_keeps_shape_and_treats_frames_alike(op):
    frame = random_frames(num_frames=1, height=24, width=32)
    video = as_uint8_video(np.repeat(frame, 3, axis=0))  # three identical frames
    out = VideoRandAugment("rand-m9-n1-inc1")._apply(op, video, 0.9, np.random.default_rng(0))
    assert out.shape == video.shape and out.dtype == torch.uint8
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])


def test_rand_augment_changes_clips_and_is_reproducible():
    video = as_uint8_video(random_frames(height=24, width=32))
    augment = VideoRandAugment("rand-m7-n4-mstd0.5-inc1")
    assert (augment.num_ops, augment.magnitude, augment.magnitude_std, augment.increasing) == (4, 7.0, 0.5, True)
    first = augment(video, np.random.default_rng(3))
    torch.testing.assert_close(first, augment(video, np.random.default_rng(3)))
    changed = [not torch.equal(augment(video, np.random.default_rng(seed)), video) for seed in range(10)]
    assert sum(changed) >= 8


def test_random_erasing_probability_and_area():
    pixel_values = torch.zeros(8, 3, 40, 40)
    random_erasing(pixel_values, 0.0, np.random.default_rng(0))
    assert torch.count_nonzero(pixel_values) == 0
    random_erasing(pixel_values, 1.0, np.random.default_rng(0))
    erased_fraction = (pixel_values != 0).any(dim=1).float().mean(dim=(1, 2))
    assert torch.all(erased_fraction >= 0.015) and torch.all(erased_fraction <= 1 / 3 + 0.02)
    assert len(set(erased_fraction.tolist())) > 1  # each frame gets its own rectangle, as in VideoMAE


# ------------------------------------------------------------------------------------------ what the decoder may scale


class SmallestDraws:
    """An rng whose every draw is the lowest value: the smallest area and the widest aspect ratio."""

    def uniform(self, low, high):
        return low

    def integers(self, low, high=None):
        return low if high is not None else 0


def test_decode_short_side_keeps_every_crop_at_least_crop_size():
    assert decode_short_side(VideoClipConfig(), train=False) == 224
    assert decode_short_side(VideoClipConfig(short_side_size=256), train=False) == 256
    assert decode_short_side(VideoClipConfig(), train=True) == 340  # multi-scale: 224 / 0.66
    random_resized = VideoClipConfig(train_crop="random_resized")
    short_side = decode_short_side(random_resized, train=True)
    assert short_side == math.ceil(224 / math.sqrt(0.08 * 0.75))
    # The smallest boxes the random draws can give on a square frame of that side are still >= 224 a side.
    boxes = [multiscale_crop_box(340, 604, 224, [0.66], np.random.default_rng(seed)) for seed in range(20)]
    assert min(min(box[2:]) for box in boxes) >= 224
    for ratio in ([3 / 4, 4 / 3], [4 / 3, 4 / 3]):
        _, _, height, width = random_resized_crop_box(short_side, short_side, [0.08, 1.0], ratio, SmallestDraws())
        assert min(height, width) >= 224


@pytest.fixture(scope="module")
def uhd_video(tmp_path_factory):
    """A 3-frame 3840x2160 H.264 clip."""
    rows, cols = np.mgrid[0:2160, 0:3840]
    frames = np.stack(
        [
            np.stack(
                [(cols * 200 // 3840 + 5 * t) % 256, rows * 200 // 2160, (rows + cols + 40 * t) % 256], axis=-1
            ).astype(np.uint8)
            for t in range(3)
        ]
    )
    return write_video(
        tmp_path_factory.mktemp("uhd") / "uhd.mp4", frames, options={"preset": "ultrafast"}, deterministic=False
    )


def test_a_4k_clip_is_decoded_at_the_size_the_transform_needs(uhd_video):
    config = VideoClipConfig()  # 16 frames (the 3 repeat), 224 crops
    (frames,) = read_clips(uhd_video, config, True, np.random.default_rng(0))
    assert frames.shape == (16, 340, 604, 3)  # multi-scale crops keep 224 pixels at scale 0.66
    (frames,) = read_clips(uhd_video, config, False)
    assert frames.shape == (16, 224, 398, 3)  # evaluation resizes to 224 anyway
    # Measured in a fresh process: the most its memory grows while making a training and an evaluation item.
    program = (
        "import resource, torch\n"
        "from adamae_hf.data import VideoClipConfig\n"
        "from adamae_hf.data.dataset import video_views\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "for train in (True, False):\n"
        f"    video_views({uhd_video!r}, video_key=0, epoch=0, seed=0, config=VideoClipConfig(), train=train,"
        " normalize=True)\n"
        "print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)\n"
    )
    growth_mb = int(
        subprocess.run(
            [sys.executable, "-c", program],
            check=True,
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        ).stdout
    )
    # (full-size RGB frames grew it by ~580 MB: 16 x 3840 x 2160 x 3 bytes = 398 MB for the stack alone)
    assert growth_mb < 200
