"""What a model folder needs for inference: processors set to our evaluation transform, and for classifiers the Hub
pipeline that runs the evaluation protocol.

:func:`save_video_processor` writes, beside a model:

* ``video_preprocessor_config.json``: a ``VideoMAEVideoProcessor`` (transformers 5's ``AutoVideoProcessor``), which
  ``pipeline("video-classification")`` prefers, so it does not warn that using an image processor is deprecated;
* ``preprocessor_config.json``: a VideoMAE *image* processor (``VideoMAEImageProcessor`` with torchvision,
  ``VideoMAEImageProcessorPil`` with Pillow alone), what older folders have and what the pipeline falls back to;
* ``clip_config.json`` (given a config): every clip setting, including the evaluation views;
* in an AdaMAE *classifier* folder, ``pipeline_adamae.py`` (with ``video_adamae.py`` and ``video_clips_adamae.py``)
  and a ``custom_pipelines`` entry in ``config.json``: ``pipeline("video-classification", model=folder,
  trust_remote_code=True)`` then decodes with our reader and averages the ``num_clips x num_crops`` views of
  ``clip_config.json``, as ``run_finetune.py --do_predict`` does.

Both processors resize the short side to ``config.eval_short_side`` (bilinear), cut a ``crop_size`` centre crop,
rescale by 1/255 and normalise with the config's mean/std, i.e. :class:`adamae_hf.data.transforms.EvalTransform`
with one crop. The transformers defaults differ (mean = std = 0.5), so processors must always be saved with the model.
``VideoMAEVideoProcessor`` exists only with torchvision (its base class is transformers' torchvision backend): without
it ``AutoVideoProcessor`` cannot load any VideoMAE video processor and the stock pipeline falls back to the image
processor; our Hub pipeline loads neither and needs only torch and PyAV.

Numerically: the torchvision backend resizes with the same ``F.interpolate(uint8, antialias=True)`` kernel as our
transform, so it matches to float rounding; the Pillow backend's bilinear filter differs by at most one grey level
on a small fraction of pixels (|diff| <= 1 / (255 * min(std)) = 0.0175 after normalisation).

With transformers' own pipeline (the stock-VideoMAE export), frame *selection* is the pipeline's: the
image-processor path decodes the first ``num_frames * frame_sampling_rate`` frames and takes ``num_frames`` evenly
spaced ones; the video-processor path samples ``num_frames`` uniformly over the whole video. Neither is our centred
evaluation window, and transformers' decoder ignores rotation metadata; our Hub pipeline does both as evaluation does.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from transformers.dynamic_module_utils import custom_object_save
from transformers.utils import CONFIG_NAME, VIDEO_PROCESSOR_NAME, is_torchvision_available, is_vision_available

from .config import VideoClipConfig, save_clip_config


PROCESSOR_CONFIG_NAME = "preprocessor_config.json"
_PIL_BILINEAR = 2  # PILImageResampling.BILINEAR, stored as an int in the JSON
CLASSIFIER_ARCHITECTURE = "AdaMaeForVideoClassification"
# config.json's entry, as transformers' Pipeline.save_pretrained writes it for a registered custom pipeline
CUSTOM_PIPELINES = {
    "video-classification": {
        "impl": "pipeline_adamae.AdaMaeVideoClassificationPipeline",
        "pt": ["AutoModelForVideoClassification"],
    }
}


def video_processor_kwargs(config: VideoClipConfig | None = None) -> dict:
    """Keyword arguments of a VideoMAE image/video processor equivalent to the single-crop evaluation transform."""
    config = config if config is not None else VideoClipConfig()
    return {
        "do_resize": True,
        "size": {"shortest_edge": config.eval_short_side},
        "resample": _PIL_BILINEAR,
        "do_center_crop": True,
        "crop_size": {"height": config.crop_size, "width": config.crop_size},
        "do_rescale": True,
        "rescale_factor": 1 / 255,
        "do_normalize": True,
        "image_mean": list(config.image_mean),
        "image_std": list(config.image_std),
    }


def build_video_processor(config: VideoClipConfig | None = None):
    """transformers' VideoMAE image processor matching :class:`~adamae_hf.data.transforms.EvalTransform`.

    Returns ``VideoMAEImageProcessor`` (torchvision backend) when torchvision is installed, else
    ``VideoMAEImageProcessorPil``; both save the same ``preprocessor_config.json``.

    Raises:
        ImportError: Neither torchvision nor Pillow is installed (transformers needs one of them to process images).
    """
    if is_torchvision_available():
        from transformers import VideoMAEImageProcessor as processor_class
    elif is_vision_available():
        from transformers import VideoMAEImageProcessorPil as processor_class
    else:
        raise ImportError(
            "transformers' VideoMAE processors need torchvision or Pillow; install one (`pip install pillow`) to "
            "build the processor. save_video_processor works without them."
        )
    return processor_class(**video_processor_kwargs(config))


def _write_json(path: Path, values: dict) -> None:
    """transformers' own JSON layout (sorted keys, 2-space indent, final newline)."""
    path.write_text(json.dumps(values, indent=2, sort_keys=True) + "\n")


