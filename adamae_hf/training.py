"""Pieces of an Accelerate training loop (`run_pretrain.py`'s), independent of what is trained.

- `build_accelerator`: an `Accelerator` set up for these scripts (per-step schedules, trackers, CPU multi-process).
- `EpochShuffleSampler` and `EpochSeededDataset`: the data order and every item's augmentation are functions of
  (seed, epoch, index) only, so a run gives the same batches whatever the number of processes or workers, and a resumed
  run continues exactly where the interrupted one was.
- `compute_schedule`: steps per epoch, total and warmup steps, and the recipes' scaled learning rates.
- `NonFiniteLossGuard`: counts steps skipped for a non-finite loss and stops a run that keeps producing them;
  `step_unless` skips such an update on the device (fused AdamW's `found_inf`), with no host sync.
- `ScalarLog`: scalars to a JSON-lines file in the output folder and to Accelerate's trackers (tensorboard, ...).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator
from accelerate.utils import (
    DataLoaderConfiguration,
    GradientAccumulationPlugin,
    ProjectConfiguration,
    gather_object,
    is_tensorboard_available,
)
from torch.utils.data import Dataset, Sampler
from transformers.hf_argparser import string_to_bool
from transformers.utils import logging as transformers_logging

from .checkpoint import atomic_write_text
from .errors import UserError
from .optim import scaled_learning_rate


logger = logging.getLogger(__name__)

# Domain tags keep the seeds of different streams apart even when their keys coincide.
_SHUFFLE_STREAM, _ITEM_STREAM, _NOISE_STREAM = 1, 2, 3


def derived_seed(*keys: int) -> int:
    """A 63-bit seed that depends on every key (numpy's `SeedSequence` hash), e.g. of (seed, epoch, index)."""
    words = np.random.SeedSequence([int(key) for key in keys]).generate_state(2, dtype=np.uint32)
    return (int(words[0]) << 31) ^ int(words[1])


# ---------------------------------------------------------------------------------------------------------------------
# Accelerator


def tracker_names(report_to: str) -> list[str] | str:
    """`--report_to`: "auto" (tensorboard when installed), "none", "all", or tracker names separated by commas."""
    value = report_to.strip().lower()
    if value == "auto":
        return ["tensorboard"] if is_tensorboard_available() else []
    if value == "none":
        return []
    if value == "all":
        return "all"
    names = [name.strip() for name in value.split(",") if name.strip()]
    if "tensorboard" in names and not is_tensorboard_available():
        raise ValueError("--report_to tensorboard needs the tensorboard package (pip install tensorboard).")
    return names


def build_accelerator(
    output_dir: str | os.PathLike,
    mixed_precision: str | None = None,
    gradient_accumulation_steps: int = 1,
    report_to: str = "auto",
    use_cpu: bool = False,
) -> Accelerator:
    """An Accelerator for these scripts.

    - The learning-rate schedule is per optimizer step, whatever the number of processes
      (`step_scheduler_with_optimizer=False`: the loop calls `scheduler.step()` once per step).
    - Batches move to the device without blocking (`non_blocking=True`; the loaders pin memory), so copying the next
      batch overlaps the GPU's work instead of waiting for it.
    - Trackers log into `output_dir/logs`.
    - `mixed_precision=None` leaves the choice to `accelerate launch` / the accelerate config file.
    - Processes launched without any accelerator device (e.g. `torchrun` on CPU machines) run as CPU processes with the
      gloo backend; Accelerate would otherwise treat each as a separate single-process run.
    """
    launched_processes = int(os.environ.get("WORLD_SIZE", "1"))
    cpu = use_cpu or (launched_processes > 1 and not torch.accelerator.is_available())
    trackers = tracker_names(report_to)
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=mixed_precision,
        gradient_accumulation_plugin=GradientAccumulationPlugin(num_steps=gradient_accumulation_steps),
        log_with=trackers or None,
        project_config=ProjectConfiguration(project_dir=str(output_dir), logging_dir=str(Path(output_dir) / "logs")),
        step_scheduler_with_optimizer=False,
        dataloader_config=DataLoaderConfiguration(non_blocking=True),
    )
    if launched_processes > 1 and accelerator.num_processes != launched_processes:
        raise RuntimeError(
            f"{launched_processes} processes were launched (WORLD_SIZE) but Accelerate sees "
            f"{accelerator.num_processes}; check the launcher's device settings (`accelerate config`), or pass "
            "--use_cpu to train with CPU processes."
        )
    return accelerator


