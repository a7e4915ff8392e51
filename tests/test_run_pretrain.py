"""run_pretrain.py end to end: the embedded demo, user mistakes as one line, and two CPU processes (gloo) against one
process."""

import os
import subprocess
import sys

import pytest
import torch
from pretrain_helpers import REPO_ROOT, TINY_OVERRIDES, state_dict_of, tiny_argv
from safetensors.torch import load_file
from two_processes import two_process_command

import run_pretrain
from adamae_hf.errors import run_cli
from adamae_hf.pretrain_arguments import parse_pretraining_args, pretraining_argument_parser
from adamae_hf.pretrain_run import run_pretraining
from adamae_hf.training import read_scalar_log, reset_accelerate_state
from modeling_adamae import AdaMaeForPreTraining


def subprocess_env():
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}


def test_help_lists_the_flags_that_matter():
    help_text = pretraining_argument_parser().format_help()
    for flag in (
        "--config",
        "--demo",
        "--mask_type",
        "--mask_ratio",
        "--sampling_rate",
        "--resume_from_checkpoint",
        "--torch_compile",
        "--mixed_precision",
        "--logging_steps",
        "--save_steps",
        "--max_nonfinite_steps",
        "--debug",
        "--train_index",
        "--train_index_file",  # the old names, aliases of --train_index
        "--train_folder",
        "--streaming",
        "--dataset_config_name",
        "--video_column",
    ):
        assert flag in help_text, flag
    assert "python run_pretrain.py" in help_text and "the paper's recipe" in help_text


def test_the_demo_finishes_and_writes_a_loadable_model(tmp_path):
    output_dir = tmp_path / "demo"
    result = subprocess.run(
        [sys.executable, "run_pretrain.py", "--demo", "--max_steps", "3", "--output_dir", str(output_dir)],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # A log file gets one plain line per log step, no progress bars (ours, or transformers' for loading and saving).
    assert "step 1/3: loss " in result.stderr and "step 3/3: loss " in result.stderr and "clips/s" in result.stderr
    assert "\r" not in result.stderr and "%|" not in result.stderr, result.stderr[-3000:]
    model = AdaMaeForPreTraining.from_pretrained(output_dir)
    assert (model.config.num_frames, model.config.frame_size, model.config.mask_type) == (8, (64, 64), "adaptive")
    for name in (
        "config.json",
        "model.safetensors",
        "modeling_adamae.py",
        "configuration_adamae.py",
        "preprocessor_config.json",
        "README.md",
        "videos/index.csv",
        "masks.gif",
        "masks.png",
        "checkpoint-3/training_state.json",
    ):
        assert (output_dir / name).exists(), name
    assert "![AdaMAE masks](masks.gif)" in (output_dir / "README.md").read_text()
    records = read_scalar_log(output_dir / "logs" / "scalars.jsonl")
    assert [record["step"] for record in records] == [1, 3]
    assert {
        "loss",
        "reconstruction_loss",
        "sampling_loss",
        "lr",
        "clips_per_second",
        "skipped_videos",
        "sampler/entropy",
        "sampler/top5_mass",
        "sampler/spearman_error",
        "sampler/spearman_motion",
        "mask/visible_motion_ratio",
    } <= set(records[-1])


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path, sample_index_file):
    # Sampler dropout off: dropout masks are the one thing drawn per process rather than per clip.
    overrides = TINY_OVERRIDES + ",sampler_dropout_prob=0.0"
    ddp_argv = tiny_argv(
        tmp_path / "ddp", sample_index_file, per_device_train_batch_size=2, config_overrides=overrides, max_steps=3
    )
    command = (
        two_process_command(
            str(REPO_ROOT / "tests" / "pretrain_helpers.py"),
            "ddp-train",
            str(tmp_path / "params"),
        )
        + ddp_argv
    )
    result = subprocess.run(command, cwd=REPO_ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]

    rank0, rank1 = (load_file(str(tmp_path / "params" / f"rank{rank}.safetensors")) for rank in (0, 1))
    assert all(torch.equal(rank0[name], rank1[name]) for name in rank0)  # DDP kept the replicas identical

    reset_accelerate_state()
    single = run_pretraining(
        *parse_pretraining_args(
            tiny_argv(
                tmp_path / "single",
                sample_index_file,
                per_device_train_batch_size=4,
                config_overrides=overrides,
                max_steps=3,
            )
        )
    )
    reset_accelerate_state()
    single_weights = state_dict_of(single.model)
    for name, tensor in rank0.items():
        torch.testing.assert_close(tensor, single_weights[name], rtol=1e-4, atol=1e-5, msg=name)
    ddp_log = read_scalar_log(tmp_path / "ddp" / "logs" / "scalars.jsonl")
    single_log = read_scalar_log(tmp_path / "single" / "logs" / "scalars.jsonl")
    assert [record["step"] for record in ddp_log] == [record["step"] for record in single_log] == [1, 2, 3]
    for ddp_record, single_record in zip(ddp_log, single_log):
        for key in ("loss", "reconstruction_loss", "sampling_loss"):
            assert ddp_record[key] == pytest.approx(single_record[key], rel=1e-5), (ddp_record["step"], key)


