"""`pipeline("video-classification")` for AdaMAE classifiers that scores a video as the evaluation protocol does.

Every AdaMAE classifier folder carries this file, ``video_adamae.py`` and ``video_clips_adamae.py``, and its
``config.json`` names the class in ``custom_pipelines``, so that::

    from transformers import pipeline

    classifier = pipeline("video-classification", model="adamae-vit-base-k400", trust_remote_code=True)
    classifier("video.mp4", top_k=5)  # [{"label": ..., "score": ...}, ...]

decodes with the reader training used (rotation metadata, seeking, odd pixel formats), takes the model's
``clip_config.json`` views (``num_clips`` temporal x ``num_crops`` spatial; frames, stride, sampling mode, sizes and
normalisation) and averages their softmax: for the same video its scores are those ``run_finetune.py --do_predict``
writes to ``predictions.jsonl`` with the same views. ``num_clips`` / ``num_crops`` can be passed per call.
"""

from __future__ import annotations

import json

import torch
from transformers import Pipeline
from transformers.utils import cached_file, logging
from transformers.utils.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD


try:
    from .video_adamae import VideoReader
    from .video_clips_adamae import evaluation_views, read_evaluation_clips
except ImportError:  # imported as installed top-level modules rather than as Hub remote code
    from video_adamae import VideoReader
    from video_clips_adamae import evaluation_views, read_evaluation_clips


logger = logging.get_logger(__name__)

CLIP_CONFIG_NAME = "clip_config.json"
# Without a clip_config.json: VideoMAE's Kinetics evaluation, with frames, size and normalisation from the model.
DEFAULT_SAMPLING = {"sampling_mode": "dense", "sampling_rate": 4, "num_clips": 1, "num_crops": 1}


def read_clip_settings(model) -> dict:
    """The evaluation settings of ``model``: its folder's (or Hub repo's) ``clip_config.json``, else defaults from
    its config. Keys: num_frames, sampling_rate, sampling_mode, crop_size, short_side, image_mean, image_std,
    num_clips, num_crops."""
    path = cached_file(
        model.name_or_path,
        CLIP_CONFIG_NAME,
        _commit_hash=getattr(model.config, "_commit_hash", None),
        _raise_exceptions_for_missing_entries=False,
        _raise_exceptions_for_connection_errors=False,
    )
    if path is None:
        logger.warning(
            f"{model.name_or_path} has no {CLIP_CONFIG_NAME}: evaluating {DEFAULT_SAMPLING['num_clips']} centre clip "
            f"of {model.config.num_frames} frames at stride {DEFAULT_SAMPLING['sampling_rate']} and the model's "
            "normalisation; pass num_clips / num_crops to change the views."
        )
        saved = {}
    else:
        with open(path) as handle:
            saved = json.load(handle)
    settings = {**DEFAULT_SAMPLING, **{key: saved[key] for key in DEFAULT_SAMPLING if key in saved}}
    crop_size = saved.get("crop_size") or square_frame_side(model.config)
    return {
        **settings,
        "num_frames": saved.get("num_frames", model.config.num_frames),
        "crop_size": crop_size,
        "short_side": saved.get("short_side_size") or crop_size,
        "image_mean": saved.get("image_mean", getattr(model.config, "image_mean", list(IMAGENET_DEFAULT_MEAN))),
        "image_std": saved.get("image_std", getattr(model.config, "image_std", list(IMAGENET_DEFAULT_STD))),
    }


def square_frame_side(config) -> int:
    """The side of the model's square input frames; the evaluation views are square crops."""
    size = config.image_size
    height, width = (size, size) if isinstance(size, int) else size
    if height != width:
        raise ValueError(
            f"the model takes {height}x{width} frames, but the evaluation views are square crops; give "
            f"its folder a {CLIP_CONFIG_NAME} with a crop_size."
        )
    return int(height)


class AdaMaeVideoClassificationPipeline(Pipeline):
    """Video classification with the evaluation protocol: ``num_clips x num_crops`` views, softmax averaged.

    Call it with a video file path (or a list of them); ``top_k`` (default 5), ``num_clips`` and ``num_crops``
    (default: the model's ``clip_config.json``) are optional. Returns ``top_k`` dicts ``{"label", "score"}``, best
    first, per video.
    """

    _load_processor = False
    _load_image_processor = False  # the views come from clip_config.json, not from a processor
    _load_video_processor = False
    _load_feature_extractor = False
    _load_tokenizer = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.clip_settings = read_clip_settings(self.model)

    def _sanitize_parameters(self, top_k=None, num_clips=None, num_crops=None):
        views = {"num_clips": num_clips, "num_crops": num_crops}
        preprocess_params = {key: value for key, value in views.items() if value is not None}
        postprocess_params = {"top_k": top_k} if top_k is not None else {}
        return preprocess_params, {}, postprocess_params

    def preprocess(self, video, num_clips: int | None = None, num_crops: int | None = None) -> dict:
        settings = self.clip_settings
        num_clips = num_clips or settings["num_clips"]
        num_crops = num_crops or settings["num_crops"]
        # frames far larger than the evaluation needs are scaled by the decoder, exactly as run_finetune's views
        with VideoReader(video, target_short_side=settings["short_side"]) as reader:
            clips, _ = read_evaluation_clips(
                reader, settings["sampling_mode"], settings["num_frames"], settings["sampling_rate"], num_clips
            )
        views = [
            evaluation_views(
                frames,
                settings["crop_size"],
                settings["short_side"],
                num_crops,
                settings["image_mean"],
                settings["image_std"],
            )  # (num_crops, T, C, crop, crop)
            for frames in clips
        ]
        # one video (a batch of one) and its views, clip-major: (1, num_clips * num_crops, T, C, H, W)
        return {"pixel_values": torch.cat(views)[None].to(self.dtype)}

    def _forward(self, model_inputs: dict) -> dict:
        pixel_values = model_inputs["pixel_values"]  # (B, V, T, C, H, W)
        logits = self.model(pixel_values=pixel_values.flatten(0, 1)).logits
        return {"logits": logits.view(*pixel_values.shape[:2], -1)}  # (B, V, num_labels)

    def postprocess(self, model_outputs: dict, top_k: int = 5) -> list[dict]:
        # the views' softmax averaged in float64, as run_finetune.py's aggregation does
        probabilities = model_outputs["logits"][0].double().softmax(-1).mean(0)  # (num_labels,)
        scores, ids = probabilities.topk(min(top_k, probabilities.shape[0]))
        return [{"score": float(s), "label": self.model.config.id2label[int(i)]} for s, i in zip(scores, ids)]