def quiet_library_output() -> None:
    """Silence what the libraries print on every run and a log file does not need: transformers' progress bars
    (loading weights, writing shards) and accelerate's INFO line per checkpoint file. Warnings still show."""
    transformers_logging.disable_progress_bar()
    logging.getLogger("accelerate").setLevel(logging.WARNING)


def launch_mismatches(state, environ: dict[str, str] | None = None) -> list[str]:
    """What the launch asked for and this run does not get, as sentences (empty when nothing), for `state` (an
    `Accelerator` or accelerate's `PartialState`/`AcceleratorState`) and the environment the launcher left:

    - `accelerate launch --num_processes N` (N > 1) without `--multi_gpu` on a machine without GPUs starts a single
      process; the launcher's only trace is `MASTER_ADDR`/`MASTER_PORT` (which it sets for N > 1) without
      `WORLD_SIZE` (which a multi-process launcher sets).
    - FSDP or DeepSpeed asked for (`ACCELERATE_USE_FSDP` / `ACCELERATE_USE_DEEPSPEED`, from `accelerate launch` or
      its config file) but not running: CPU processes fall back to plain data parallelism.
    """
    environ = os.environ if environ is None else environ
    problems = []
    launched_by_accelerate = "ACCELERATE_USE_CPU" in environ  # `accelerate launch` always sets it
    if (
        launched_by_accelerate
        and state.num_processes == 1
        and "WORLD_SIZE" not in environ
        and "MASTER_ADDR" in environ
        and "MASTER_PORT" in environ
    ):
        problems.append(
            "accelerate launch was asked for several processes (--num_processes > 1) but started only this one: "
            "without --multi_gpu (or a config file with a multi-process distributed_type) it runs a single "
            "process. Add --multi_gpu (it also starts CPU processes on a machine without GPUs)."
        )
    distributed_type = getattr(state, "distributed_type", "")
    distributed_type = str(getattr(distributed_type, "value", distributed_type))
    for variable, name in (("ACCELERATE_USE_FSDP", "FSDP"), ("ACCELERATE_USE_DEEPSPEED", "DEEPSPEED")):
        if string_to_bool(environ.get(variable, "false") or "false") and name not in distributed_type:
            problems.append(
                f"{name} was requested ({variable}) but the run uses {distributed_type} on {state.device}: every "
                "process holds the whole model (plain data parallelism); FSDP and DeepSpeed need GPUs."
            )
    return problems


def on_every_process(accelerator, check: Callable[[], Any]) -> Any:
    """`check()`'s result; when it raises a `UserError` on any process, the same `UserError` on every process.

    A check that one process makes (the Hub access on the main one) or that differs by process (each one's random
    state file) would otherwise stop that process alone, and the others would wait for it in their next collective
    until the launcher's timeout."""
    message, result = None, None
    try:
        result = check()
    except UserError as error:
        message = str(error)
    if accelerator.num_processes > 1:
        message = next((text for text in gather_object([message]) if text is not None), None)
    if message is not None:
        raise UserError(message)
    return result


def warn_about_launch_mismatch(state, environ: dict[str, str] | None = None) -> list[str]:
    """Log every `launch_mismatches` as a warning, once (on the main process); returns them."""
    problems = launch_mismatches(state, environ)
    if getattr(state, "is_main_process", True):
        for problem in problems:
            logger.warning(problem)
    return problems


def reset_accelerate_state() -> None:
    """Forget Accelerate's process-wide state, so that the next `Accelerator` starts clean: for several runs in one
    process (tests, benchmarks)."""
    from accelerate.state import AcceleratorState, GradientState, PartialState

    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    PartialState._reset_state()


# ---------------------------------------------------------------------------------------------------------------------
# Data order


