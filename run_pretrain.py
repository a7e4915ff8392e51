#!/usr/bin/env python
# Copyright 2026 The adamae-hf authors. Licensed under the Apache License, Version 2.0.
"""Pretrain AdaMAE (adaptive token sampling for video masked autoencoders) with Accelerate.

    python run_pretrain.py                                    # the demo: tiny model, generated videos, CPU, ~1 minute
    accelerate launch run_pretrain.py --config configs/pretrain_k400_vit_base.yaml --train_index train.csv
    accelerate launch run_pretrain.py --config ... --resume_from_checkpoint latest
    python run_pretrain.py --help
    python run_pretrain.py ... --debug                        # a user mistake with its traceback (one line without)

Arguments come from flags, from a YAML or JSON file (`--config`, flag names as keys; flags override it), or, with no
arguments at all, from the demo's presets. The work is done by `adamae_hf.pretrain_run.run_pretraining`.
"""

import logging
import os
import sys

import adamae_hf  # noqa: F401  (registers the AdaMAE classes with transformers' Auto classes)
from adamae_hf.errors import UserError, run_cli
from adamae_hf.pretrain_arguments import parse_pretraining_args
from adamae_hf.pretrain_run import run_pretraining
from adamae_hf.training import NonFiniteLossError, quiet_library_output


logger = logging.getLogger("run_pretrain")


def main(argv=None):
    # Only the first process logs at INFO; the others report warnings and errors.
    is_first_process = int(os.environ.get("RANK", "0")) == 0
    logging.basicConfig(
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        level=logging.INFO if is_first_process else logging.WARNING,
    )
    quiet_library_output()
    model_args, data_args, clip_config, training_args = parse_pretraining_args(argv)
    try:
        result = run_pretraining(model_args, data_args, clip_config, training_args)
    except NonFiniteLossError as error:
        raise UserError(str(error)) from error
    logger.info(f"Done: step {result.step}, final losses {_losses(result.results)}; model in {result.output_dir}")


def _losses(results):
    names = ("loss", "reconstruction_loss", "sampling_loss")
    return ", ".join(f"{name} {results[name]:.4f}" for name in names if name in results)


if __name__ == "__main__":
    sys.exit(run_cli(main))
