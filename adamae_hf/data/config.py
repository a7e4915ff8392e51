"""One dataclass that carries every knob of the clip pipeline: sampling, augmentation, evaluation views.

It doubles as a script-argument dataclass for ``HfArgumentParser`` (each field has a ``help``), and it is the
single source of truth for the inference processor (:func:`adamae_hf.data.processor.build_video_processor`), so
training, evaluation and ``pipeline("video-classification")`` cannot drift apart.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from transformers.utils.constants import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from configuration_adamae import MAX_IMAGE_SIZE


SAMPLING_MODES = ("dense", "segment")
CLIP_CONFIG_NAME = "clip_config.json"
# What makes a clip the input a model was trained on, as opposed to its augmentation: a model folder carries these,
# and evaluating or fine-tuning from the folder starts from them (`load_clip_geometry`).
CLIP_GEOMETRY_FIELDS = (
    "num_frames",
    "sampling_rate",
    "sampling_mode",
    "crop_size",
    "short_side_size",
    "image_mean",
    "image_std",
)
TRAIN_CROPS = ("multiscale", "random_resized")

_RAND_AUGMENT_PATTERN = re.compile(r"^rand(-(m\d+(\.\d+)?|n\d+|mstd\d+(\.\d+)?|inc[01]))*$")


def _fail(field_name: str, expected: str, got) -> None:
    raise ValueError(f"{field_name} must be {expected}, got {got!r}")


@dataclass
class VideoClipConfig:
    """How clips are sampled from videos and turned into ``pixel_values`` (T, C, H, W).

    Defaults follow VideoMAE/AdaMAE pretraining on Kinetics-400: 16 frames at stride 4, 224x224 multi-scale
    crops, ImageNet normalisation, no flip. Every invalid value raises ``ValueError`` naming the field.
    """

    num_frames: int = field(default=16, metadata={"help": "Frames per clip."})
    sampling_rate: int = field(
        default=4, metadata={"help": "Stride between sampled frames in 'dense' mode (2 for SSv2, 4 for K400)."}
    )
    sampling_mode: str = field(
        default="dense",
        metadata={
            "help": "'dense': num_frames frames at a fixed stride from one window; 'segment': split the video "
            "into num_frames segments and take one frame from each (Something-Something style)."
        },
    )
    crop_size: int = field(default=224, metadata={"help": "Side of the square crop fed to the model."})
    short_side_size: int | None = field(
        default=None,
        metadata={"help": "Evaluation: resize the short side to this before cropping (default: crop_size)."},
    )
    train_crop: str = field(
        default="multiscale",
        metadata={
            "help": "Training crop: 'multiscale' (VideoMAE pretraining: corner/centre crops at scales "
            "multiscale_scales of the short side) or 'random_resized' (fine-tuning)."
        },
    )
    multiscale_scales: list[float] = field(
        default_factory=lambda: [1.0, 0.875, 0.75, 0.66],
        metadata={"help": "Crop sizes, as fractions of the short side, for the multi-scale crop."},
    )
    random_resized_scale: list[float] = field(
        default_factory=lambda: [0.08, 1.0], metadata={"help": "Area range of the random resized crop."}
    )
    random_resized_ratio: list[float] = field(
        default_factory=lambda: [3 / 4, 4 / 3], metadata={"help": "Aspect ratio range of the random resized crop."}
    )
    horizontal_flip: bool = field(
        default=False,
        metadata={
            "help": "Random horizontal flip in training. Off by default: it corrupts direction-sensitive labels."
        },
    )
    rand_augment: str | None = field(
        default=None,
        metadata={"help": "RandAugment spec in timm syntax, e.g. 'rand-m7-n4-mstd0.5-inc1' (VideoMAE fine-tuning)."},
    )
    random_erasing_prob: float = field(
        default=0.0, metadata={"help": "Probability of random erasing per frame (0.25 for VideoMAE fine-tuning)."}
    )
    num_sample: int = field(
        default=1,
        metadata={"help": "Repeated sampling: independently augmented clips drawn from each decoded video."},
    )
    num_clips: int = field(default=1, metadata={"help": "Evaluation: temporal views per video."})
    num_crops: int = field(default=1, metadata={"help": "Evaluation: spatial views per clip, 1 (centre) or 3."})
    image_mean: list[float] = field(default_factory=lambda: list(IMAGENET_DEFAULT_MEAN))
    image_std: list[float] = field(default_factory=lambda: list(IMAGENET_DEFAULT_STD))
    decode_threads: int = field(
        default=1,
        metadata={"help": "Decoder threads per reader; 0 lets FFmpeg choose. 1 is fastest with one worker per core."},
    )

    def __post_init__(self):
        for name in ("num_frames", "sampling_rate", "crop_size", "num_sample", "num_clips"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                _fail(name, "a positive integer", value)
        if self.short_side_size is not None and (
            isinstance(self.short_side_size, bool) or not isinstance(self.short_side_size, int)
        ):
            _fail("short_side_size", "a positive integer or None", self.short_side_size)
        for name in ("crop_size", "short_side_size"):
            # The model refuses larger frames too; checked here so a run fails before it decodes anything.
            if getattr(self, name) is not None and getattr(self, name) > MAX_IMAGE_SIZE:
                _fail(name, f"at most {MAX_IMAGE_SIZE} pixels", getattr(self, name))
        if self.crop_size > self.eval_short_side:
            _fail(
                "crop_size",
                f"<= short_side_size ({self.eval_short_side}), since the evaluation crop is cut from frames "
                "resized to that short side",
                self.crop_size,
            )
        if self.sampling_mode not in SAMPLING_MODES:
            _fail("sampling_mode", f"one of {SAMPLING_MODES}", self.sampling_mode)
        if self.train_crop not in TRAIN_CROPS:
            _fail("train_crop", f"one of {TRAIN_CROPS}", self.train_crop)
        self.multiscale_scales = [float(scale) for scale in self.multiscale_scales]
        if not self.multiscale_scales or not all(0 < scale <= 1 for scale in self.multiscale_scales):
            _fail("multiscale_scales", "a non-empty list of fractions in (0, 1]", self.multiscale_scales)
        self.random_resized_scale = [float(value) for value in self.random_resized_scale]
        scale = self.random_resized_scale
        if len(scale) != 2 or not 0 < scale[0] <= scale[1] <= 1:
            _fail("random_resized_scale", "[low, high] with 0 < low <= high <= 1", scale)
        self.random_resized_ratio = [float(value) for value in self.random_resized_ratio]
        ratio = self.random_resized_ratio
        if len(ratio) != 2 or not 0 < ratio[0] <= ratio[1]:
            _fail("random_resized_ratio", "[low, high] with 0 < low <= high", ratio)
        if self.rand_augment is not None and not _RAND_AUGMENT_PATTERN.match(self.rand_augment):
            _fail("rand_augment", "None or a spec like 'rand-m7-n4-mstd0.5-inc1'", self.rand_augment)
        if not 0.0 <= self.random_erasing_prob <= 1.0:
            _fail("random_erasing_prob", "in [0, 1]", self.random_erasing_prob)
        if self.num_crops not in (1, 3):
            _fail("num_crops", "1 or 3", self.num_crops)
        self.image_mean = [float(value) for value in self.image_mean]
        self.image_std = [float(value) for value in self.image_std]
        if len(self.image_mean) != 3:
            _fail("image_mean", "three values (R, G, B)", self.image_mean)
        if len(self.image_std) != 3 or not all(value > 0 for value in self.image_std):
            _fail("image_std", "three positive values (R, G, B)", self.image_std)
        if (
            isinstance(self.decode_threads, bool)
            or not isinstance(self.decode_threads, int)
            or self.decode_threads < 0
        ):
            _fail("decode_threads", "an integer >= 0", self.decode_threads)

    @property
    def eval_short_side(self) -> int:
        """Short side that evaluation resizes frames to: ``short_side_size``, or ``crop_size`` when unset."""
        return self.short_side_size if self.short_side_size is not None else self.crop_size

    @property
    def num_eval_views(self) -> int:
        """Views per video at evaluation: ``num_clips * num_crops``."""
        return self.num_clips * self.num_crops

    def to_dict(self) -> dict:
        return asdict(self)


def save_clip_config(save_directory: str | os.PathLike, config: VideoClipConfig) -> Path:
    """Write every setting of ``config`` to ``save_directory/clip_config.json`` (beside a model) and return the path."""
    path = Path(save_directory) / CLIP_CONFIG_NAME
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(config.to_dict(), indent=2, sort_keys=True) + "\n")
    return path


def load_clip_geometry(model_folder: str | os.PathLike) -> dict | None:
    """The clip geometry (``CLIP_GEOMETRY_FIELDS``) saved in a local model folder's ``clip_config.json``, or None when
    the folder has none (converted checkpoints, Hub ids, older folders)."""
    path = Path(model_folder) / CLIP_CONFIG_NAME
    if not path.is_file():
        return None
    try:
        values = json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON: {error}") from error
    if not isinstance(values, dict):
        raise ValueError(f"{path} must hold a JSON object of clip settings, got a {type(values).__name__}.")
    geometry = {name: values[name] for name in CLIP_GEOMETRY_FIELDS if name in values}
    try:
        VideoClipConfig(**geometry)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path} holds invalid clip settings: {error}") from error
    return geometry
