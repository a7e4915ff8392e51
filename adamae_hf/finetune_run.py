"""`run_finetuning`: one fine-tuning run from its parsed arguments, as `run_finetune.py` runs it — start-up checks,
classes, data and model, `VideoClassificationTrainer`'s training, single-view validation and multi-view testing, then
the published folder (model, processor, card, optional stock-VideoMAE export and upload)."""

from __future__ import annotations

import logging
import os
import sys

import transformers
from transformers import SchedulerType, TrainingArguments, set_seed
from transformers.trainer_utils import get_last_checkpoint

from .data import CLIP_CONFIG_NAME, VideoClipConfig, collate_clips
from .data.mixup import MixupCutmix
from .errors import UserError
from .finetune_arguments import (
    DataArguments,
    FinetuningClipConfig,
    FinetuningTrainingArguments,
    ModelArguments,
    RecipeArguments,
)
from .finetune_data import (
    VideoDatasets,
    build_video_datasets,
    evaluation_clip_config,
    hub_dataset_names,
    resolve_label_names,
)
from .finetune_model import build_model, checkpoint_label_names, read_checkpoint_config
from .hub import classification_card_settings, prepare_hub_upload, publish_classifier
from .optim import scaled_learning_rate
from .training import quiet_library_output, warn_about_launch_mismatch
from .video_trainer import (
    VideoClassificationTrainer,
    aggregate_views,
    build_compute_metrics,
    skipped_video_total,
    write_predictions,
)


logger = logging.getLogger(__name__)


def configure_logging(training_args: TrainingArguments) -> None:
    """Our INFO lines on the main process by default; transformers' at WARNING (its INFO level dumps every config and
    file it reads or writes) unless `--log_level` says otherwise, which then applies to both."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    library_level = training_args.get_process_log_level()  # "passive": transformers' own, WARNING by default
    own_level = logging.INFO if training_args.log_level == "passive" and training_args.should_log else library_level
    logging.getLogger("adamae_hf").setLevel(own_level)
    transformers.utils.logging.set_verbosity(library_level)
    quiet_library_output()


def check_run_is_possible(training_args: TrainingArguments) -> None:
    """Refuse a run with nothing to do, before anything is written (it would only save an untrained classifier)."""
    if not (training_args.do_train or training_args.do_eval or training_args.do_predict):
        raise UserError(
            "nothing to do: expected --do_train, --do_eval and/or --do_predict (with --train_index, "
            "--validation_index or --test_index), got none; nothing was written."
        )


def check_streaming_run(
    data_args: DataArguments, recipe_args: RecipeArguments, training_args: TrainingArguments
) -> None:
    """Training on a stream needs its length in steps: a stream has no length, so Trainer cannot count epochs, and
    the recipe's warmup cannot be given in epochs."""
    if not (data_args.streaming and training_args.do_train):
        return
    if training_args.max_steps <= 0:
        raise UserError(
            "--streaming: training on a stream needs --max_steps (a stream has no length, so its epochs "
            f"cannot be counted), got max_steps={training_args.max_steps}."
        )
    is_recipe_schedule = SchedulerType(training_args.lr_scheduler_type) == SchedulerType.COSINE
    if is_recipe_schedule and not training_args.warmup_steps and recipe_args.warmup_epochs:
        raise UserError(
            "--streaming: give the warmup in optimizer steps (--warmup_steps N, or --warmup_epochs 0), got "
            f"--warmup_epochs {recipe_args.warmup_epochs:g}: an epoch of a stream has no known length."
        )


def build_mixup(recipe_args: RecipeArguments, num_classes: int, label_smoothing: float) -> MixupCutmix | None:
    """The training-step batch mixer, or None when there is neither mixing nor smoothing (plain cross-entropy)."""
    mixup = MixupCutmix(
        num_classes,
        recipe_args.mixup_alpha,
        recipe_args.cutmix_alpha,
        recipe_args.mixup_prob,
        recipe_args.mixup_switch_prob,
        label_smoothing,
    )
    return mixup if mixup.mixes or label_smoothing > 0 else None