def save_image_processor(save_directory: str | os.PathLike, config: VideoClipConfig | None = None) -> Path:
    """Write ``preprocessor_config.json``: the processor's own ``save_pretrained`` when Pillow or torchvision is
    installed, otherwise the identical JSON directly (training machines without either still write it)."""
    path = Path(save_directory) / PROCESSOR_CONFIG_NAME
    try:
        processor = build_video_processor(config)
    except ImportError:
        _write_json(path, {**video_processor_kwargs(config), "image_processor_type": "VideoMAEImageProcessor"})
    else:
        processor.save_pretrained(save_directory)
    return path


def save_videomae_video_processor(save_directory: str | os.PathLike, config: VideoClipConfig | None = None) -> Path:
    """Write ``video_preprocessor_config.json``, a ``VideoMAEVideoProcessor`` equal to the image processor.

    Written as JSON because the class cannot be built without torchvision; ``AutoVideoProcessor`` loads it (where
    torchvision is installed) over the class defaults. ``do_sample_frames`` stays False as in the class: callers hand
    it the frames of a clip (the stock pipeline turns sampling on itself).
    """
    path = Path(save_directory) / VIDEO_PROCESSOR_NAME
    values = {
        **video_processor_kwargs(config),
        "video_processor_type": "VideoMAEVideoProcessor",
        "do_convert_rgb": True,
        "do_sample_frames": False,
        "default_to_square": False,
    }
    _write_json(path, values)
    return path


def is_adamae_classifier(save_directory: str | os.PathLike) -> bool:
    """Whether the folder's ``config.json`` describes an ``AdaMaeForVideoClassification``."""
    path = Path(save_directory) / CONFIG_NAME
    return path.is_file() and CLASSIFIER_ARCHITECTURE in (json.loads(path.read_text()).get("architectures") or [])


def save_classification_pipeline(save_directory: str | os.PathLike) -> list[Path]:
    """Put the Hub pipeline into an AdaMAE classifier folder: ``pipeline_adamae.py`` with the files it imports
    (``video_adamae.py``, ``video_clips_adamae.py``, the model's files) and the ``custom_pipelines`` entry in
    ``config.json``. Call it after the model's ``save_pretrained``, which rewrites ``config.json``.

    Returns:
        The Python files written.

    Raises:
        ValueError: The folder holds no AdaMAE classifier ``config.json``.
    """
    if not is_adamae_classifier(save_directory):
        raise ValueError(
            f"{save_directory} must hold the config.json of an {CLASSIFIER_ARCHITECTURE} (save the model "
            "first); the pipeline classifies videos."
        )
    from pipeline_adamae import AdaMaeVideoClassificationPipeline  # imports transformers' pipelines: only here

    files = custom_object_save(AdaMaeVideoClassificationPipeline, save_directory)  # with its relative imports
    config_path = Path(save_directory) / CONFIG_NAME
    _write_json(config_path, {**json.loads(config_path.read_text()), "custom_pipelines": CUSTOM_PIPELINES})
    return [Path(file) for file in files]


def save_video_processor(save_directory: str | os.PathLike, config: VideoClipConfig | None = None) -> str:
    """Make ``save_directory`` (a model folder) inference-ready: ``video_preprocessor_config.json`` and
    ``preprocessor_config.json`` for ``config``'s evaluation transform, with a ``config`` also ``clip_config.json``
    (every clip setting; ``run_finetune.py`` starts from its geometry and the Hub pipeline takes its views), and in an
    AdaMAE classifier folder the Hub pipeline (:func:`save_classification_pipeline`). Call it after the model's
    ``save_pretrained``.

    Returns:
        The path of the written image processor file (``preprocessor_config.json``).
    """
    os.makedirs(save_directory, exist_ok=True)
    if config is not None:
        save_clip_config(save_directory, config)
    save_videomae_video_processor(save_directory, config)
    if is_adamae_classifier(save_directory):
        save_classification_pipeline(save_directory)
    return str(save_image_processor(save_directory, config))
