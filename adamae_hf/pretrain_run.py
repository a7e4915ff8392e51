"""AdaMAE pretraining with Accelerate, behind `run_pretrain.py`: `run_pretraining(model_args, data_args, clip_config,
training_args)` runs a whole job.

1. an `Accelerator` (DDP on one or many machines, FSDP or DeepSpeed from an accelerate config file, bf16/fp16,
   gradient accumulation), the output folder, and the checkpoint to resume from;
2. the training clips (`adamae_hf.pretrain_data`), every item's augmentation seeded by (seed, epoch, video) and the
   masking noise of each step by (seed, step): the batches and masks of a run do not depend on the number of
   processes, workers or accumulation steps, and a resumed run continues exactly;
3. `AdaMaeForPreTraining` (`adamae_hf.pretrain_model`), AdamW with the recipe's weight-decay exemptions, warmup +
   per-step cosine schedule;
4. the loop (`adamae_hf.pretrain_loop`): non-finite losses skip the update, scalars and sampler diagnostics every
   `logging_steps`, crash-safe checkpoints every `save_steps`;
5. `finish_pretraining`: `save_pretrained` (safetensors, config, Hub code files), the processor config, the mask
   figure, the model card, and the upload with `--push_to_hub`.

With `--demo` (what `python run_pretrain.py` runs with no arguments) the defaults become `DEMO_ARGUMENTS`
(`adamae_hf.pretrain_arguments`): a tiny AdaMAE on sample videos generated into the output folder, about a minute on
a laptop CPU.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from accelerate.utils import set_seed
from torch.utils.data import Dataset

from configuration_adamae import AdaMaeConfig
from modeling_adamae import AdaMaeForPreTraining

from .checkpoint import (
    LATEST_FILE,
    check_random_states,
    list_checkpoints,
    read_training_state,
    remove_stale_folders,
    resolve_checkpoint,
)
from .data import VideoClipConfig, save_video_processor
from .hub import PRETRAINING_UPLOAD_IGNORE, build_model_card, check_hub_access, push_folder_to_hub, save_model_card
from .mask_figure import write_mask_figure
from .optim import build_adamw, warmup_cosine_schedule
from .pretrain_arguments import DataArguments, ModelArguments, PretrainingArguments, save_run_arguments
from .pretrain_data import TrainingVideos, training_videos
from .pretrain_loop import PretrainingLoop
from .pretrain_model import build_model
from .training import (
    NonFiniteLossGuard,
    ScalarLog,
    TrainingSchedule,
    build_accelerator,
    compute_schedule,
    on_every_process,
    warn_about_launch_mismatch,
)


logger = logging.getLogger(__name__)

SCALAR_LOG = Path("logs") / "scalars.jsonl"
# Devices with torch's fused AdamW kernel (CUDA, and the CPU since torch 2.4).
FUSED_ADAMW_DEVICES = ("cuda", "cpu")


@dataclass
class PretrainingResult:
    """What `run_pretraining` returns."""

    output_dir: Path
    model: AdaMaeForPreTraining  # unwrapped; on every process
    step: int
    results: dict[str, float]  # the final logged scalars
    nonfinite_steps: int
    last_checkpoint: str | None


def run_pretraining(
    model_args: ModelArguments,
    data_args: DataArguments,
    clip_config: VideoClipConfig,
    training_args: PretrainingArguments,
    train_dataset: Dataset | None = None,
    hub_api=None,
) -> PretrainingResult:
    """Pretrain AdaMAE as the arguments say (see the module docstring); every process calls it.

    Args:
        train_dataset: use these items (dicts with `pixel_values` `(V, T, C, H, W)`, normalised float or uint8)
            instead of the videos the data arguments name.
        hub_api: a `huggingface_hub.HfApi` for the upload (default: a new one with `--hub_token`).
    """
    accelerator = start_accelerator(training_args)
    repo_id = check_hub_before_training(accelerator, training_args, hub_api)
    set_seed(training_args.seed)
    checkpoint = prepare_output_dir(accelerator, training_args)
    videos = training_videos(data_args, clip_config, training_args, accelerator, train_dataset)
    model = build_model(model_args, clip_config)
    if training_args.gradient_checkpointing:
        # transformers renamed it (the old name warns from 5.2x on); both exist for the versions we support
        getattr(model, "activation_checkpointing_enable", model.gradient_checkpointing_enable)()
    schedule = training_schedule(videos, accelerator.num_processes, training_args)
    optimizer, scheduler = build_optimizer(model, schedule, training_args, accelerator.device.type)
    model, optimizer, train_loader, scheduler = prepare(
        accelerator, model, optimizer, videos, schedule, scheduler, training_args
    )
    batches = videos.batches(accelerator, train_loader, schedule, training_args)
    guard = NonFiniteLossGuard(training_args.max_nonfinite_steps)
    start_step = 0
    if checkpoint:
        start_step = resume_from(accelerator, checkpoint, schedule, training_args, guard, batches)
    settings = run_settings(accelerator.unwrap_model(model).config, clip_config, training_args, schedule, accelerator)
    arguments = (model_args, data_args, clip_config, training_args)
    scalar_log = start_logging(
        accelerator, arguments, settings, schedule, videos, start_step, resumed=bool(checkpoint)
    )
    loop = PretrainingLoop(
        accelerator, model, optimizer, scheduler, batches, schedule, training_args, clip_config, guard, scalar_log
    )
    try:
        results = loop.run(start_step, figure_video=videos.figure_video, skipped_videos=videos.skipped)
        finish = dict(datasets=data_args.dataset_ids, hub_api=hub_api, figure_video=videos.figure_video)
        finish_pretraining(
            accelerator, model, clip_config, training_args, settings, results, repo_id=repo_id, **finish
        )
    finally:
        accelerator.end_training()
    return PretrainingResult(
        output_dir=Path(training_args.output_dir),
        model=accelerator.unwrap_model(model),
        step=int(results["step"]),
        results=results,
        nonfinite_steps=guard.total,
        last_checkpoint=guard.last_checkpoint,
    )


# ---------------------------------------------------------------------------------------------------------------------
# Start-up


def start_accelerator(training_args: PretrainingArguments):
    accelerator = build_accelerator(
        training_args.output_dir,
        mixed_precision=training_args.mixed_precision,
        gradient_accumulation_steps=training_args.gradient_accumulation_steps,
        report_to=training_args.report_to,
        use_cpu=training_args.use_cpu,
    )
    logger.info(
        f"Processes: {accelerator.num_processes} ({accelerator.distributed_type}), device {accelerator.device}, "
        f"mixed precision {accelerator.mixed_precision}"
    )
    warn_about_launch_mismatch(accelerator)
    return accelerator


def check_hub_before_training(accelerator, training_args: PretrainingArguments, hub_api) -> str | None:
    """With `--push_to_hub`, the full "user/name" id (what the card's usage code loads), checked before any training:
    no token, a refused one, a read-only repo or an endpoint that does not answer stops the run now (every process)
    rather than after it."""
    if not training_args.push_to_hub:
        return None

    def check():
        if not accelerator.is_main_process:
            return None
        return check_hub_access(
            training_args.hub_model_id,
            token=training_args.hub_token,
            private=bool(training_args.hub_private_repo),
            api=hub_api,
        )

    return on_every_process(accelerator, check)


def prepare_output_dir(accelerator, training_args: PretrainingArguments) -> Path | None:
    """Create the output folder and find the checkpoint to resume from (None: start fresh).

    A folder that already has checkpoints is only reused with `--resume_from_checkpoint` (which wins) or
    `--overwrite_output_dir` (its checkpoints, `latest` and scalar log are deleted first).
    """
    output_dir = Path(training_args.output_dir)
    checkpoint = None
    if training_args.resume_from_checkpoint:
        checkpoint = resolve_checkpoint(training_args.resume_from_checkpoint, output_dir)
        if checkpoint is None:
            logger.info(f"No checkpoint in {output_dir} yet; starting from scratch.")
    existing = list_checkpoints(output_dir)
    if checkpoint is None and existing and not training_args.overwrite_output_dir:
        raise ValueError(
            f"Output folder {output_dir} already has checkpoints ({existing[-1].name}). Continue with "
            "--resume_from_checkpoint latest, or start over with --overwrite_output_dir (deletes them)."
        )
    if accelerator.is_main_process:
        output_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_folders(output_dir)
        if checkpoint is None and existing:
            for path in existing:
                shutil.rmtree(path)
            (output_dir / LATEST_FILE).unlink(missing_ok=True)
    accelerator.wait_for_everyone()
    return checkpoint


def training_schedule(videos: TrainingVideos, num_processes: int, args: PretrainingArguments) -> TrainingSchedule:
    return compute_schedule(
        num_videos=videos.num_videos,
        clips_per_device_batch=args.per_device_train_batch_size,
        clips_per_video=videos.clips_per_video,
        num_processes=num_processes,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        num_train_epochs=args.num_train_epochs,
        max_steps=args.max_steps,
        warmup_epochs=args.warmup_epochs,
        warmup_steps=args.warmup_steps,
        base_learning_rate=args.base_learning_rate,
        learning_rate=args.learning_rate,
        warmup_lr=args.warmup_lr,
        min_lr=args.min_lr,
    )


def prepare(
    accelerator,
    model,
    optimizer,
    videos: TrainingVideos,
    schedule: TrainingSchedule,
    scheduler,
    args: PretrainingArguments,
) -> tuple:
    """`accelerator.prepare` (the loader too, unless it reads a stream: that one already reads this process's
    share, which accelerate's dispatch would replace with the main process's), and `--torch_compile`."""
    loader = videos.loader(schedule, args)
    if videos.streaming:
        model, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    else:
        model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)
    if args.torch_compile:
        # in place: parameter names, hence checkpoints, stay those of the eager model
        model.compile(**({"mode": args.torch_compile_mode} if args.torch_compile_mode else {}))
    return model, optimizer, loader, scheduler


def build_optimizer(model, schedule: TrainingSchedule, args: PretrainingArguments, device_type: str):
    """AdamW (the recipe's weight-decay exemptions) and its warmup + per-step cosine schedule."""
    optimizer = build_adamw(
        model,
        lr=schedule.learning_rate,
        weight_decay=args.weight_decay,
        betas=(args.adam_beta1, args.adam_beta2),
        eps=args.adam_epsilon,
        # one kernel for all parameters, and it can skip a non-finite step on the device (see pretrain_loop)
        fused=device_type in FUSED_ADAMW_DEVICES,
    )
    scheduler = warmup_cosine_schedule(
        optimizer,
        warmup_steps=schedule.warmup_steps,
        total_steps=schedule.total_steps,
        base_lr=schedule.learning_rate,
        warmup_lr=schedule.warmup_lr,
        min_lr=schedule.min_lr,
    )
    return optimizer, scheduler


def resume_from(accelerator, checkpoint: Path, schedule: TrainingSchedule, training_args, guard, batches) -> int:
    """Load a checkpoint (model, optimizer, scheduler, grad scaler, RNG states, a stream's position) and return its
    step.

    The data position follows from the step (a stream's: from the checkpoint), provided the global batch and the
    dataset are those the checkpoint was written with; a different geometry is an error, since it would silently
    change which videos come next.
    """
    state = read_training_state(checkpoint)
    for name in ("global_batch_size", "steps_per_epoch"):
        if state.get(name) != getattr(schedule, name):
            raise ValueError(
                f"{checkpoint} was written with {name}={state.get(name)}, this run has {getattr(schedule, name)}. "
                "Resume with the same dataset and global batch (per-device batch x processes x accumulation steps)."
            )
    if state.get("seed") != training_args.seed:
        logger.warning(
            f"{checkpoint} was written with seed {state.get('seed')}, this run uses {training_args.seed}: the data "
            "order and masks after the resume point differ from the interrupted run's."
        )
    # load_state would skip a broken file silently; a broken one on any process stops them all
    on_every_process(accelerator, lambda: check_random_states(checkpoint, accelerator.process_index))
    batches.load_checkpoint_state(state, checkpoint)
    accelerator.load_state(str(checkpoint))
    guard.load_state_dict(state)
    guard.last_checkpoint = str(checkpoint)
    logger.info(f"Resumed from {checkpoint} at step {state['step']}.")
    return int(state["step"])


def run_settings(
    model_config: AdaMaeConfig,
    clip_config: VideoClipConfig,
    training_args: PretrainingArguments,
    schedule: TrainingSchedule,
    accelerator,
) -> dict[str, Any]:
    """The settings that define a run: for the trackers and the model card."""
    return {
        "mask_type": model_config.mask_type,
        "mask_ratio": model_config.mask_ratio,
        "frames": f"{clip_config.num_frames} x {clip_config.crop_size}x{clip_config.crop_size}",
        "sampling_rate": clip_config.sampling_rate,
        "train_crop": clip_config.train_crop,
        "global_batch_size": schedule.global_batch_size,
        "processes": accelerator.num_processes,
        "gradient_accumulation_steps": training_args.gradient_accumulation_steps,
        "epochs": round(schedule.num_epochs, 3) if schedule.num_epochs is not None else "a stream",
        "steps": schedule.total_steps,
        "warmup_steps": schedule.warmup_steps,
        "learning_rate": schedule.learning_rate,
        "warmup_lr": schedule.warmup_lr,
        "min_lr": schedule.min_lr,
        "weight_decay": training_args.weight_decay,
        "adam_betas": f"({training_args.adam_beta1}, {training_args.adam_beta2})",
        "max_grad_norm": training_args.max_grad_norm if training_args.max_grad_norm else "none",
        "mixed_precision": accelerator.mixed_precision,
        "seed": training_args.seed,
    }


def start_logging(
    accelerator,
    arguments: tuple,
    settings: dict[str, Any],
    schedule: TrainingSchedule,
    videos: TrainingVideos,
    start_step: int,
    resumed: bool,
) -> ScalarLog:
    """The record of the run's arguments, the trackers, the scalar log (cut back to `start_step` on a resume) and a
    line saying what the run is."""
    output_dir = Path(arguments[-1].output_dir)
    if accelerator.is_main_process:
        save_run_arguments(output_dir, *arguments)
    accelerator.init_trackers("adamae_pretraining", config=settings)
    per_epoch = f"{schedule.steps_per_epoch} steps per epoch, " if schedule.steps_per_epoch else ""
    logger.info(
        f"{videos.description}, {per_epoch}{schedule.total_steps} steps (from step {start_step}), global batch "
        f"{schedule.global_batch_size} clips, peak lr {schedule.learning_rate:.3g}"
    )
    return ScalarLog(accelerator, output_dir / SCALAR_LOG, resume_step=start_step if resumed else None)


# ---------------------------------------------------------------------------------------------------------------------
# The end of a run


def finish_pretraining(
    accelerator,
    model,
    clip_config: VideoClipConfig,
    training_args: PretrainingArguments,
    settings: dict[str, Any],
    results: dict[str, float],
    datasets: list[str] | None = None,
    hub_api=None,
    figure_video: str | None = None,
    repo_id: str | None = None,
) -> Path:
    """Write the final model folder into `output_dir`: `save_pretrained` (safetensors, config with auto_map, the Hub
    custom-code files), the processor config (`preprocessor_config.json`), the five-panel mask figure of
    `figure_video` (`masks.gif`, `masks.png`), the model card (`README.md`: settings, final losses, the figure); with
    `--push_to_hub`, then upload it to `repo_id` (the full id `check_hub_access` returned at start-up; checked here
    when None). Every file is written before the upload starts, so a failed upload loses nothing: its `UserError`
    names the one command that retries it. Every process calls it (FSDP/DeepSpeed gather the weights)."""
    state_dict = accelerator.get_state_dict(model)  # collective under FSDP / DeepSpeed ZeRO-3
    unwrapped = accelerator.unwrap_model(model)
    output_dir = Path(training_args.output_dir)

    def write_and_upload():  # the main process's work; a failed upload then stops every process
        figure = save_model_files(unwrapped, state_dict, clip_config, training_args, figure_video)
        target = None
        if training_args.push_to_hub:
            target = repo_id or check_hub_access(
                training_args.hub_model_id,
                token=training_args.hub_token,
                private=bool(training_args.hub_private_repo),
                api=hub_api,
            )
        card = build_model_card(
            "pretraining",
            model_id=target or str(output_dir),
            config=unwrapped.config,
            settings=settings,
            results={name: value for name, value in results.items() if isinstance(value, (int, float))},
            datasets=datasets,
            visualization=figure.name if figure else None,
        )
        save_model_card(card, output_dir)
        logger.info(f"Saved the pretrained model to {output_dir}")
        if target is not None:
            url = push_folder_to_hub(
                output_dir,
                target,
                commit_message="AdaMAE pretraining (run_pretrain.py)",
                token=training_args.hub_token,
                api=hub_api,
                ignore_patterns=PRETRAINING_UPLOAD_IGNORE,
            )
            logger.info(f"Uploaded {output_dir} to {url}")

    on_every_process(accelerator, write_and_upload if accelerator.is_main_process else lambda: None)
    accelerator.wait_for_everyone()
    return output_dir


def save_model_files(
    model, state_dict, clip_config: VideoClipConfig, training_args: PretrainingArguments, figure_video: str | None
) -> Path | None:
    """Weights and config, the processor config and the mask figure (its GIF's path, or None) in `output_dir`."""
    output_dir = Path(training_args.output_dir)
    model.save_pretrained(output_dir, state_dict=state_dict, safe_serialization=True)
    save_video_processor(output_dir, clip_config)
    if not (training_args.visualize and figure_video):
        return None
    # drawn from the folder just saved, which holds the whole model even when training sharded it
    return write_mask_figure(str(output_dir), figure_video, output_dir / "masks.gif", clip_config)


__all__ = ["PretrainingResult", "finish_pretraining", "prepare_output_dir", "run_pretraining"]
