"""The pretraining library: arguments and their defaults, data order and seeding, schedule, the loop's non-finite
handling, exact resume, the end of a run, and `AdaMaeForPreTraining` under `transformers.Trainer`."""

import json
import math
import re
from pathlib import Path

import pytest
import torch
from huggingface_hub.utils import filter_repo_objects
from pretrain_helpers import TINY_OVERRIDES, RandomClipDataset, state_dict_of, tiny_argv
from tiny_configs import tiny_config
from transformers import Trainer, TrainingArguments

from adamae_hf import pretrain_loop
from adamae_hf.checkpoint import LATEST_FILE, latest_checkpoint, list_checkpoints, read_training_state
from adamae_hf.errors import UserError
from adamae_hf.pretrain_arguments import DEMO_ARGUMENTS, parse_pretraining_args
from adamae_hf.pretrain_data import build_train_dataset
from adamae_hf.pretrain_loop import collects_diagnostic_batch
from adamae_hf.pretrain_model import build_model_config, parse_config_overrides
from adamae_hf.pretrain_run import run_pretraining
from adamae_hf.training import (
    EpochSeededDataset,
    EpochShuffleSampler,
    NonFiniteLossError,
    NonFiniteLossGuard,
    compute_schedule,
    read_scalar_log,
    reset_accelerate_state,
    skips_updates_on_device,
    step_noise,
    step_unless,
    warn_about_launch_mismatch,
)
from modeling_adamae import AdaMaeForPreTraining


CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    reset_accelerate_state()
    yield
    reset_accelerate_state()


def pretrain(argv, train_dataset=None, **kwargs):
    return run_pretraining(*parse_pretraining_args(argv), train_dataset=train_dataset, **kwargs)


# ---------------------------------------------------------------------------------------------------------------------
# Arguments


def test_defaults_are_the_papers_recipe():
    model_args, data_args, clip_config, training_args = parse_pretraining_args(
        ["--output_dir", "out", "--train_index_file", "train.csv"]
    )
    config = build_model_config(model_args, clip_config)
    assert (config.mask_type, config.mask_ratio, config.get_num_visible_tokens()) == ("adaptive", 0.95, 78)
    assert (config.hidden_size, config.num_hidden_layers, config.patch_size, config.tubelet_size) == (768, 12, 16, 2)
    assert (config.decoder_num_hidden_layers, config.decoder_hidden_size, config.norm_pix_loss) == (4, 384, True)
    assert (config.num_frames, config.frame_size, config.sampling_loss_weight) == (16, (224, 224), 1e-4)
    assert (clip_config.num_frames, clip_config.train_crop, clip_config.multiscale_scales) == (
        16,
        "multiscale",
        [1.0, 0.875, 0.75, 0.66],
    )
    assert (training_args.adam_beta1, training_args.adam_beta2, training_args.weight_decay) == (0.9, 0.95, 0.05)
    assert (training_args.num_train_epochs, training_args.warmup_epochs, training_args.max_grad_norm) == (
        800,
        40,
        None,
    )
    # 64 GPUs x 32 clips: lr, warmup lr and min lr all scaled by 2048 / 256.
    schedule = compute_schedule(
        num_videos=240_000,
        clips_per_device_batch=32,
        clips_per_video=1,
        num_processes=64,
        gradient_accumulation_steps=1,
        num_train_epochs=800,
        max_steps=-1,
        warmup_epochs=40,
        warmup_steps=None,
        base_learning_rate=training_args.base_learning_rate,
        learning_rate=None,
        warmup_lr=training_args.warmup_lr,
        min_lr=training_args.min_lr,
    )
    assert schedule.steps_per_epoch == 117 and schedule.total_steps == 800 * 117 and schedule.warmup_steps == 40 * 117
    assert (schedule.learning_rate, schedule.warmup_lr, schedule.min_lr) == pytest.approx((1.2e-3, 8e-6, 8e-5))


@pytest.mark.parametrize(
    "name, sampling_rate", [("pretrain_k400_vit_base.yaml", 4), ("pretrain_ssv2_vit_base.yaml", 2)]
)
def test_example_configs_hold_the_papers_hyperparameters(name, sampling_rate):
    model_args, data_args, clip_config, training_args = parse_pretraining_args(
        ["--config", str(CONFIGS / name), "--train_index_file", "train.csv"]
    )
    config = build_model_config(model_args, clip_config)
    assert (config.mask_type, config.mask_ratio, config.decoder_num_hidden_layers) == ("adaptive", 0.95, 4)
    assert (clip_config.num_frames, clip_config.sampling_rate, clip_config.crop_size) == (16, sampling_rate, 224)
    assert (training_args.per_device_train_batch_size, training_args.num_train_epochs) == (32, 800)
    assert (training_args.base_learning_rate, training_args.mixed_precision) == (1.5e-4, "bf16")


