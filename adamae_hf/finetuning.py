"""The former home of fine-tuning, split into `finetune_arguments`, `finetune_data`, `finetune_model`,
`video_trainer`, `data.mixup`, `hub` and `finetune_run`. It only re-exports the two names that
`sampler_evaluation` still imports from here; import from the new modules instead."""

from .finetune_arguments import saved_clip_geometry
from .finetune_data import load_video_index


__all__ = ["load_video_index", "saved_clip_geometry"]