class EpochShuffleSampler(Sampler[int]):
    """Shuffles the dataset once per epoch with a generator seeded by (seed, epoch), and keeps a whole number of
    optimizer steps of it.

    It yields `epoch * len(dataset) + index`, so the item's epoch travels with its index to the worker that loads it
    (see `EpochSeededDataset`); that works with persistent workers, which never see the main process's later state.
    Keeping `len(dataset) // items_per_step * items_per_step` items means every epoch ends on an optimizer step, with
    no partial gradient accumulation. Accelerate splits the batches between processes; the order is the same on all.
    """

    def __init__(self, num_items: int, items_per_step: int, seed: int):
        if num_items < items_per_step:
            raise ValueError(
                f"The training set has {num_items} videos but one optimizer step needs {items_per_step} (videos per "
                "device batch x processes x gradient accumulation steps); add videos or lower "
                "--per_device_train_batch_size / --gradient_accumulation_steps."
            )
        self.num_items = num_items
        self.items_per_step = items_per_step
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_items // self.items_per_step * self.items_per_step

    def __iter__(self):
        shuffle = torch.Generator().manual_seed(derived_seed(self.seed, _SHUFFLE_STREAM, self.epoch))
        order = torch.randperm(self.num_items, generator=shuffle)[: len(self)]
        return iter((order + self.epoch * self.num_items).tolist())


class EpochSeededDataset(Dataset):
    """Wraps a dataset whose items draw their randomness from torch's global CPU generator (as `VideoClipDataset`
    does) so that item `i` of epoch `e` always gets the same randomness: the generator is seeded from (seed, e, i) for
    the item and restored afterwards, leaving the training loop's random stream (dropout) untouched.

    Keys are `epoch * len(dataset) + index`, as `EpochShuffleSampler` yields them.
    """

    def __init__(self, dataset: Dataset, seed: int):
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int):
        epoch, index = divmod(int(key), len(self.dataset))
        # fork_rng restores only the CPU generator here, so only that one is seeded (torch.manual_seed would also
        # reseed the CUDA generators of an initialised CUDA context).
        with torch.random.fork_rng(devices=[]):
            torch.default_generator.manual_seed(derived_seed(self.seed, _ITEM_STREAM, epoch, index))
            return self.dataset[index]


