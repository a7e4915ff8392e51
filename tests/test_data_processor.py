"""The inference processor: configured like our evaluation transform, numerically equal to it, pipeline-ready.

transformers' VideoMAE processors need Pillow or torchvision to run. Tests that run them are skipped when neither
is installed; writing the processor file does not need them and is always tested.
"""

import json

import numpy as np
import pytest
import torch
from transformers import AutoVideoProcessor
from transformers.utils import is_torchvision_available, is_vision_available

import adamae_hf.data.processor as processor_module
from adamae_hf.data import (
    EvalTransform,
    VideoClipConfig,
    build_video_processor,
    read_video_frames,
    save_video_processor,
    video_processor_kwargs,
)


needs_backend = pytest.mark.skipif(
    not (is_torchvision_available() or is_vision_available()),
    reason="transformers' VideoMAE processors need Pillow or torchvision, and neither is installed",
)

CONFIG = VideoClipConfig(num_frames=4, crop_size=32, short_side_size=40)
# Pillow's fixed-point bilinear filter and torch's antialiased uint8 kernel round some pixels to a neighbouring
# grey level (measured: at most 2 levels, on under 3% of values for natural-looking frames); one level after
# normalisation is 1 / (255 * std). With torchvision both sides run the same kernel.
ONE_GREY_LEVEL = 1 / (255 * min(CONFIG.image_std))
PILLOW_TOLERANCE = 2 * ONE_GREY_LEVEL + 1e-5