def test_flags_override_the_config_file_which_overrides_defaults(tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("output_dir: from-file\nmask_type: tube\nmask_ratio: 0.9\nbase_learning_rate: 1e-4\n")
    model_args, _, _, training_args = parse_pretraining_args(
        ["--config", str(config_file), "--train_index_file", "t.csv", "--mask_ratio", "0.75"]
    )
    assert (model_args.mask_type, model_args.mask_ratio) == ("tube", 0.75)
    assert training_args.base_learning_rate == 1e-4 and training_args.output_dir == "from-file"
    json_file = tmp_path / "run.json"
    json_file.write_text(json.dumps({"output_dir": "o", "train_folder": "videos", "seed": 3}))
    assert parse_pretraining_args(["--config", str(json_file)])[3].seed == 3


def test_no_arguments_run_the_demo_and_flags_still_apply():
    model_args, data_args, clip_config, training_args = parse_pretraining_args([])
    assert training_args.demo and training_args.output_dir == DEMO_ARGUMENTS["output_dir"]
    assert clip_config.crop_size == 64 and training_args.max_steps == DEMO_ARGUMENTS["max_steps"]
    shortened = parse_pretraining_args(["--demo", "--max_steps", "3"])[3]
    assert shortened.demo and shortened.max_steps == 3 and shortened.output_dir == "outputs/demo"


def test_the_model_takes_the_clips_geometry_and_normalisation():
    model_args, _, clip_config, _ = parse_pretraining_args(
        [
            "--output_dir",
            "out",
            "--train_index_file",
            "t.csv",
            "--num_frames",
            "8",
            "--crop_size",
            "112",
            "--image_mean",
            "0.5",
            "0.5",
            "0.5",
            "--image_std",
            "0.25",
            "0.25",
            "0.25",
        ]
    )
    config = build_model_config(model_args, clip_config)
    assert (config.num_frames, config.frame_size) == (8, (112, 112))
    assert (config.image_mean, config.image_std) == ([0.5] * 3, [0.25] * 3)


def test_baselines_are_flags_of_the_same_script():
    model_args, _, clip_config, _ = parse_pretraining_args(
        ["--output_dir", "o", "--train_folder", "v", "--mask_type", "tube", "--mask_ratio", "0.9"]
    )
    config = build_model_config(model_args, clip_config)
    assert (config.mask_type, config.mask_ratio, config.get_num_visible_tokens()) == ("tube", 0.9, 8 * 20)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--train_folder", "v"], "--output_dir is required"),
        (["--output_dir", "o", "--train_folder", "v", "--train_index_file", "i.csv"], "either --train_index_file"),
        (["--output_dir", "o", "--train_folder", "v", "--mask_ratio", "1.5"], "mask_ratio must be in"),
        (["--output_dir", "o", "--train_folder", "v", "--push_to_hub"], "needs --hub_model_id"),
        (["--output_dir", "o", "--train_folder", "v", "--logging_steps", "0"], "logging_steps must be a positive"),
    ],
)
def test_bad_arguments_fail_with_a_clear_message(argv, message):
    with pytest.raises(ValueError, match=message):
        parse_pretraining_args(argv)


def test_missing_training_videos_fail_with_a_clear_message(tmp_path):
    model_args, data_args, clip_config, training_args = parse_pretraining_args(["--output_dir", str(tmp_path)])
    with pytest.raises(ValueError, match="Expected the training videos: --train_index"):
        build_train_dataset(data_args, clip_config, training_args, accelerator=None)


