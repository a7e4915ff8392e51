"""Pretraining's videos from every source through --train_index: tar shards streamed, a kill and an exact resume,
and the flags pretraining refuses or needs for a stream."""

import os
import subprocess
import tarfile

import pytest
import torch
from pretrain_helpers import REPO_ROOT, state_dict_of, tiny_argv
from safetensors.torch import load_file
from two_processes import two_process_command

from adamae_hf.checkpoint import list_checkpoints, read_training_state
from adamae_hf.data.streaming import StreamingVideoClipDataset
from adamae_hf.errors import UserError
from adamae_hf.pretrain_arguments import parse_pretraining_args
from adamae_hf.pretrain_data import build_train_dataset
from adamae_hf.pretrain_loop import PretrainingLoop
from adamae_hf.pretrain_run import run_pretraining
from adamae_hf.training import read_scalar_log, reset_accelerate_state


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    reset_accelerate_state()
    yield
    reset_accelerate_state()


@pytest.fixture
def tar_shards(sample_videos, tmp_path):
    """The six sample videos in three WebDataset shards of two (`<key>.mp4` only: pretraining needs no labels)."""
    folder = tmp_path / "shards"
    folder.mkdir()
    for shard in range(3):
        with tarfile.open(folder / f"shard-{shard:06d}.tar", "w") as tar:
            for number in (2 * shard, 2 * shard + 1):
                tar.add(sample_videos[number].path, arcname=f"video{number:04d}.mp4")
    return folder


class Killed(Exception):
    """The run dies here (as from a SIGKILL right after a checkpoint reached the disk)."""


def test_a_killed_streaming_run_resumes_bit_for_bit(tmp_path, tar_shards, monkeypatch):
    # 3 shards, 2 data workers, 2 videos a batch: worker 0 reads shards 0 and 2 (two batches), worker 1 shard 1
    # (one), so an epoch is 3 steps. The run dies after the checkpoint of step 2, mid-epoch 0; the resumed run
    # continues it, crosses into epoch 1 (a new shuffle) and must end on the uninterrupted run's weights.
    flags = {"streaming": "true", "max_steps": 5, "save_steps": 2, "dataloader_num_workers": 2}
    straight = run_pretraining(*parse_pretraining_args(tiny_argv(tmp_path / "straight", tar_shards, **flags)))

    real_save = PretrainingLoop.save

    def save_then_die(loop):
        real_save(loop)
        if loop.step == 2:
            raise Killed

    monkeypatch.setattr(PretrainingLoop, "save", save_then_die)
    reset_accelerate_state()
    killed_dir = tmp_path / "killed"
    with pytest.raises(Killed):
        run_pretraining(*parse_pretraining_args(tiny_argv(killed_dir, tar_shards, **flags)))
    assert [path.name for path in list_checkpoints(killed_dir)] == ["checkpoint-2"]
    (position,) = read_training_state(killed_dir / "checkpoint-2")["stream"]  # one process
    assert (position["epoch"], position["batches_consumed"], position["num_workers"]) == (0, 2, 2)

    monkeypatch.setattr(PretrainingLoop, "save", real_save)
    reset_accelerate_state()
    resumed = run_pretraining(
        *parse_pretraining_args(tiny_argv(killed_dir, tar_shards, resume_from_checkpoint="latest", **flags))
    )
    assert resumed.step == 5
    straight_weights, resumed_weights = state_dict_of(straight.model), state_dict_of(resumed.model)
    assert all(torch.equal(straight_weights[name], resumed_weights[name]) for name in straight_weights)
    straight_log = read_scalar_log(tmp_path / "straight" / "logs" / "scalars.jsonl")
    resumed_log = read_scalar_log(killed_dir / "logs" / "scalars.jsonl")
    assert [record["step"] for record in resumed_log] == [1, 2, 3, 4, 5]
    assert [record["loss"] for record in resumed_log] == [record["loss"] for record in straight_log]
    assert [record["epoch"] for record in straight_log] == [0, 0, 0, 1, 1]  # steps 4 and 5 read epoch 1
    # a resume needs the processes and workers the stream was read with
    reset_accelerate_state()
    other_workers = {**flags, "dataloader_num_workers": 1, "max_steps": 6}
    with pytest.raises(UserError, match="written with 2 data workers per process, this run has --dataloader_num_wor"):
        run_pretraining(
            *parse_pretraining_args(
                tiny_argv(
                    tmp_path / "other",
                    tar_shards,
                    resume_from_checkpoint=tmp_path / "straight" / "checkpoint-4",
                    **other_workers,
                )
            )
        )