def smooth_random_frames(height, width, seed):
    """Random but locally smooth uint8 frames (T, H, W, 3): real images, not white noise."""
    coarse = np.random.default_rng(seed).integers(0, 256, (4, height // 4 + 2, width // 4 + 2, 3))
    frames = torch.nn.functional.interpolate(
        torch.from_numpy(coarse).permute(0, 3, 1, 2).float(), size=(height, width), mode="bilinear"
    )
    return frames.round().clamp(0, 255).byte().permute(0, 2, 3, 1).numpy()


def test_processor_settings_follow_the_config():
    kwargs = video_processor_kwargs(CONFIG)
    assert kwargs["size"] == {"shortest_edge": 40} and kwargs["crop_size"] == {"height": 32, "width": 32}
    assert kwargs["image_mean"] == [0.485, 0.456, 0.406] and kwargs["image_std"] == [0.229, 0.224, 0.225]
    assert kwargs["resample"] == 2 and kwargs["rescale_factor"] == pytest.approx(1 / 255)
    assert video_processor_kwargs()["size"] == {"shortest_edge": 224}  # short side defaults to the crop


def test_save_without_a_backend_writes_the_processor_file(tmp_path, monkeypatch):
    monkeypatch.setattr(processor_module, "is_torchvision_available", lambda: False)
    monkeypatch.setattr(processor_module, "is_vision_available", lambda: False)
    with pytest.raises(ImportError, match="Pillow"):
        build_video_processor(CONFIG)
    path = save_video_processor(tmp_path, CONFIG)
    with open(path) as handle:
        saved = json.load(handle)
    assert saved["image_processor_type"] == "VideoMAEImageProcessor"
    assert saved["size"] == {"shortest_edge": 40} and saved["crop_size"] == {"height": 32, "width": 32}
    assert saved["image_mean"] == CONFIG.image_mean and saved["do_center_crop"] and saved["do_normalize"]


@needs_backend
@pytest.mark.parametrize("size", [(48, 64), (144, 176), (273, 641), (20, 30), (64, 48)])
def test_processor_output_equals_the_eval_transform(size):
    frames = smooth_random_frames(*size, seed=sum(size))
    processed = build_video_processor(CONFIG)(list(frames), return_tensors="pt")["pixel_values"][0]
    ours = EvalTransform(CONFIG)(frames)[0]
    assert processed.shape == ours.shape == (4, 3, 32, 32)
    difference = (processed - ours).abs()
    if is_torchvision_available():  # same resize kernel: equal up to float rounding
        assert difference.max() <= 1e-5
    else:
        assert difference.max() <= PILLOW_TOLERANCE
        assert (difference > 1e-5).float().mean() <= 0.05


@needs_backend
def test_saved_file_loads_as_the_same_processor(tmp_path, monkeypatch):
    from transformers import AutoImageProcessor

    save_video_processor(tmp_path / "with_backend", CONFIG)
    monkeypatch.setattr(processor_module, "is_torchvision_available", lambda: False)
    monkeypatch.setattr(processor_module, "is_vision_available", lambda: False)
    save_video_processor(tmp_path / "without_backend", CONFIG)
    monkeypatch.undo()
    first = AutoImageProcessor.from_pretrained(tmp_path / "with_backend").to_dict()
    second = AutoImageProcessor.from_pretrained(tmp_path / "without_backend").to_dict()
    assert first == second
    assert first == build_video_processor(CONFIG).to_dict()


@needs_backend
def test_video_classification_pipeline_preprocesses_like_our_eval_transform(tmp_path, sample_videos):
    from transformers import VideoMAEConfig, VideoMAEForVideoClassification, pipeline

    model_config = VideoMAEConfig(
        image_size=32,
        patch_size=16,
        num_frames=4,
        tubelet_size=2,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        num_labels=3,
        id2label={0: "move_left", 1: "move_right", 2: "move_up"},
        label2id={"move_left": 0, "move_right": 1, "move_up": 2},
    )
    torch.manual_seed(0)
    VideoMAEForVideoClassification(model_config).save_pretrained(tmp_path)
    save_video_processor(tmp_path, CONFIG)
    classifier = pipeline("video-classification", model=str(tmp_path))

    predictions = classifier(sample_videos[0].path, top_k=3)
    assert sorted(prediction["label"] for prediction in predictions) == ["move_left", "move_right", "move_up"]

    # With an image processor the pipeline decodes num_frames evenly spaced frames of the first
    # num_frames * frame_sampling_rate; feed ours the same frames.
    inputs = classifier.preprocess(sample_videos[0].path, num_frames=4, frame_sampling_rate=3)
    indices = np.linspace(0, 4 * 3 - 1, num=4, dtype=np.int64)
    ours = EvalTransform(CONFIG)(read_video_frames(sample_videos[0].path, indices))[0]
    difference = (inputs["pixel_values"][0] - ours).abs()
    assert difference.max() <= (1e-5 if is_torchvision_available() else PILLOW_TOLERANCE)


def test_the_video_processor_file_holds_the_eval_transform_numbers(tmp_path):
    save_video_processor(tmp_path, CONFIG)
    saved = json.loads((tmp_path / "video_preprocessor_config.json").read_text())
    assert saved["video_processor_type"] == "VideoMAEVideoProcessor"
    assert {key: saved[key] for key in video_processor_kwargs(CONFIG)} == video_processor_kwargs(CONFIG)
    assert saved["do_sample_frames"] is False and saved["default_to_square"] is False


def test_auto_video_processor_loads_the_saved_processor(tmp_path):
    """With torchvision, AutoVideoProcessor gives a VideoMAEVideoProcessor that computes our evaluation transform.
    Without it transformers has no VideoMAE video processor (its base class is the torchvision backend) and says so;
    the stock pipeline then falls back to the image processor, and our Hub pipeline needs neither."""
    save_video_processor(tmp_path, CONFIG)
    if not is_torchvision_available():
        with pytest.raises((ImportError, ValueError), match="[Tt]orchvision"):
            AutoVideoProcessor.from_pretrained(tmp_path)
        return
    processor = AutoVideoProcessor.from_pretrained(tmp_path)
    assert type(processor).__name__ == "VideoMAEVideoProcessor"
    assert processor.crop_size.height == 32 and list(processor.image_mean) == CONFIG.image_mean
    frames = smooth_random_frames(48, 64, seed=3)
    processed = processor(list(frames), return_tensors="pt")["pixel_values"][0]  # one video of 4 frames
    assert (processed - EvalTransform(CONFIG)(frames)[0]).abs().max() <= 1e-5