def test_config_file_with_an_unknown_key_is_an_error(tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("output_dir: o\nlearning_rat: 0.1\n")
    with pytest.raises(ValueError, match="unknown argument.*learning_rat"):
        parse_pretraining_args(["--config", str(config_file)])


def test_config_overrides_are_typed_and_checked():
    assert parse_config_overrides("hidden_size=384,qkv_bias=False,hidden_act=gelu,mask_ratio=0.9") == {
        "hidden_size": 384,
        "qkv_bias": False,
        "hidden_act": "gelu",
        "mask_ratio": 0.9,
    }
    with pytest.raises(ValueError, match="not an AdaMaeConfig argument"):
        parse_config_overrides("hiden_size=384")
    with pytest.raises(ValueError, match="--num_frames"):
        parse_config_overrides("num_frames=8")
    with pytest.raises(ValueError, match="name=value"):
        parse_config_overrides("hidden_size")


# ---------------------------------------------------------------------------------------------------------------------
# Data order, seeding, schedule


def test_epoch_shuffle_sampler_keeps_whole_steps_and_reshuffles_each_epoch():
    sampler = EpochShuffleSampler(num_items=10, items_per_step=4, seed=0)
    first = list(sampler)
    assert len(first) == len(sampler) == 8 and len(set(first)) == 8 and all(0 <= key < 10 for key in first)
    assert list(sampler) == first  # same epoch, same order
    sampler.set_epoch(3)
    third = list(sampler)
    assert all(30 <= key < 40 for key in third)  # keys carry the epoch
    assert [key - 30 for key in third] != first
    assert list(EpochShuffleSampler(10, 4, seed=1)) != first
    with pytest.raises(ValueError, match="one optimizer step needs 4"):
        EpochShuffleSampler(num_items=3, items_per_step=4, seed=0)


def test_seeded_items_depend_on_seed_epoch_and_index_only():
    dataset = EpochSeededDataset(RandomClipDataset(num_videos=5), seed=0)
    torch.manual_seed(123)
    global_state = torch.get_rng_state()
    item = dataset[2]["pixel_values"]
    assert torch.equal(torch.get_rng_state(), global_state)  # the loop's random stream is untouched
    dataset[4], dataset[7]  # other items in between change nothing
    assert torch.equal(dataset[2]["pixel_values"], item)
    assert not torch.equal(dataset[5 + 2]["pixel_values"], item)  # the same video in epoch 1
    assert not torch.equal(EpochSeededDataset(RandomClipDataset(5), seed=1)[2]["pixel_values"], item)


def test_step_noise_depends_on_seed_and_step():
    generator = torch.Generator()
    noise = step_noise(0, 5, 4, 64, generator, torch.device("cpu"))
    assert noise.shape == (4, 64) and 0 <= noise.min() and noise.max() < 1
    assert torch.equal(step_noise(0, 5, 4, 64, generator, torch.device("cpu")), noise)
    assert not torch.equal(step_noise(0, 6, 4, 64, generator, torch.device("cpu")), noise)


def test_schedule_counts_optimizer_steps_and_validates():
    schedule = compute_schedule(
        num_videos=100,
        clips_per_device_batch=8,
        clips_per_video=2,
        num_processes=2,
        gradient_accumulation_steps=3,
        num_train_epochs=2,
        max_steps=-1,
        warmup_epochs=1,
        warmup_steps=None,
        base_learning_rate=1.5e-4,
        learning_rate=None,
        warmup_lr=1e-6,
        min_lr=1e-5,
    )
    # 4 videos per device batch x 2 processes x 3 accumulation steps = 24 videos per step.
    assert (schedule.videos_per_step, schedule.steps_per_epoch, schedule.total_steps) == (24, 4, 8)
    assert schedule.global_batch_size == 48 and schedule.learning_rate == pytest.approx(1.5e-4 * 48 / 256)
    absolute = compute_schedule(100, 8, 2, 1, 1, 1, 5, 40, None, 1.5e-4, 3e-4, 1e-6, 1e-5)
    assert (absolute.total_steps, absolute.warmup_steps, absolute.learning_rate, absolute.min_lr) == (5, 5, 3e-4, 1e-5)
    with pytest.raises(ValueError, match="multiple of the clips drawn per video"):
        compute_schedule(100, 3, 2, 1, 1, 1, -1, 0, None, 1.5e-4, None, 1e-6, 1e-5)
    with pytest.raises(ValueError, match="needs 40"):
        compute_schedule(30, 8, 1, 5, 1, 1, -1, 0, None, 1.5e-4, None, 1e-6, 1e-5)


def test_guard_counts_streaks_and_stops_after_the_limit(caplog):
    guard = NonFiniteLossGuard(max_consecutive=2, last_checkpoint="out/checkpoint-4")
    guard.record(finite=False, step=5)
    guard.record(finite=True, step=6)
    guard.record(finite=False, step=7)
    assert (guard.consecutive, guard.total) == (1, 2)
    assert "Step 7: the loss is not finite" in caplog.text
    with pytest.raises(NonFiniteLossError, match=r"Stopped at step 8.*2 consecutive.*out/checkpoint-4"):
        guard.record(finite=False, step=8)


def test_guard_reads_device_verdicts_back_late_and_in_step_order(caplog):
    guard = NonFiniteLossGuard(max_consecutive=3)
    guard.record_later(torch.tensor(True), step=1)
    guard.record_later(torch.tensor(False), step=2)
    assert (guard.total, len(guard.pending)) == (0, 2)  # nothing read yet
    guard.flush()
    assert (guard.consecutive, guard.total, guard.pending) == (0, 1, [])
    assert "Step 1: the loss is not finite" in caplog.text
    guard.record_later(torch.tensor(True), step=3)
    guard.record_later(torch.tensor(True), step=4)
    assert guard.state_dict() == {"nonfinite_steps": 3, "consecutive_nonfinite_steps": 2}  # flushes first
    guard.record_later(torch.tensor(True), step=5)
    guard.record_later(torch.tensor(False), step=6)
    # the third pending verdict flushes by itself, so a streak is caught at most max_consecutive steps late
    with pytest.raises(NonFiniteLossError, match=r"Stopped at step 5.*3 consecutive"):
        guard.record_later(torch.tensor(True), step=7)


class HostReadForbidden(torch.Tensor):
    """A tensor (and everything computed from it) that fails when its value is read back to the host."""

    HOST_READS = {
        torch.Tensor.item,
        torch.Tensor.tolist,
        torch.Tensor.__bool__,
        torch.Tensor.__float__,
        torch.Tensor.__int__,
        torch.Tensor.__index__,
    }

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func in cls.HOST_READS:
            raise AssertionError(f"the skip flag was read back to the host ({func.__name__})")
        return super().__torch_function__(func, types, args, kwargs or {})


@pytest.mark.parametrize("skip", [True, False])
def test_step_unless_skips_an_update_on_the_device_exactly(skip):
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 3)
    reference = torch.nn.Linear(4, 3)
    reference.load_state_dict(model.state_dict())
    optimizers = [torch.optim.AdamW(m.parameters(), lr=0.1, weight_decay=0.05, fused=True) for m in (model, reference)]
    assert skips_updates_on_device(optimizers[0])
    for step in range(3):
        inputs = torch.randn(5, 4)
        for m in (model, reference):
            m(inputs).square().sum().backward()
        flag = torch.tensor(skip and step == 1).as_subclass(HostReadForbidden)
        step_unless(optimizers[0], flag)
        if not (skip and step == 1):
            optimizers[1].step()
        for optimizer in optimizers:
            optimizer.zero_grad(set_to_none=True)
    for name, value in model.state_dict().items():
        assert torch.equal(value, reference.state_dict()[name]), name
    steps = [int(state["step"]) for state in optimizers[0].state.values()]
    assert steps == [int(state["step"]) for state in optimizers[1].state.values()] == [2 if skip else 3] * 2
    for state, reference_state in zip(optimizers[0].state.values(), optimizers[1].state.values()):
        assert torch.equal(state["exp_avg"], reference_state["exp_avg"])
        assert torch.equal(state["exp_avg_sq"], reference_state["exp_avg_sq"])


