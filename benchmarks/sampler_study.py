#!/usr/bin/env python
# Copyright 2026 The adamae-hf authors. Licensed under the Apache License, Version 2.0.
"""Does the sampler learn where the motion is? A small study on generated videos, with held-out videos.

Trains the demo's tiny AdaMAE (`run_pretrain.py --demo`, generated training videos, seed 0) under several settings
and measures each model with `adamae-evaluate-sampler` on held-out videos generated with another seed, then prints
one table: per setting, the adaptive mask's statistics with 95% bootstrap intervals over clips, and the visible
set's motion under the random baseline for comparison. An untrained model (step 0) is the control.

    python benchmarks/sampler_study.py                 # every setting below, ~10 minutes on 2 CPU cores
    python benchmarks/sampler_study.py --smoke         # two settings, two steps: checks the plumbing in seconds

The settings: the demo as shipped (raw-pixel targets, lambda 1e-2); the paper's targets and weight (normalised-pixel
targets, lambda 1e-4), for the demo's 300 steps and for 2000; and a sweep of lambda and learning rate. Everything else
is the demo's. `--only TEXT` runs the settings whose name contains TEXT.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parent.parent
# The table's columns: (summary group, measure) -> title. The "sampler" group holds the measures of p alone; a mask
# type's group the measures of its mask (at the instrument's default ratios: the model's own for adaptive, 0.9 random).
COLUMNS = {
    ("sampler", "spearman_p_motion"): "rho(p, motion)",
    ("sampler", "spearman_p_motion_compensated"): "rho(p, comp. motion)",
    ("sampler", "entropy"): "entropy / log N",
    ("adaptive", "spearman_p_error"): "rho(p, error)",
    ("adaptive", "visible_motion_ratio"): "adaptive: visible / mean motion",
    ("random", "visible_motion_ratio"): "random: visible / mean motion",
    ("adaptive", "reconstruction_error"): "adaptive: error",
}
HELD_OUT = {"num_videos": 24, "num_frames": 16, "height": 72, "width": 88, "seed": 1}


def settings(smoke: bool) -> list[tuple[str, list[str]]]:
    """(name, extra run_pretrain flags) per model; `None` is the untrained control."""
    paper = ["--norm_pix_loss", "true", "--sampling_loss_weight", "1e-4"]
    rows = [
        ("untrained (step 0)", None),
        ("demo: raw pixels, lambda 1e-2, lr 1e-3", []),
        ("demo: raw pixels, lambda 1e-4, lr 1e-3", ["--sampling_loss_weight", "1e-4"]),
        ("paper targets: norm pixels, lambda 1e-4, lr 1e-3", paper),
        ("norm pixels, lambda 1e-3, lr 1e-3", ["--norm_pix_loss", "true", "--sampling_loss_weight", "1e-3"]),
        ("norm pixels, lambda 1e-2, lr 1e-3", ["--norm_pix_loss", "true", "--sampling_loss_weight", "1e-2"]),
        ("norm pixels, lambda 1e-4, lr 3e-4", [*paper, "--learning_rate", "3e-4", "--min_lr", "3e-5"]),
        ("norm pixels, lambda 1e-4, lr 3e-3", [*paper, "--learning_rate", "3e-3", "--min_lr", "3e-4"]),
        ("paper targets, 2000 steps", [*paper, "--max_steps", "2000", "--warmup_steps", "100", "--save_steps", "500"]),
    ]
    if smoke:
        return [rows[0], (rows[1][0], ["--max_steps", "2"])]
    return rows


def run(command: list[str], log_path: Path) -> None:
    """Run one step of the study; its output goes to a log file, and a failure stops the study with that log's tail."""
    with open(log_path, "w") as log:
        completed = subprocess.run(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
    if completed.returncode != 0:
        tail = log_path.read_text().splitlines()[-15:]
        failed = f"{' '.join(command[:3])} ... failed (exit {completed.returncode}); see {log_path}:"
        raise SystemExit("\n".join([failed, *tail]))


def save_untrained_model(run_dir: Path, seed: int) -> None:
    """The demo's model as initialised, with its clip settings: the control every trained sampler is compared with."""
    from transformers import set_seed

    from adamae_hf.data import save_clip_config
    from adamae_hf.pretrain_arguments import parse_pretraining_args
    from adamae_hf.pretrain_model import build_model

    model_args, _, clip_config, _ = parse_pretraining_args(["--demo", "--output_dir", str(run_dir)])
    set_seed(seed)
    build_model(model_args, clip_config).save_pretrained(run_dir)  # the seed fixes its initial weights
    save_clip_config(run_dir, clip_config)


def train_and_evaluate(
    name: str, flags: list[str] | None, work_dir: Path, index: Path, seed: int, smoke: bool
) -> dict:
    slug = "".join(c if c.isalnum() else "-" for c in name).strip("-")[:60]
    run_dir = work_dir / slug
    if flags is None:
        save_untrained_model(run_dir, seed)
    else:
        train = [sys.executable, "run_pretrain.py", "--demo", "--output_dir", str(run_dir), "--seed", str(seed)]
        train += flags
        run(train, work_dir / f"{slug}.train.log")
    evaluation_dir = run_dir / "sampler_evaluation"
    evaluate = [
        sys.executable,
        "-m",
        "adamae_hf.sampler_evaluation",
        "--model",
        str(run_dir),
        "--index",
        str(index),
        "--output_dir",
        str(evaluation_dir),
        "--seed",
        "0",
        "--num_bootstrap",
        "200" if smoke else "2000",
    ]
    if smoke:
        evaluate += ["--max_videos", "4"]
    run(evaluate, work_dir / f"{slug}.evaluate.log")
    return json.loads((evaluation_dir / "sampler_evaluation.json").read_text())


def cell(summary: dict, group: str, key: str) -> str:
    statistic = summary.get(group, {}).get(key)
    if not statistic or statistic.get("mean") is None:
        return "n/a"
    return f"{statistic['mean']:.2f} [{statistic['ci_low']:.2f}, {statistic['ci_high']:.2f}]"


def table(results: dict[str, dict]) -> str:
    header = ["setting", *COLUMNS.values()]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in results.items():
        cells = [cell(result["summary"], group, key) for group, key in COLUMNS]
        lines.append("| " + " | ".join([name, *cells]) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output_dir", default="outputs/sampler_study")
    parser.add_argument("--seed", type=int, default=0, help="Training seed (the held-out videos use seed 1).")
    parser.add_argument("--smoke", action="store_true", help="Two settings, two steps each, four held-out videos.")
    parser.add_argument("--only", help="Run only the settings whose name contains this text.")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    from adamae_hf.data import generate_sample_videos

    work_dir = Path(args.output_dir).resolve()
    work_dir.mkdir(parents=True, exist_ok=True)
    generate_sample_videos(work_dir / "held_out", index_file="index.csv", **HELD_OUT)
    index = work_dir / "held_out" / "index.csv"
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    results = {}
    for name, flags in settings(args.smoke):
        if args.only and args.only not in name:
            continue
        print(f"training and evaluating: {name}", flush=True)
        results[name] = train_and_evaluate(name, flags, work_dir, index, args.seed, args.smoke)
    (work_dir / "study.json").write_text(json.dumps(results, indent=2))
    import torch
    import transformers

    print(
        f"\nHeld-out: {HELD_OUT['num_videos']} generated videos (seed {HELD_OUT['seed']}); "
        f"torch {torch.__version__}, "
        f"transformers {transformers.__version__}; mean [95% bootstrap interval] over clips:\n"
    )
    print(table(results))


if __name__ == "__main__":
    main()
