#!/usr/bin/env python
# Copyright 2026 The adamae-hf authors. Licensed under the Apache License, Version 2.0.
"""Fine-tune AdaMAE for video classification with `transformers.Trainer`, test it with several views per video, and
publish a folder that `pipeline("video-classification")` loads.

    python run_finetune.py --model_name_or_path adamae-ssv2-pretrained --train_index train.csv \\
        --validation_index val.csv --output_dir adamae-ssv2-finetuned --do_train --do_eval --do_predict
    python run_finetune.py configs/finetune_k400.yaml   # the same arguments from a YAML or JSON file
    python run_finetune.py ... --train_index k400-shards/ --streaming --max_steps 50000 --warmup_steps 2500
    python run_finetune.py ... --train_index someone/videos --video_column video --label_column action
    python run_finetune.py ... --debug                   # a user mistake with its traceback (one line without)

A split's source (--train_index, --validation_index, --test_index) is a .csv/.jsonl index, a folder of class folders,
tar shards, a save_to_disk folder or a `datasets` name or path, the same flags as run_pretrain.py's; --streaming
streams it (training then needs --max_steps and --warmup_steps). Arguments: the dataclasses of
`adamae_hf/finetune_arguments.py` (`--help` lists them all). The work is done by
`adamae_hf.finetune_run.run_finetuning`.
"""

import sys

import adamae_hf  # noqa: F401  (registers AdaMAE with the Auto classes)
from adamae_hf.errors import run_cli
from adamae_hf.finetune_arguments import parse_finetuning_args
from adamae_hf.finetune_run import configure_logging, run_finetuning


def main(argv: list[str] | None = None) -> dict[str, float]:
    arguments, saved_geometry = parse_finetuning_args(argv, description=__doc__.split("\n\n")[0])
    model_args, data_args, recipe_args, clip_config, training_args = arguments
    configure_logging(training_args)
    return run_finetuning(model_args, data_args, recipe_args, clip_config, training_args, saved_geometry)


if __name__ == "__main__":
    sys.exit(run_cli(main))