@pytest.mark.skipif(
    not torch.cuda.is_available(), reason="host syncs are a CUDA matter: CPU work never waits on a device"
)
def test_a_training_step_never_makes_the_host_wait_for_the_gpu():
    # forward, backward and the update of run_pretrain's loop, under CUDA's sync checker (after one warm-up step,
    # which may sync while it creates library handles)
    model = AdaMaeForPreTraining(tiny_config()).cuda().train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, fused=True)
    video = torch.randn(2, 8, 3, 32, 32, device="cuda")
    noise = torch.rand(2, model.config.num_patches, device="cuda")

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = model(video, noise=noise).loss
        loss.backward()
        step_unless(optimizer, ~torch.isfinite(loss.detach()))
        optimizer.zero_grad(set_to_none=True)

    step()
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        step()
    finally:
        torch.cuda.set_sync_debug_mode("default")


def test_step_unless_refuses_an_optimizer_that_cannot_skip_on_the_device():
    fused = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), fused=True)
    assert skips_updates_on_device(fused, "cpu")
    assert not skips_updates_on_device(fused, "cuda:0")  # parameters away from the verdict (FSDP's CPU offload)
    optimizer = torch.optim.AdamW(torch.nn.Linear(2, 2).parameters(), foreach=True)
    assert not skips_updates_on_device(optimizer)
    with pytest.raises(ValueError, match="fused Adam or AdamW.*got AdamW"):
        step_unless(optimizer, torch.tensor(False))


# ---------------------------------------------------------------------------------------------------------------------
# The loop


def test_a_nan_batch_is_skipped_counted_and_training_continues(tmp_path, caplog):
    # 8 videos, 2 clips per step: 4 steps per epoch; video 5 is NaN, so exactly one step of the epoch is skipped.
    result = pretrain(tiny_argv(tmp_path / "run", max_steps=4, save_steps=4), RandomClipDataset(8, nan_items={5}))
    assert result.step == 4 and result.nonfinite_steps == 1
    records = read_scalar_log(tmp_path / "run" / "logs" / "scalars.jsonl")
    assert [record["step"] for record in records] == [1, 2, 3, 4]
    skipped_at = next(record["step"] for record in records if record["nonfinite_steps"] == 1)
    assert f"Step {skipped_at}: the loss is not finite" in caplog.text
    # Logged losses average the finite forward passes only: the skipped step's interval has none.
    assert all((record["loss"] is None) == (record["step"] == skipped_at) for record in records)
    assert all(torch.isfinite(tensor).all() for tensor in result.model.state_dict().values())
    # AdamW counted 3 updates for 4 steps: the NaN step never reached the optimizer.
    optimizer_state = torch.load(tmp_path / "run" / "checkpoint-4" / "optimizer.bin", weights_only=True)
    assert {int(state["step"]) for state in optimizer_state["state"].values()} == {3}


def test_the_loop_skips_on_the_device_and_reads_verdicts_back_only_at_log_and_save_points(tmp_path, monkeypatch):
    # 4 steps per epoch; video 5 is NaN (one skipped step). With logging and saving only at the end and a limit of 3,
    # the verdicts are read back after steps 3 (three pending) and 8 (the end): never per step.
    calls = {"step_unless": 0, "flushes": []}
    real_step_unless, real_flush = pretrain_loop.step_unless, NonFiniteLossGuard.flush

    def counting_step_unless(optimizer, skip):
        calls["step_unless"] += 1
        real_step_unless(optimizer, skip)

    def counting_flush(guard):
        if guard.pending:
            calls["flushes"].append([step for step, _ in guard.pending])
        real_flush(guard)

    monkeypatch.setattr(pretrain_loop, "step_unless", counting_step_unless)
    monkeypatch.setattr(NonFiniteLossGuard, "flush", counting_flush)
    argv = tiny_argv(tmp_path / "run", max_steps=8, logging_steps=100, save_steps=100, max_nonfinite_steps=3)
    result = pretrain(argv, RandomClipDataset(8, nan_items={5}))
    assert (result.step, result.nonfinite_steps) == (8, 2)  # video 5 once per epoch
    assert calls["step_unless"] == 8
    # the first step is logged too (a first sign of life)
    assert calls["flushes"] == [[1], [2, 3, 4], [5, 6, 7], [8]]


def test_without_a_fused_optimizer_the_loop_decides_on_the_host_with_the_same_result(tmp_path, monkeypatch):
    # fp16's loss scaler and DeepSpeed's optimizers cannot skip on the device: the loop reads each verdict back instead
    runs = {}
    for on_device in (True, False):
        reset_accelerate_state()
        monkeypatch.setattr(pretrain_loop, "skips_updates_on_device", lambda optimizer, flag=on_device: flag)
        runs[on_device] = pretrain(
            tiny_argv(tmp_path / str(on_device), max_steps=4, max_grad_norm=1.0), RandomClipDataset(8, nan_items={5})
        )
    assert runs[True].nonfinite_steps == runs[False].nonfinite_steps == 1
    device_weights, host_weights = state_dict_of(runs[True].model), state_dict_of(runs[False].model)
    assert all(torch.equal(device_weights[name], host_weights[name]) for name in device_weights)
    # a skipped step logs the last real update's gradient norm on both paths
    logs = [read_scalar_log(tmp_path / str(flag) / "logs" / "scalars.jsonl") for flag in (True, False)]
    assert [r["grad_norm"] for r in logs[0]] == [r["grad_norm"] for r in logs[1]]
    assert all(math.isfinite(r["grad_norm"]) for r in logs[0])