def test_an_accumulated_step_may_straddle_a_streams_epochs(tmp_path, tar_shards, monkeypatch):
    # 6 videos, 2 a micro-batch: an epoch of the stream is 3 micro-batches, so with 2 per step the second step takes
    # the last of epoch 0 and the first of epoch 1. It must stay one step: the micro-batch after the epoch's end is
    # its second (its own rows of the step's mask noise, the step's non-finite flag kept), not a new step's first.
    flags = {"streaming": "true", "max_steps": 3, "gradient_accumulation_steps": 2}
    positions = []
    real_micro_batch = PretrainingLoop.train_micro_batch

    def recording_micro_batch(loop, batch):
        positions.append(loop.batch_in_step)
        real_micro_batch(loop, batch)

    monkeypatch.setattr(PretrainingLoop, "train_micro_batch", recording_micro_batch)
    result = run_pretraining(*parse_pretraining_args(tiny_argv(tmp_path / "run", tar_shards, **flags)))
    assert result.step == 3
    assert positions == [0, 1, 0, 1, 0, 1]


def test_a_stream_is_read_by_each_process_and_the_old_flags_are_aliases(tmp_path, tar_shards, sample_index_file):
    _, data_args, clip_config, training_args = parse_pretraining_args(
        [
            "--output_dir",
            str(tmp_path),
            "--train_folder",
            str(tar_shards),
            "--streaming",
            "--per_device_train_batch_size",
            "4",
            "--num_sample",
            "2",
        ]
    )
    assert data_args.train_index == str(tar_shards)

    class TwoProcesses:  # what the dataset asks of the accelerator
        process_index, num_processes, is_main_process = 1, 2, False

    dataset = build_train_dataset(data_args, clip_config, training_args, TwoProcesses())
    assert isinstance(dataset, StreamingVideoClipDataset)
    assert (dataset.rank, dataset.world_size, dataset.videos_per_batch, dataset.seed) == (1, 2, 2, 0)
    _, data_args, _, _ = parse_pretraining_args(["--output_dir", "o", "--train_index_file", sample_index_file])
    assert data_args.train_index == sample_index_file and not data_args.streaming


def test_a_stream_of_unknown_length_needs_the_run_in_steps(tmp_path, tar_shards):
    flags = {"streaming": "true", "max_steps": -1, "num_train_epochs": 2}
    with pytest.raises(
        UserError,
        match=r"--streaming: the stream does not say how many videos it holds, so the "
        r"run's length must be given in optimizer steps: --max_steps N\.",
    ):
        run_pretraining(*parse_pretraining_args(tiny_argv(tmp_path / "a", tar_shards, **flags)))
    reset_accelerate_state()
    flags = {"streaming": "true", "max_steps": 3, "warmup_steps": None, "warmup_epochs": 1}
    with pytest.raises(UserError, match=r"the warmup must be given in optimizer steps: --warmup_steps N"):
        run_pretraining(*parse_pretraining_args(tiny_argv(tmp_path / "b", tar_shards, **flags)))


@pytest.mark.parametrize("split", ["validation", "test"])
def test_pretraining_refuses_an_evaluation_split_in_one_line(split):
    with pytest.raises(ValueError, match=rf"^--{split}_index: pretraining reads only --train_index"):
        parse_pretraining_args(["--output_dir", "o", "--train_index", "a.csv", f"--{split}_index", "b.csv"])


def test_two_processes_stream_their_shares_and_resume_exactly(tmp_path, tar_shards):
    # Each process reads every other video of the stream (3 shards do not divide between 2 processes), one batch
    # of 2 an epoch. The checkpoint of step 2 holds both processes' positions; two processes resumed from it end on
    # the uninterrupted run's weights, and DDP keeps the replicas equal.
    flags = {"streaming": "true", "max_steps": 3, "save_steps": 2}

    def launch(output_dir, params_dir, **extra):
        command = two_process_command(
            str(REPO_ROOT / "tests" / "pretrain_helpers.py"),
            "ddp-train",
            str(params_dir),
            *tiny_argv(output_dir, tar_shards, **flags, **extra),
        )
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO_ROOT), "OMP_NUM_THREADS": "1"}
        result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        return [load_file(str(params_dir / f"rank{rank}.safetensors")) for rank in (0, 1)]

    straight = launch(tmp_path / "straight", tmp_path / "straight-params")
    positions = read_training_state(tmp_path / "straight" / "checkpoint-2")["stream"]
    assert [(position["epoch"], position["batches_consumed"]) for position in positions] == [(1, 1), (1, 1)]
    resumed = launch(
        tmp_path / "resumed",
        tmp_path / "resumed-params",
        resume_from_checkpoint=tmp_path / "straight" / "checkpoint-2",
    )
    for weights in (straight[1], *resumed):
        assert all(torch.equal(straight[0][name], weights[name]) for name in straight[0])