@pytest.fixture
def broken_index(tmp_path):
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "broken.csv").write_text("path\nbroken.mp4\n")
    return tmp_path / "broken.csv"


@pytest.mark.parametrize(
    "case, expected",
    [
        ("undecodable_index", "error: none of the 1 videos in the index can be decoded: "),
        ("missing_index", "error: --train_index: no such file or folder: "),
        ("missing_model_folder", "error: --model_name_or_path: expected a model folder or a Hub id"),
        ("bad_config_value", "error: {tmp}/run.yaml: per_device_train_batch_size expects int, got 'abc'."),
        ("absurd_crop_size", "error: crop_size must be at most 4096 pixels, got 1000000000"),
    ],
)
def test_a_user_mistake_is_one_line_and_exit_status_1(
    tmp_path, sample_index_file, broken_index, capsys, case, expected
):
    argv = {
        "undecodable_index": tiny_argv(tmp_path / "out", broken_index),
        "missing_index": tiny_argv(tmp_path / "out", tmp_path / "train.csv"),
        "missing_model_folder": tiny_argv(tmp_path / "out", sample_index_file, model_name_or_path=tmp_path / "nope"),
        "bad_config_value": tiny_argv(tmp_path / "out", sample_index_file, config=tmp_path / "run.yaml"),
        "absurd_crop_size": tiny_argv(tmp_path / "out", sample_index_file, crop_size=10**9),
    }[case]
    (tmp_path / "run.yaml").write_text("per_device_train_batch_size: abc\n")
    reset_accelerate_state()
    try:
        assert run_cli(run_pretrain.main, argv) == 1
    finally:
        reset_accelerate_state()
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and err.startswith(expected.format(tmp=tmp_path)), err


def test_the_script_prints_one_line_and_the_traceback_only_with_debug(tmp_path, capsys):
    argv = ["--output_dir", str(tmp_path / "out"), "--train_index", str(tmp_path / "train.csv")]
    result = subprocess.run(
        [sys.executable, "run_pretrain.py", *argv],
        cwd=REPO_ROOT,
        env=subprocess_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 1
    problems = [line for line in result.stderr.splitlines() if " INFO " not in line]
    assert problems == [
        f"error: --train_index: no such file or folder: '{tmp_path / 'train.csv'}' (expected a "
        ".csv/.jsonl index, a folder, tar shards or a datasets name) (rerun with --debug for the "
        "traceback)"
    ], result.stderr
    reset_accelerate_state()
    try:
        assert run_cli(run_pretrain.main, argv + ["--debug"]) == 1
    finally:
        reset_accelerate_state()
    err = capsys.readouterr().err
    assert "Traceback" in err and "build_train_dataset" in err