def test_a_save_point_on_a_skipped_step_is_saved_at_the_next_finite_step(tmp_path):
    # As above, the NaN video lands in step 3 (seed 0); a save point every 3 steps moves to step 4.
    result = pretrain(
        tiny_argv(tmp_path / "run", max_steps=5, save_steps=3, save_total_limit=0), RandomClipDataset(8, nan_items={5})
    )
    assert result.nonfinite_steps == 1
    assert [path.name for path in list_checkpoints(tmp_path / "run")] == ["checkpoint-4", "checkpoint-5"]


def test_consecutive_nan_steps_stop_the_run_and_keep_the_last_good_checkpoint(tmp_path):
    # Items turn NaN after the first 4 fetched: steps 1-2 are good (checkpoints), steps 3 and 4 are not.
    output_dir = tmp_path / "run"
    argv = tiny_argv(output_dir, max_steps=8, save_steps=1, max_nonfinite_steps=2, save_total_limit=0)
    with pytest.raises(NonFiniteLossError, match=r"Stopped at step 4.*checkpoint-2"):
        pretrain(argv, RandomClipDataset(8, nan_after_calls=4))
    assert [path.name for path in list_checkpoints(output_dir)] == ["checkpoint-1", "checkpoint-2"]
    assert (output_dir / LATEST_FILE).read_text().strip() == "checkpoint-2"
    assert read_training_state(output_dir / "checkpoint-2")["nonfinite_steps"] == 0


@pytest.mark.parametrize("num_workers", [0, 2])
def test_resuming_from_a_checkpoint_continues_bit_for_bit(tmp_path, sample_index_file, num_workers):
    # 6 videos, 2 clips per step: 3 steps per epoch. Resuming at step 2 skips into the middle of epoch 0 and then
    # crosses into epoch 1. The sampler's dropout (0.1) checks that the random states come back too.
    straight_dir, resumed_dir = tmp_path / "straight", tmp_path / "resumed"
    flags = {"max_steps": 5, "dataloader_num_workers": num_workers}
    straight = pretrain(tiny_argv(straight_dir, sample_index_file, save_steps=2, **flags))
    reset_accelerate_state()
    resumed = pretrain(
        tiny_argv(resumed_dir, sample_index_file, resume_from_checkpoint=straight_dir / "checkpoint-2", **flags)
    )
    straight_weights, resumed_weights = state_dict_of(straight.model), state_dict_of(resumed.model)
    assert all(torch.equal(straight_weights[name], resumed_weights[name]) for name in straight_weights)
    straight_log = read_scalar_log(straight_dir / "logs" / "scalars.jsonl")
    resumed_log = read_scalar_log(resumed_dir / "logs" / "scalars.jsonl")
    assert [record["step"] for record in resumed_log] == [3, 4, 5]
    for before, after in zip(straight_log[2:], resumed_log):
        assert before["loss"] == after["loss"] and before["sampler/entropy"] == after["sampler/entropy"]


def test_random_erasing_keeps_normalisation_in_the_workers(tmp_path, sample_index_file):
    model_args, data_args, clip_config, training_args = parse_pretraining_args(
        tiny_argv(tmp_path, sample_index_file, random_erasing_prob=0.25)
    )
    assert data_args.normalize_on_device  # the default, which random erasing cannot use
    dataset = build_train_dataset(data_args, clip_config, training_args, accelerator=None)
    assert dataset.normalize and dataset[0]["pixel_values"].dtype == torch.float32


def test_normalising_on_the_device_trains_exactly_like_normalising_in_the_workers(tmp_path, sample_index_file):
    runs = {}
    for flag in ("true", "false"):
        reset_accelerate_state()
        runs[flag] = pretrain(
            tiny_argv(tmp_path / flag, sample_index_file, normalize_on_device=flag, dataloader_num_workers=1)
        )
    on_device, in_workers = (state_dict_of(runs[flag].model) for flag in ("true", "false"))
    assert all(torch.equal(on_device[name], in_workers[name]) for name in on_device)
    # the sampler diagnostics normalise the uint8 batches they keep as the training step did
    logs = {flag: read_scalar_log(tmp_path / flag / "logs" / "scalars.jsonl") for flag in runs}
    diagnostics = {
        flag: [{k: v for k, v in record.items() if k.startswith(("sampler/", "mask/"))} for record in log]
        for flag, log in logs.items()
    }
    assert diagnostics["true"] == diagnostics["false"] and diagnostics["true"][0]