def step_noise(
    seed: int, step: int, num_rows: int, num_columns: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """Uniform noise `(num_rows, num_columns)` that depends only on (seed, step), drawn on `device` with `generator`.

    Row r belongs to the r-th clip of the step's global batch, so every process slices out the rows of its own clips and
    a clip gets the same noise whatever the number of processes or accumulation steps.
    """
    generator.manual_seed(derived_seed(seed, _NOISE_STREAM, step))
    return torch.rand((num_rows, num_columns), generator=generator, device=device)


# ---------------------------------------------------------------------------------------------------------------------
# Schedule


@dataclass
class TrainingSchedule:
    """How long a run is and its learning rates, in optimizer steps."""

    steps_per_epoch: int | None  # None: a stream of unknown length
    total_steps: int
    warmup_steps: int
    global_batch_size: int  # clips per optimizer step, all processes and accumulation steps together
    videos_per_step: int
    learning_rate: float
    warmup_lr: float
    min_lr: float

    @property
    def num_epochs(self) -> float | None:
        return self.total_steps / self.steps_per_epoch if self.steps_per_epoch else None


def compute_schedule(
    num_videos: int | None,
    clips_per_device_batch: int,
    clips_per_video: int,
    num_processes: int,
    gradient_accumulation_steps: int,
    num_train_epochs: float,
    max_steps: int,
    warmup_epochs: float,
    warmup_steps: int | None,
    base_learning_rate: float,
    learning_rate: float | None,
    warmup_lr: float,
    min_lr: float,
) -> TrainingSchedule:
    """The run's schedule. `max_steps > 0` overrides `num_train_epochs`; `warmup_steps` (when not None) overrides
    `warmup_epochs`. The peak lr is `base_learning_rate x global batch / 256` with `warmup_lr` and `min_lr` scaled the
    same way (the recipes' rule), unless `learning_rate` gives the peak directly (then `warmup_lr` and `min_lr` are
    taken as they are). `num_videos=None` (a stream of unknown length) has no epochs: both lengths come in steps."""
    if clips_per_device_batch % clips_per_video:
        raise ValueError(
            f"per_device_train_batch_size ({clips_per_device_batch}) must be a multiple of the clips drawn per video "
            f"(num_sample = {clips_per_video})."
        )
    videos_per_step = clips_per_device_batch // clips_per_video * num_processes * gradient_accumulation_steps
    steps_per_epoch = None if num_videos is None else num_videos // videos_per_step
    if num_videos is None:
        check_stream_lengths(max_steps, warmup_steps)
    elif steps_per_epoch < 1:
        raise ValueError(
            f"The training set has {num_videos} videos but one optimizer step needs {videos_per_step} (videos per "
            f"device batch x {num_processes} processes x {gradient_accumulation_steps} accumulation steps)."
        )
    total_steps = max_steps if max_steps > 0 else math.ceil(num_train_epochs * steps_per_epoch)
    if total_steps < 1:
        raise ValueError(f"The run has no step: num_train_epochs={num_train_epochs}, max_steps={max_steps}.")
    warmup = warmup_steps if warmup_steps is not None else round(warmup_epochs * steps_per_epoch)
    if warmup > total_steps:
        logger.warning(f"Warmup ({warmup} steps) is longer than the run ({total_steps} steps); warming up throughout.")
        warmup = total_steps
    global_batch_size = clips_per_device_batch * num_processes * gradient_accumulation_steps
    if learning_rate is None:
        peak, warmup_lr, min_lr = (
            scaled_learning_rate(lr, global_batch_size) for lr in (base_learning_rate, warmup_lr, min_lr)
        )
    else:
        peak = learning_rate
    return TrainingSchedule(
        steps_per_epoch, total_steps, warmup, global_batch_size, videos_per_step, peak, warmup_lr, min_lr
    )


def check_stream_lengths(max_steps: int, warmup_steps: int | None) -> None:
    """A stream that does not say how many videos it holds has no epochs to count: the run and its warmup need
    their lengths in steps."""
    if max_steps <= 0:
        raise UserError(
            "--streaming: the stream does not say how many videos it holds, so the run's length must "
            "be given in optimizer steps: --max_steps N."
        )
    if warmup_steps is None:
        raise UserError(
            "--streaming: the stream does not say how many videos it holds, so the warmup must be given "
            "in optimizer steps: --warmup_steps N (--warmup_epochs counts epochs)."
        )


# ---------------------------------------------------------------------------------------------------------------------
# Non-finite losses


class NonFiniteLossError(RuntimeError):
    """Raised when too many consecutive steps had a non-finite loss."""


@dataclass
class NonFiniteLossGuard:
    """Counts optimizer steps skipped because the loss was NaN or infinite, and stops the run after
    `max_consecutive` of them in a row. `last_checkpoint` (kept up to date by the loop) goes into the stop message.

    `record` takes a host-side verdict. `record_later` takes the verdict as a device tensor and keeps it until `flush`
    reads every pending one back at once, so that a training step needs no host sync for it; the loop flushes at
    logging and save points, and the guard itself once `max_consecutive` verdicts are pending, so a streak is noticed
    at most that many steps late.
    """

    max_consecutive: int
    consecutive: int = 0
    total: int = 0
    last_checkpoint: str | None = None
    pending: list[tuple[int, torch.Tensor]] = dataclasses.field(default_factory=list, repr=False)

    def record(self, finite: bool, step: int) -> None:
        if finite:
            self.consecutive = 0
            return
        self.consecutive += 1
        self.total += 1
        logger.warning(
            f"Step {step}: the loss is not finite (NaN or inf); skipped the optimizer update "
            f"({self.consecutive} in a row, {self.total} in this run)."
        )
        if self.consecutive >= self.max_consecutive:
            checkpoint = self.last_checkpoint or "none was written"
            raise NonFiniteLossError(
                f"Stopped at step {step}: the loss was not finite for {self.consecutive} consecutive steps "
                f"(--max_nonfinite_steps {self.max_consecutive}). None of them updated the model, and the last "
                f"checkpoint ({checkpoint}) is intact. Lower the learning rate, train in bf16 rather than fp16, or "
                "check the data, then continue with --resume_from_checkpoint latest."
            )

    def record_later(self, nonfinite: torch.Tensor, step: int) -> None:
        """Keep `nonfinite` (a bool scalar tensor: the step was skipped) for the next `flush`."""
        self.pending.append((step, nonfinite.detach().reshape(())))
        if len(self.pending) >= self.max_consecutive:
            self.flush()

    def flush(self) -> None:
        """`record` every pending verdict, in step order, with one read back to the host."""
        if not self.pending:
            return
        steps = [step for step, _ in self.pending]
        verdicts = torch.stack([flag for _, flag in self.pending]).tolist()
        self.pending.clear()
        for step, nonfinite in zip(steps, verdicts):
            self.record(finite=not nonfinite, step=step)

    def state_dict(self) -> dict[str, int]:
        self.flush()
        return {"nonfinite_steps": self.total, "consecutive_nonfinite_steps": self.consecutive}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pending.clear()
        self.total = int(state.get("nonfinite_steps", 0))
        self.consecutive = int(state.get("consecutive_nonfinite_steps", 0))


def skips_updates_on_device(optimizer: torch.optim.Optimizer, device: torch.device | str | None = None) -> bool:
    """Whether `step_unless` can skip this optimizer's update without reading the verdict back to the host.

    torch's fused Adam/AdamW kernels read a `found_inf` tensor (the hook `GradScaler` uses) and leave the parameters,
    moments and step count untouched when it is 1. Not so for other optimizers (DeepSpeed's wrapper), nor when a
    `GradScaler` drives the step (fp16), since the scaler sets `found_inf` itself. With `device` (where the verdict
    lives), also not when a parameter lives elsewhere (FSDP's CPU offload): the kernel would read a copy of the verdict
    that may not have landed yet.
    """
    inner = getattr(optimizer, "optimizer", optimizer)  # under an Accelerate AcceleratedOptimizer
    fused_adam = isinstance(inner, (torch.optim.Adam, torch.optim.AdamW)) and bool(inner.defaults.get("fused"))
    if not fused_adam or getattr(optimizer, "scaler", None) is not None:
        return False
    if device is None:
        return True
    device = torch.device(device)
    return all(
        parameter.device.type == device.type and parameter.device.index in (None, device.index)
        for group in inner.param_groups
        for parameter in group["params"]
    )


def step_unless(optimizer: torch.optim.Optimizer, skip: torch.Tensor) -> None:
    """`optimizer.step()`, or no update at all where `skip` (a bool scalar tensor) is true, decided on the device:
    nothing is read back to the host. Needs `skips_updates_on_device(optimizer)`."""
    if not skips_updates_on_device(optimizer):
        raise ValueError(
            f"step_unless needs torch's fused Adam or AdamW without a GradScaler, got {type(optimizer).__name__}; "
            "decide on the host instead (`if not skip: optimizer.step()`)."
        )
    inner = getattr(optimizer, "optimizer", optimizer)
    inner.found_inf = skip.detach().to(torch.float32).reshape(())  # the kernels take a float 0/1 scalar
    try:
        optimizer.step()
    finally:
        del inner.found_inf


# ---------------------------------------------------------------------------------------------------------------------
# Scalar log


class ScalarLog:
    """Scalars of a run: one JSON object per logging step in `path` (always written, by the main process) and the
    same values to the Accelerate trackers. NaN values are written as null.

    When a run resumes from step `resume_step`, the records after that step (written by the interrupted run, and about
    to be produced again) are dropped first.
    """

    def __init__(self, accelerator: Accelerator, path: str | os.PathLike, resume_step: int | None = None):
        self.accelerator = accelerator
        self.path = Path(path)
        if accelerator.is_main_process:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            if resume_step is None:
                self.path.write_text("")
            elif self.path.exists():
                kept = [line for line in self.path.read_text().splitlines() if _record_step(line) <= resume_step]
                atomic_write_text(self.path, "".join(line + "\n" for line in kept))  # a crash keeps the history

    def log(self, values: dict[str, float], step: int) -> None:
        self.accelerator.log(values, step=step)
        if self.accelerator.is_main_process:
            record = {"step": step}
            for key, value in values.items():
                record[key] = None if isinstance(value, float) and not math.isfinite(value) else value
            with open(self.path, "a") as handle:
                handle.write(json.dumps(record) + "\n")


def _record_step(line: str) -> float:
    """The step of a log line; infinite for a blank line or one cut short by a crash, so that it is dropped."""
    try:
        return json.loads(line)["step"]
    except (json.JSONDecodeError, KeyError, TypeError):
        return math.inf


def read_scalar_log(path: str | os.PathLike) -> list[dict[str, Any]]:
    """The records of a `ScalarLog` file."""
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]


__all__ = [
    "EpochSeededDataset",
    "EpochShuffleSampler",
    "NonFiniteLossError",
    "NonFiniteLossGuard",
    "ScalarLog",
    "TrainingSchedule",
    "build_accelerator",
    "compute_schedule",
    "derived_seed",
    "launch_mismatches",
    "on_every_process",
    "quiet_library_output",
    "read_scalar_log",
    "reset_accelerate_state",
    "skips_updates_on_device",
    "step_noise",
    "step_unless",
    "tracker_names",
    "warn_about_launch_mismatch",
]
