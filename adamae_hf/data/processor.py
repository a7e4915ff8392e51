"""The inference processor saved beside models, configured to compute exactly our evaluation transform.

``pipeline("video-classification")`` in transformers 5.x preprocesses with the model folder's *video* processor
when one loads, otherwise with its *image* processor. Both VideoMAE classes read the same
``preprocessor_config.json``: ``VideoMAEImageProcessor`` (torchvision backend, or ``VideoMAEImageProcessorPil``
when only Pillow is installed) and ``VideoMAEVideoProcessor`` (needs torchvision). We write that file with
short-side resize to ``config.eval_short_side`` (bilinear), a ``crop_size`` centre crop, rescale by 1/255 and
ImageNet mean/std, i.e. :class:`adamae_hf.data.transforms.EvalTransform` with one crop. Note that the
transformers defaults differ (mean = std = 0.5), so a processor must always be saved with the model.

Numerically: the torchvision backend resizes with the same ``F.interpolate(uint8, antialias=True)`` kernel as our
transform, so it matches to float rounding; the Pillow backend's bilinear filter differs by at most one grey level
on a small fraction of pixels (|diff| <= 1 / (255 * min(std)) = 0.0175 after normalisation).

Frame *selection* is the pipeline's own: the image-processor path decodes the first
``num_frames * frame_sampling_rate`` frames and takes ``num_frames`` evenly spaced ones; the video-processor path
samples ``num_frames`` uniformly over the whole video. Neither is our centred evaluation window.
"""

from __future__ import annotations

import json
import os

from transformers.utils import is_torchvision_available, is_vision_available

from .config import VideoClipConfig, save_clip_config


PROCESSOR_CONFIG_NAME = "preprocessor_config.json"
_PIL_BILINEAR = 2  # PILImageResampling.BILINEAR, stored as an int in the JSON


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


def save_video_processor(save_directory: str | os.PathLike, config: VideoClipConfig | None = None) -> str:
    """Write ``preprocessor_config.json`` for ``config`` into ``save_directory`` (e.g. a model folder), and with a
    ``config`` also ``clip_config.json`` (every clip setting; ``run_finetune.py`` starts from its geometry).

    Uses the processor's own ``save_pretrained`` when a backend is installed; otherwise writes the identical
    JSON directly, so training machines without Pillow or torchvision still produce pipeline-ready folders.

    Returns:
        The path of the written processor file.
    """
    os.makedirs(save_directory, exist_ok=True)
    if config is not None:
        save_clip_config(save_directory, config)
    try:
        processor = build_video_processor(config)
    except ImportError:
        processor_dict = {**video_processor_kwargs(config), "image_processor_type": "VideoMAEImageProcessor"}
        path = os.path.join(str(save_directory), PROCESSOR_CONFIG_NAME)
        with open(path, "w") as handle:
            json.dump(processor_dict, handle, indent=2, sort_keys=True)
            handle.write("\n")
        return path
    processor.save_pretrained(save_directory)
    return os.path.join(str(save_directory), PROCESSOR_CONFIG_NAME)