def test_gradient_accumulation_follows_the_same_trajectory_as_one_larger_batch(tmp_path):
    # Same global batch (4 clips) as one pass or as 2 accumulated passes: same clips, same masks, same updates.
    overrides = TINY_OVERRIDES + ",sampler_dropout_prob=0.0"  # dropout is drawn per forward pass
    one_pass = pretrain(
        tiny_argv(tmp_path / "one", per_device_train_batch_size=4, config_overrides=overrides), RandomClipDataset(8)
    )
    reset_accelerate_state()
    accumulated = pretrain(
        tiny_argv(
            tmp_path / "two", per_device_train_batch_size=2, gradient_accumulation_steps=2, config_overrides=overrides
        ),
        RandomClipDataset(8),
    )
    one_weights, accumulated_weights = state_dict_of(one_pass.model), state_dict_of(accumulated.model)
    for name in one_weights:
        torch.testing.assert_close(accumulated_weights[name], one_weights[name], rtol=1e-4, atol=1e-5, msg=name)
    one_log, accumulated_log = (read_scalar_log(tmp_path / run / "logs" / "scalars.jsonl") for run in ("one", "two"))
    assert [r["loss"] for r in accumulated_log] == pytest.approx([r["loss"] for r in one_log], rel=1e-5)


def test_resume_latest_in_the_same_folder_and_refusal_to_mix_runs(tmp_path):
    output_dir = tmp_path / "run"
    pretrain(tiny_argv(output_dir, max_steps=2, save_steps=1), RandomClipDataset(8))
    reset_accelerate_state()
    with pytest.raises(ValueError, match="already has checkpoints"):
        pretrain(tiny_argv(output_dir, max_steps=3), RandomClipDataset(8))
    reset_accelerate_state()
    with pytest.raises(ValueError, match="global_batch_size=2, this run has 4"):
        pretrain(
            tiny_argv(output_dir, max_steps=3, resume_from_checkpoint="latest", per_device_train_batch_size=4),
            RandomClipDataset(8),
        )
    reset_accelerate_state()
    result = pretrain(tiny_argv(output_dir, max_steps=3, resume_from_checkpoint="latest"), RandomClipDataset(8))
    assert result.step == 3 and latest_checkpoint(output_dir).name == "checkpoint-3"
    # The interrupted run's records after the resume point were replaced, not duplicated.
    assert [record["step"] for record in read_scalar_log(output_dir / "logs" / "scalars.jsonl")] == [1, 2, 3]


class RecordingHubApi:
    """Stands in for huggingface_hub.HfApi: records what would be uploaded, and the output folder's checkpoints at the
    time of each call. `fail_on` names a method that raises `OSError` (as an endpoint that does not answer)."""

    endpoint = "https://hub.test"
    token = "hf_test"

    def __init__(self, output_dir=None, fail_on=None):
        self.uploaded = None
        self.output_dir, self.fail_on = output_dir, fail_on
        self.calls = []

    def _call(self, name):
        checkpoints = [path.name for path in list_checkpoints(self.output_dir)] if self.output_dir else []
        self.calls.append((name, checkpoints))
        if name == self.fail_on:
            raise OSError("Connection refused")

    def whoami(self, token=None):
        self._call("whoami")
        return {"name": "someone"}

    def create_repo(self, repo_id, repo_type, private, exist_ok, token=None):
        self._call("create_repo")
        self.repo_id = repo_id

    def auth_check(self, repo_id, repo_type=None, token=None, write=False):
        self._call("auth_check")

    def upload_folder(self, folder_path, repo_id, repo_type, commit_message, ignore_patterns=None, **kwargs):
        self._call("upload_folder")
        files = [path.relative_to(folder_path).as_posix() for path in Path(folder_path).rglob("*") if path.is_file()]
        kept = filter_repo_objects(files, ignore_patterns=ignore_patterns)  # huggingface_hub's own filter
        self.uploaded = {name: (Path(folder_path) / name).read_bytes() for name in kept}
        return f"https://huggingface.co/{repo_id}/commit/0"


def test_the_end_of_a_run_writes_a_loadable_model_folder_and_uploads_only_it(tmp_path):
    output_dir = tmp_path / "run"
    api = RecordingHubApi()
    pretrain(
        tiny_argv(
            output_dir,
            max_steps=2,
            save_steps=1,
            push_to_hub=True,
            hub_model_id="someone/adamae-tiny",
            dataset_ids="someone/videos",
        ),
        RandomClipDataset(8),
        hub_api=api,
    )
    model = AdaMaeForPreTraining.from_pretrained(output_dir)
    assert model.config.num_patches == 64
    for name in (
        "model.safetensors",
        "config.json",
        "configuration_adamae.py",
        "modeling_adamae.py",
        "preprocessor_config.json",
        "README.md",
        "run_arguments.json",
    ):
        assert name in api.uploaded, name
    assert (output_dir / "checkpoint-2").is_dir() and (output_dir / "logs").is_dir()
    assert not any("/" in name or name == LATEST_FILE for name in api.uploaded)  # no checkpoints, logs, pointer
    card = api.uploaded["README.md"].decode()
    assert "library_name: transformers" in card and "- self-supervised" in card and "- someone/videos" in card
    assert "| reconstruction_loss |" in card and "| global_batch_size | 2 |" in card
    assert "hub_token" not in json.loads(api.uploaded["run_arguments.json"])


def test_the_run_draws_the_mask_figure_at_the_end_and_every_visualize_steps(tmp_path, sample_index_file):
    output_dir = tmp_path / "run"
    pretrain(tiny_argv(output_dir, index_file=sample_index_file, max_steps=2, visualize_steps=1))
    for name in ("masks.gif", "masks.png", "visualizations/masks-step-1.gif", "visualizations/masks-step-2.png"):
        assert (output_dir / name).stat().st_size > 0, name
    assert "![AdaMAE masks](masks.gif)" in (output_dir / "README.md").read_text()


