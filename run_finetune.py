#!/usr/bin/env python
# Copyright 2026 The adamae-hf authors. Licensed under the Apache License, Version 2.0.
"""Fine-tune AdaMAE for video classification with `transformers.Trainer`, test it with several views per video, and
publish a folder that `pipeline("video-classification")` loads.

    python run_finetune.py --model_name_or_path adamae-ssv2-pretrained --train_index train.csv \\
        --validation_index val.csv --output_dir adamae-ssv2-finetuned --do_train --do_eval --do_predict
    python run_finetune.py configs/finetune_k400.yaml   # the same arguments from a YAML or JSON file
    python run_finetune.py ... --debug                   # a user mistake with its traceback (one line without)

Arguments: `ModelArguments`, `DataArguments`, `RecipeArguments`, `FinetuningClipConfig` and
`FinetuningTrainingArguments` in `adamae_hf/finetuning.py` (`--help` lists them all).
"""

import logging
import os
import sys

import transformers
from transformers import set_seed
from transformers.trainer_utils import get_last_checkpoint

import adamae_hf  # noqa: F401  (registers AdaMAE with the Auto classes)
from adamae_hf.data import CLIP_CONFIG_NAME, collate_clips
from adamae_hf.errors import ArgumentParser, run_cli
from adamae_hf.finetuning import (
    DataArguments,
    FinetuningClipConfig,
    FinetuningTrainingArguments,
    ModelArguments,
    RecipeArguments,
    VideoClassificationTrainer,
    aggregate_views,
    build_compute_metrics,
    build_mixup,
    build_model,
    build_video_datasets,
    check_run_is_possible,
    checkpoint_label_names,
    evaluation_clip_config,
    model_source_from,
    prepare_hub_upload,
    publish,
    read_checkpoint_config,
    recipe_learning_rates,
    resolve_label_names,
    saved_clip_geometry,
    skipped_video_total,
    write_predictions,
)
from adamae_hf.training import parse_args_with_config_file, quiet_library_output, warn_about_launch_mismatch


logger = logging.getLogger(__name__)

ARGUMENT_CLASSES = (ModelArguments, DataArguments, RecipeArguments, FinetuningClipConfig, FinetuningTrainingArguments)


def parse_arguments(argv: list[str] | None = None):
    """The five argument dataclasses from flags and/or a YAML or JSON file (`--config FILE`, flag names as keys; flags
    override it). A lone file argument (`run_finetune.py configs/finetune_k400.yaml`) is read as `--config FILE`.

    A model folder written by this project carries its clip geometry (`clip_config.json`: frames, sampling rate and
    mode, crop and resize sizes, normalisation); those values replace the defaults, below the file and the flags, so
    evaluating a fine-tuned folder samples clips as its training did."""
    return parse_arguments_and_clip_presets(argv)[0]


def parse_arguments_and_clip_presets(argv: list[str] | None = None) -> tuple[tuple, dict]:
    """`parse_arguments`, and the clip geometry read from the model's `clip_config.json` (empty without one)."""
    parser = ArgumentParser(ARGUMENT_CLASSES, prog="run_finetune.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", help="YAML or JSON file of arguments (flag names as keys); flags override it.")
    argv = sys.argv[1:] if argv is None else list(argv)
    if len(argv) == 1 and argv[0].endswith((".json", ".yaml", ".yml")):
        argv = ["--config", argv[0]]
    source = model_source_from(argv)
    presets = saved_clip_geometry(**source)
    try:
        arguments = parse_args_with_config_file(parser, argv, presets)[: len(ARGUMENT_CLASSES)]  # without `config`
        return arguments, presets
    except ValueError as error:
        if not presets:
            raise
        raise ValueError(
            f"{error} (the clip settings that no flag or --config file gave came from "
            f"{source['model_name_or_path']}'s {CLIP_CONFIG_NAME}: "
            + ", ".join(f"{name}={value}" for name, value in presets.items()) + ")"
        ) from error


def configure_logging(training_args: FinetuningTrainingArguments) -> None:
    """Our INFO lines on the main process by default; transformers' at WARNING (its INFO level dumps every config and
    file it reads or writes) unless `--log_level` says otherwise, which then applies to both."""
    logging.basicConfig(
        format="%(asctime)s - %(levelname)s - %(name)s - %(message)s",
        datefmt="%m/%d/%Y %H:%M:%S",
        handlers=[logging.StreamHandler(sys.stdout)],
    )
    library_level = training_args.get_process_log_level()  # "passive": transformers' own, WARNING by default
    own_level = logging.INFO if training_args.log_level == "passive" and training_args.should_log else library_level
    logger.setLevel(own_level)
    logging.getLogger("adamae_hf").setLevel(own_level)
    transformers.utils.logging.set_verbosity(library_level)
    quiet_library_output()