def clips_per_step(training_args: TrainingArguments, clip_config: VideoClipConfig) -> int:
    """Clips in one optimizer step over all devices: videos per device x num_sample x devices x accumulation."""
    return (
        training_args.per_device_train_batch_size
        * clip_config.num_sample
        * training_args.world_size
        * training_args.gradient_accumulation_steps
    )


def recipe_learning_rates(
    training_args: TrainingArguments, recipe_args: RecipeArguments, clip_config: VideoClipConfig
) -> tuple[float, float]:
    """Set the peak lr as the recipe states it, base_learning_rate x clips per optimizer step / 256, unless
    --learning_rate gives it; returns the schedule's (warmup_lr, min_lr), scaled like the lr when it was derived."""
    if training_args.learning_rate is not None:
        return recipe_args.warmup_lr, recipe_args.min_lr
    clips = clips_per_step(training_args, clip_config)
    training_args.learning_rate = scaled_learning_rate(recipe_args.base_learning_rate, clips)
    logger.info(
        f"learning rate {training_args.learning_rate:.3g} = {recipe_args.base_learning_rate:g} x "
        f"{clips} clips per step / 256"
    )
    return scaled_learning_rate(recipe_args.warmup_lr, clips), scaled_learning_rate(recipe_args.min_lr, clips)


def checkpoint_to_resume(training_args: TrainingArguments) -> str | None:
    """`--resume_from_checkpoint`, else the output folder's last checkpoint when training (None for a fresh run)."""
    if not training_args.do_train or training_args.resume_from_checkpoint is not None:
        return training_args.resume_from_checkpoint
    if not os.path.isdir(training_args.output_dir):
        return None
    last_checkpoint = get_last_checkpoint(training_args.output_dir)
    if last_checkpoint is not None:
        logger.info(f"Resuming from {last_checkpoint}; pass --resume_from_checkpoint to choose another.")
    return last_checkpoint


def build_trainer(
    model_args: ModelArguments,
    data_args: DataArguments,
    recipe_args: RecipeArguments,
    clip_config: FinetuningClipConfig,
    training_args: FinetuningTrainingArguments,
    data: VideoDatasets,
    checkpoint_config: dict | None,
) -> VideoClassificationTrainer:
    """The model from its start checkpoint (`checkpoint_config`: its config.json, None for an authors' .pth), and the
    Trainer with the recipe's optimizer, schedule and mixing."""
    model = build_model(model_args, data.label_names, clip_config, checkpoint_config)
    warmup_lr, min_lr = recipe_learning_rates(training_args, recipe_args, clip_config)
    return VideoClassificationTrainer(
        model=model,
        args=training_args,
        train_dataset=data.train,
        eval_dataset=data.validation,
        data_collator=collate_clips,
        # saved with the model and every checkpoint, with the processors and the pipeline, which scores a video with
        # the test views (--test_num_clips x --test_num_crops) as --do_predict does
        clip_config=evaluation_clip_config(clip_config, data_args.test_num_clips, data_args.test_num_crops),
        compute_metrics=build_compute_metrics(),
        layer_decay=recipe_args.layer_decay,
        mixup=build_mixup(recipe_args, len(data.label_names), training_args.label_smoothing_factor),
        warmup_epochs=recipe_args.warmup_epochs,
        warmup_lr=warmup_lr,
        min_lr=min_lr,
    )


def report(trainer: VideoClassificationTrainer, split: str, metrics: dict[str, float]) -> dict[str, float]:
    """Log and save one split's metrics (`<split>_results.json`, and `all_results.json`)."""
    trainer.log_metrics(split, metrics)
    trainer.save_metrics(split, metrics)
    return metrics


def train(trainer: VideoClassificationTrainer, data: VideoDatasets, resume_from: str | None) -> dict[str, float]:
    """Train (from `resume_from`, a checkpoint folder, where given), then save the model and Trainer's state."""
    train_result = trainer.train(resume_from_checkpoint=resume_from)
    trainer.save_model()
    metrics = report(
        trainer, "train", {**train_result.metrics, "train_skipped_videos": skipped_video_total(trainer, data.train)}
    )
    trainer.save_state()
    return metrics