def test_a_figure_video_that_cannot_be_drawn_only_warns(tmp_path, sample_index_file, caplog):
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    output_dir = tmp_path / "run"
    pretrain(
        tiny_argv(output_dir, index_file=sample_index_file, max_steps=1, visualization_video=tmp_path / "broken.mp4")
    )
    assert AdaMaeForPreTraining.from_pretrained(output_dir).config.num_patches == 64
    assert not (output_dir / "masks.gif").exists()
    assert any("No mask figure from" in r.getMessage() and "broken.mp4" in r.getMessage() for r in caplog.records)


# ---------------------------------------------------------------------------------------------------------------------
# transformers.Trainer


def test_pretraining_model_trains_under_the_transformers_trainer(tmp_path):
    class Clips(torch.utils.data.Dataset):
        def __len__(self):
            return 8

        def __getitem__(self, index):
            return {"pixel_values": torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(index))}

    torch.manual_seed(0)
    model = AdaMaeForPreTraining(tiny_config())
    before = state_dict_of(model)
    arguments = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=3,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
    )
    trainer = Trainer(model=model, args=arguments, train_dataset=Clips())
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 3 and all(math.isfinite(loss) for loss in losses)
    after = state_dict_of(model)
    assert any(not torch.equal(before[name], after[name]) for name in before)


def test_push_to_hub_checks_access_before_any_training(tmp_path):
    output_dir = tmp_path / "run"
    api = RecordingHubApi(output_dir, fail_on="whoami")
    argv = tiny_argv(output_dir, max_steps=2, save_steps=1, push_to_hub=True, hub_model_id="someone/adamae-tiny")
    with pytest.raises(UserError, match=r"--push_to_hub to someone/adamae-tiny: no answer from the Hub at https"):
        pretrain(argv, RandomClipDataset(8), hub_api=api)
    assert api.calls == [("whoami", [])] and not list_checkpoints(output_dir)  # stopped before the first step

    reset_accelerate_state()
    api = RecordingHubApi(output_dir)
    pretrain(argv, RandomClipDataset(8), hub_api=api)
    assert [name for name, _ in api.calls] == ["whoami", "create_repo", "auth_check", "upload_folder"]
    assert api.calls[2][1] == [] and "checkpoint-2" in api.calls[3][1]  # checked before training, uploaded after


def test_a_failed_upload_loses_nothing_and_names_the_command_that_retries_it(tmp_path):
    output_dir = tmp_path / "run"
    api = RecordingHubApi(output_dir, fail_on="upload_folder")
    argv = tiny_argv(output_dir, max_steps=1, push_to_hub=True, hub_model_id="someone/adamae-tiny")
    with pytest.raises(UserError, match=r"Nothing is lost.*hf upload someone/adamae-tiny .*--exclude") as raised:
        pretrain(argv, RandomClipDataset(8), hub_api=api)
    assert str(output_dir.absolute()) in str(raised.value)
    for name in ("model.safetensors", "config.json", "preprocessor_config.json", "README.md", "run_arguments.json"):
        assert (output_dir / name).is_file(), name
    assert AdaMaeForPreTraining.from_pretrained(output_dir).config.num_patches == 64


def corrupt(path):
    path.write_bytes(path.read_bytes()[:40])


def test_a_broken_random_state_file_is_refused_and_a_deleted_one_resumes_with_a_warning(tmp_path, caplog):
    output_dir = tmp_path / "run"
    pretrain(tiny_argv(output_dir, max_steps=2, save_steps=2), RandomClipDataset(8))
    random_states = output_dir / "checkpoint-2" / "random_states_0.pkl"
    corrupt(random_states)
    reset_accelerate_state()
    resume = tiny_argv(output_dir, max_steps=3, resume_from_checkpoint="latest")
    with pytest.raises(UserError, match=rf"{random_states} cannot be read .*exact resume.*delete the file"):
        pretrain(resume, RandomClipDataset(8))

    random_states.unlink()
    reset_accelerate_state()
    with caplog.at_level("WARNING"):
        assert pretrain(resume, RandomClipDataset(8)).step == 3
    assert any(
        f"{random_states} is missing" in record.getMessage() and record.levelname == "WARNING"
        for record in caplog.records
    )


def test_a_log_file_gets_one_plain_line_per_log_step(tmp_path, caplog):
    # Under pytest stderr is not a terminal, as in a cluster job's log file.
    with caplog.at_level("INFO", logger="adamae_hf.pretrain_loop"):
        pretrain(tiny_argv(tmp_path / "run", max_steps=2), RandomClipDataset(8))
    lines = [record.getMessage() for record in caplog.records if record.getMessage().startswith("step ")]
    assert len(lines) == 2
    assert re.fullmatch(
        r"step 2/2: loss \d\.\d{4}, reconstruction \d\.\d{4}, sampling -?\d\.\d{3}e[-+]\d+, "
        r"lr \d\.\d{3}e[-+]\d+, \d+\.\d clips/s",
        lines[1],
    ), lines[1]