def main(argv: list[str] | None = None) -> dict[str, float]:
    (model_args, data_args, recipe_args, clip_config, training_args), saved_geometry = (
        parse_arguments_and_clip_presets(argv)
    )
    configure_logging(training_args)
    # Start-up checks, before anything is trained or written.
    check_run_is_possible(training_args)
    repo_id = prepare_hub_upload(training_args)  # with --push_to_hub: a token and a writable repo, now
    set_seed(training_args.seed)

    # Resume from the output folder's last checkpoint unless told otherwise.
    last_checkpoint = None
    output_dir = training_args.output_dir
    if training_args.do_train and training_args.resume_from_checkpoint is None and os.path.isdir(output_dir):
        last_checkpoint = get_last_checkpoint(output_dir)
        if last_checkpoint is not None:
            logger.info(f"Resuming from {last_checkpoint}; pass --resume_from_checkpoint to choose another.")

    # Classes, data and model.
    inherited = {name: value for name, value in saved_geometry.items() if getattr(clip_config, name) == value}
    if inherited:
        logger.info(f"Clip settings from {model_args.model_name_or_path}'s {CLIP_CONFIG_NAME}: "
                    + ", ".join(f"{name}={value}" for name, value in inherited.items()))  # fmt: skip
    checkpoint_config = read_checkpoint_config(model_args)
    label_names, label_source = resolve_label_names(data_args, checkpoint_label_names(checkpoint_config))
    logger.info(f"{len(label_names)} classes from {label_source}")
    data = build_video_datasets(
        data_args, clip_config, label_names, label_source,
        training_args.do_train, training_args.do_eval, training_args.do_predict,
    )  # fmt: skip
    model = build_model(model_args, label_names, clip_config, checkpoint_config)
    warmup_lr, min_lr = recipe_learning_rates(training_args, recipe_args, clip_config)

    trainer = VideoClassificationTrainer(
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
        mixup=build_mixup(recipe_args, len(label_names), training_args.label_smoothing_factor),
        warmup_epochs=recipe_args.warmup_epochs,
        warmup_lr=warmup_lr,
        min_lr=min_lr,
    )
    warn_about_launch_mismatch(trainer.accelerator)  # e.g. 2 processes asked of `accelerate launch`, 1 running

    metrics: dict[str, float] = {}
    if training_args.do_train:
        train_result = trainer.train(resume_from_checkpoint=training_args.resume_from_checkpoint or last_checkpoint)
        trainer.save_model()
        train_metrics = {**train_result.metrics, "train_skipped_videos": skipped_video_total(trainer, data.train)}
        trainer.log_metrics("train", train_metrics)
        trainer.save_metrics("train", train_metrics)
        trainer.save_state()
        metrics.update(train_metrics)

    if training_args.do_eval:
        eval_metrics = {**trainer.evaluate(), "eval_skipped_videos": skipped_video_total(trainer, data.validation)}
        trainer.log_metrics("eval", eval_metrics)
        trainer.save_metrics("eval", eval_metrics)
        metrics.update(eval_metrics)

    if training_args.do_predict:
        output = trainer.predict(data.test, metric_key_prefix="test")
        test_metrics = {**output.metrics, "test_skipped_videos": skipped_video_total(trainer, data.test)}
        trainer.log_metrics("test", test_metrics)
        trainer.save_metrics("test", test_metrics)
        metrics.update(test_metrics)
        if trainer.is_world_process_zero():
            labels, video_index = output.label_ids
            path = write_predictions(
                os.path.join(training_args.output_dir, data_args.predictions_file),
                aggregate_views(output.predictions, labels, video_index),
                data.test.paths,
                model.config.id2label,
            )
            logger.info(f"Per-video predictions written to {path}")

    if not training_args.do_train:
        trainer.save_model()  # an evaluation-only run still leaves a complete, loadable folder
    publish(trainer, model_args, data_args, recipe_args, clip_config, metrics, repo_id)
    return metrics


if __name__ == "__main__":
    sys.exit(run_cli(main))