def evaluate(trainer: VideoClassificationTrainer, data: VideoDatasets) -> dict[str, float]:
    """Single-view validation."""
    metrics = {**trainer.evaluate(), "eval_skipped_videos": skipped_video_total(trainer, data.validation)}
    return report(trainer, "eval", metrics)


def predict(trainer: VideoClassificationTrainer, data: VideoDatasets, predictions_file: str) -> dict[str, float]:
    """Multi-view testing, and the per-video predictions file (main process)."""
    output = trainer.predict(data.test, metric_key_prefix="test")
    skipped = skipped_video_total(trainer, data.test)
    metrics = report(trainer, "test", {**output.metrics, "test_skipped_videos": skipped})
    if trainer.is_world_process_zero():
        labels, video_index = output.label_ids
        path = write_predictions(
            os.path.join(trainer.args.output_dir, predictions_file),
            aggregate_views(output.predictions, labels, video_index),
            data.test_video_paths(),
            trainer.model.config.id2label,
        )
        logger.info(f"Per-video predictions written to {path}")
    return metrics


def log_inherited_clip_settings(
    model_args: ModelArguments, clip_config: VideoClipConfig, saved_geometry: dict
) -> None:
    """Say which clip settings came from the start model's clip_config.json (those no flag or file changed)."""
    inherited = {name: value for name, value in saved_geometry.items() if getattr(clip_config, name) == value}
    if inherited:
        logger.info(
            f"Clip settings from {model_args.model_name_or_path}'s {CLIP_CONFIG_NAME}: "
            + ", ".join(f"{name}={value}" for name, value in inherited.items())
        )


def run_finetuning(
    model_args: ModelArguments,
    data_args: DataArguments,
    recipe_args: RecipeArguments,
    clip_config: FinetuningClipConfig,
    training_args: FinetuningTrainingArguments,
    saved_geometry: dict | None = None,
) -> dict[str, float]:
    """Fine-tune and / or evaluate as the arguments say (`saved_geometry`: the clip settings read from the start
    model's clip_config.json, logged where they were used); returns every split's metrics."""
    check_run_is_possible(training_args)  # start-up checks, before anything is trained or written
    check_streaming_run(data_args, recipe_args, training_args)
    repo_id = prepare_hub_upload(training_args)  # with --push_to_hub: a token and a writable repo, now
    set_seed(training_args.seed)
    resume_from = checkpoint_to_resume(training_args)
    log_inherited_clip_settings(model_args, clip_config, saved_geometry or {})
    checkpoint_config = read_checkpoint_config(model_args)
    label_names, label_source = resolve_label_names(data_args, checkpoint_label_names(checkpoint_config))
    logger.info(f"{len(label_names)} classes from {label_source}")
    data = build_video_datasets(data_args, clip_config, label_names, label_source, training_args)
    trainer = build_trainer(model_args, data_args, recipe_args, clip_config, training_args, data, checkpoint_config)
    warn_about_launch_mismatch(trainer.accelerator)  # e.g. 2 processes asked of `accelerate launch`, 1 running

    metrics: dict[str, float] = {}
    if training_args.do_train:
        metrics.update(train(trainer, data, resume_from))
    if training_args.do_eval:
        metrics.update(evaluate(trainer, data))
    if training_args.do_predict:
        metrics.update(predict(trainer, data, data_args.predictions_file))
    if not training_args.do_train:
        trainer.save_model()  # an evaluation-only run still leaves a complete, loadable folder
    settings = classification_card_settings(
        training_args, recipe_args, model_args, clip_config, data_args, clips_per_step(training_args, clip_config)
    )
    datasets = data_args.dataset_ids or hub_dataset_names(data_args)
    publish_classifier(trainer, model_args, data_args, clip_config, metrics, settings, datasets, repo_id)
    return metrics


__all__ = ["build_mixup", "clips_per_step", "configure_logging", "recipe_learning_rates", "run_finetuning"]