@pytest.mark.parametrize(
    "environ, expected",
    [
        (
            {"ACCELERATE_USE_CPU": "False", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"},
            ["asked for several processes (--num_processes > 1) but started only this one"],
        ),
        (
            {"ACCELERATE_USE_CPU": "False", "ACCELERATE_USE_FSDP": "true", "WORLD_SIZE": "1"},
            ["FSDP was requested (ACCELERATE_USE_FSDP) but the run uses NO on cpu"],
        ),
        ({"ACCELERATE_USE_CPU": "False"}, []),  # accelerate launch with one process
        ({"MASTER_ADDR": "node0", "MASTER_PORT": "1"}, []),  # a cluster's variables, without accelerate launch
    ],
)
def test_a_launch_that_asked_for_more_than_the_run_got_is_warned_about(environ, expected, caplog):
    from accelerate import PartialState

    with caplog.at_level("WARNING"):
        problems = warn_about_launch_mismatch(PartialState(cpu=True), environ)
    assert len(problems) == len(expected) and all(text in problem for text, problem in zip(expected, problems))
    assert [record.getMessage() for record in caplog.records] == problems


def test_config_file_values_are_checked_as_the_flags_are(tmp_path):
    config_file = tmp_path / "run.yaml"
    config_file.write_text("output_dir: o\nper_device_train_batch_size: abc\n")
    with pytest.raises(UserError, match=r"run.yaml: per_device_train_batch_size expects int, got 'abc'"):
        parse_pretraining_args(["--config", str(config_file)])
    config_file.write_text("output_dir: o\nsave_steps: 2.5\n")
    with pytest.raises(UserError, match=r"save_steps expects int, got 2.5"):
        parse_pretraining_args(["--config", str(config_file)])
    config_file.write_text("output_dir: o\nmask_type: blocks\n")
    with pytest.raises(UserError, match=r"mask_type must be one of \['adaptive', 'tube', 'random', 'frame'\], got"):
        parse_pretraining_args(["--config", str(config_file)])
    config_file.write_text("output_dir: o\nlearning_rate: 1.0e-3\ndataset_ids: [a, b]\nnorm_pix_loss: false\n")
    model_args, data_args, _, training_args = parse_pretraining_args(["--config", str(config_file)])
    assert (training_args.learning_rate, data_args.dataset_ids, model_args.norm_pix_loss) == (1e-3, ["a", "b"], False)
    with pytest.raises(UserError, match=r"--config: expected a YAML or JSON file of arguments, got '.*none.yaml'"):
        parse_pretraining_args(["--config", str(tmp_path / "none.yaml")])


def test_missing_index_folder_and_model_folder_are_named(tmp_path):
    missing = str(tmp_path / "missing")
    for flag in ("train_index", "train_index_file", "train_folder"):  # the old names are aliases
        _, data_args, clip_config, training_args = parse_pretraining_args(["--output_dir", "o", f"--{flag}", missing])
        with pytest.raises(ValueError, match=rf"--train_index: no such file or folder: '{missing}'"):
            build_train_dataset(data_args, clip_config, training_args, accelerator=None)
    model_args, _, clip_config, _ = parse_pretraining_args(["--output_dir", "o", "--model_name_or_path", missing])
    with pytest.raises(UserError, match=rf"--model_name_or_path: expected a model folder or a Hub id .*'{missing}'"):
        build_model_config(model_args, clip_config)


def test_a_run_started_by_accelerate_launch_without_multi_gpu_warns_that_it_is_alone(tmp_path, monkeypatch, caplog):
    # What `accelerate launch --num_processes 2 run_pretrain.py` leaves on a machine without GPUs: one process.
    for name, value in {"ACCELERATE_USE_CPU": "False", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29500"}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with caplog.at_level("WARNING"):
        pretrain(tiny_argv(tmp_path / "run", max_steps=1), RandomClipDataset(8))
    assert any("started only this one" in record.getMessage() for record in caplog.records)


def test_sampler_diagnostics_average_the_last_micro_batches_of_each_log_interval_in_eval_mode(tmp_path, monkeypatch):
    calls = []
    averaged = pretrain_loop.averaged_sampler_diagnostics

    def recording(model, batches, accelerator, seed):
        batches = list(batches)
        calls.append((seed, len(batches), model.training))
        values = averaged(model, batches, accelerator, seed)
        assert model.training  # it ran in eval mode and gave the training loop back its train mode
        return values

    monkeypatch.setattr(pretrain_loop, "averaged_sampler_diagnostics", recording)
    argv = tiny_argv(
        tmp_path / "run", max_steps=9, logging_steps=4, diagnostic_batches=3, gradient_accumulation_steps=2
    )
    result = pretrain(argv, RandomClipDataset(36))
    # logs at steps 1 (the first), 4, 8 and 9 (the last); 3 micro-batches = the last 2 steps' 4, capped at 3
    assert [(seed, count) for seed, count, _ in calls] == [(1, 2), (4, 3), (8, 3), (9, 2)]
    assert all(training for _, _, training in calls)  # called from the training loop, which then trains on
    log = read_scalar_log(tmp_path / "run" / "logs" / "scalars.jsonl")
    assert all(0 < record["sampler/entropy"] <= 1 for record in log)
    assert result.step == 9


def test_diagnostic_batches_are_kept_only_for_the_steps_that_end_at_a_log_step():
    kept = [step for step in range(1, 21) if collects_diagnostic_batch(step, 2, 0, 20, 5)]
    assert kept == [1, 4, 5, 9, 10, 14, 15, 19, 20]
    resumed = [step for step in range(8, 13) if collects_diagnostic_batch(step, 2, 7, 12, 5)]
    assert resumed == [8, 9, 10, 11, 12]  # the first step after the resume, and the last two
