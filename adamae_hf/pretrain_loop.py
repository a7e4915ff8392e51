"""The pretraining loop: optimizer steps of an `Accelerator`-prepared AdaMAE, each one a few micro-batches.

`PretrainingLoop.run(start_step)` trains up to the schedule's last step. Per micro-batch (`train_micro_batch`): the
step's masking noise (a function of (seed, step)), the forward and backward pass, the losses summed on the device.
Per optimizer step (`finish_step`): the update, skipped for a non-finite loss; then, when due, a log line with the
sampler diagnostics (`log`), a crash-safe checkpoint (`save`), a mask figure (`draw_figure`).

A step reads nothing back to the host, so the CPU can queue the next step's kernels while the GPU runs this one:
with fused AdamW the update of a step with a non-finite loss is skipped on the device (`step_unless`), and the losses
and verdicts stay there until a logging or save step (or `--max_nonfinite_steps` verdicts are pending). Otherwise
(fp16's loss scaler, parameters offloaded to the CPU) the verdict is read back once per step. Under DeepSpeed the
engine steps inside `backward`, so the skip does not apply there (its fp16 scaler skips overflows).
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch
from accelerate.utils import DistributedType
from tqdm.auto import tqdm

from .checkpoint import save_checkpoint
from .data import SkippedVideos, VideoClipConfig, normalize
from .diagnostics import averaged_sampler_diagnostics
from .mask_figure import write_mask_figure
from .pretrain_arguments import PretrainingArguments
from .training import NonFiniteLossGuard, ScalarLog, TrainingSchedule, skips_updates_on_device, step_noise, step_unless


logger = logging.getLogger(__name__)


class TrainBatches(Protocol):
    """Where the loop's micro-batches come from (`adamae_hf.pretrain_data`: `ShuffledEpochs`, `StreamEpochs`)."""

    epoch: int  # the epoch being read

    def epoch_batches(self, step: int) -> Iterable[dict[str, torch.Tensor]]:
        """The rest of the current epoch's micro-batches, after `step` optimizer steps."""

    def checkpoint_state(self) -> dict[str, Any]:
        """What a checkpoint needs, besides the step, to continue from the same batch."""


class IntervalLosses:
    """Sums of the losses of a logging interval's finite forward passes, kept on the device (no host sync per
    step) and reduced over every process when logged."""

    NAMES = ("loss", "reconstruction_loss", "sampling_loss")

    def __init__(self, device: torch.device):
        self.sums = {name: torch.zeros((), dtype=torch.float64, device=device) for name in self.NAMES}
        self.finite_passes = torch.zeros((), dtype=torch.float64, device=device)

    def add(self, losses: dict[str, torch.Tensor], finite: torch.Tensor) -> None:
        for name, value in losses.items():
            self.sums[name] += torch.where(finite, value.detach().double(), 0.0)
        self.finite_passes += finite.double()

    def reduce(self, accelerator, skipped_videos: int) -> dict[str, float]:
        """The means over every process's finite passes (NaN where none was finite), the skipped-video total, and
        the sums set back to zero."""
        values = torch.stack([*self.sums.values(), self.finite_passes, self.finite_passes.new_tensor(skipped_videos)])
        if accelerator.num_processes > 1:
            values = accelerator.reduce(values, reduction="sum")
        *sums, count, skipped_total = values.tolist()
        for tensor in (*self.sums.values(), self.finite_passes):
            tensor.zero_()
        means = {name: total / count if count else math.nan for name, total in zip(self.NAMES, sums)}
        return {**means, "skipped_videos": int(skipped_total)}


@dataclass
class PretrainingLoop:
    """Optimizer steps `start_step + 1 ... schedule.total_steps` (see the module docstring). `run` returns the last
    logged scalars (with "step")."""

    accelerator: Any
    model: torch.nn.Module  # as `accelerator.prepare` returned it
    optimizer: Any
    scheduler: Any
    batches: TrainBatches
    schedule: TrainingSchedule
    args: PretrainingArguments
    clip_config: VideoClipConfig
    guard: NonFiniteLossGuard
    scalar_log: ScalarLog

    def __post_init__(self):
        accelerator = self.accelerator
        self.device = accelerator.device
        self.unwrapped = accelerator.unwrap_model(self.model)
        self.adaptive = self.unwrapped.config.mask_type == "adaptive"
        self.skip_on_device = skips_updates_on_device(self.optimizer, self.device)
        self.noise_generator = torch.Generator(device=self.device)
        # The sampler diagnostics' forward passes: through the wrapper only where the in-memory model is sharded (a
        # compiled model would otherwise compile a second, eval-mode graph).
        sharded = accelerator.distributed_type in (DistributedType.FSDP, DistributedType.DEEPSPEED)
        self.diagnostic_model = self.model
        if not sharded:
            self.diagnostic_model = accelerator.unwrap_model(self.model, keep_torch_compile=False)
        self.diagnostic_steps = math.ceil(self.args.diagnostic_batches / self.args.gradient_accumulation_steps)
        self.recent_batches: deque[torch.Tensor] = deque(maxlen=self.args.diagnostic_batches)
        self.figures_every = self.args.visualize_steps if accelerator.is_main_process else 0
        if self.figures_every and sharded:
            # The in-memory model is sharded: only the end of the run, from the saved folder, can draw it.
            logger.warning("--visualize_steps is skipped under FSDP/DeepSpeed; masks.gif is still written at the end.")
            self.figures_every = 0
        self.interval = IntervalLosses(self.device)

    # -----------------------------------------------------------------------------------------------------------------
    # The epochs

    def run(
        self, start_step: int, figure_video: str | None = None, skipped_videos: SkippedVideos | None = None
    ) -> dict[str, float]:
        """Train from `start_step` on; `figure_video`: the video of the `--visualize_steps` figures; `skipped_videos`:
        the data's counter of videos that could not be decoded, for the log."""
        self.figure_video, self.skipped_videos = figure_video, skipped_videos
        self.start_step = self.step = start_step
        self.last_logged: dict[str, float] = {"step": start_step}
        self.grad_norm = None
        self.save_due = False
        self.interval_batches, self.interval_start = 0, time.perf_counter()
        # A progress bar in a terminal; in a log file (a cluster job's output) one plain line per logging step.
        self.interactive = sys.stderr.isatty()
        self.progress = tqdm(
            total=self.schedule.total_steps,
            initial=start_step,
            desc="pretraining",
            unit="step",
            disable=not (self.accelerator.is_local_main_process and self.interactive),
            dynamic_ncols=True,
        )
        self.model.train()
        # Once here and after each update, never at an epoch's start: a stream's epoch can end inside a step.
        self.start_optimizer_step()
        try:
            while self.step < self.schedule.total_steps:
                self.train_epoch()
        finally:
            self.progress.close()
        return self.last_logged

    def train_epoch(self) -> None:
        """The rest of the current epoch (all of it, or what a resume left), or up to the last step."""
        for batch in self.batches.epoch_batches(self.step):
            self.train_micro_batch(batch)
            if self.accelerator.sync_gradients:
                self.finish_step()
                if self.step >= self.schedule.total_steps:
                    break

    def start_optimizer_step(self) -> None:
        self.batch_in_step = 0
        self.step_nonfinite = torch.zeros((), dtype=torch.bool, device=self.device)

    # -----------------------------------------------------------------------------------------------------------------
    # A step

    def train_micro_batch(self, batch: dict[str, torch.Tensor]) -> None:
        """Forward and backward pass of one micro-batch; the update after the step's last one."""
        args, accelerator = self.args, self.accelerator
        clips_per_batch = args.per_device_train_batch_size
        if self.batch_in_step == 0:
            self.noise = step_noise(
                args.seed,
                self.step,
                self.schedule.global_batch_size,
                self.unwrapped.config.num_patches,
                self.noise_generator,
                self.device,
            )
        # Accelerate gives process r the batches r, r + world_size, ... of the global order.
        first_row = (self.batch_in_step * accelerator.num_processes + accelerator.process_index) * clips_per_batch
        pixel_values = batch["pixel_values"]  # (B, T, C, H, W)
        if pixel_values.dtype == torch.uint8:  # --normalize_on_device
            pixel_values = normalize(pixel_values, self.clip_config.image_mean, self.clip_config.image_std)
        with accelerator.accumulate(self.model):
            outputs = self.model(pixel_values=pixel_values, noise=self.noise[first_row : first_row + clips_per_batch])
            finite = torch.isfinite(outputs.loss.detach())
            self.step_nonfinite |= ~finite
            sampling_loss = outputs.sampling_loss if self.adaptive else torch.zeros((), device=self.device)
            losses = {
                "loss": outputs.loss,
                "reconstruction_loss": outputs.reconstruction_loss,
                "sampling_loss": sampling_loss,
            }
            self.interval.add(losses, finite)
            accelerator.backward(outputs.loss)
            if accelerator.sync_gradients:
                self.update_unless_nonfinite()
        if collects_diagnostic_batch(
            self.step + 1, self.diagnostic_steps, self.start_step, self.schedule.total_steps, args.logging_steps
        ):
            # kept only for the few steps before a log step, as they came (uint8 under --normalize_on_device: a
            # quarter of the memory of the normalised clips)
            self.recent_batches.append(batch["pixel_values"])
        self.interval_batches += 1
        self.batch_in_step += 1

    def update_unless_nonfinite(self) -> None:
        """Clip and apply the step's update, unless a loss of this step was NaN or infinite on any process; then
        zero the gradients. `self.grad_norm` stays that of the last real update.

        On the device (`skip_on_device`): fused AdamW decides from the tensor and the guard reads it back later.
        Otherwise it is read back now, and a skipped step is not even clipped: under fp16, clipping unscales the
        gradients, which only an optimizer step resets."""
        accelerator, max_grad_norm, step = self.accelerator, self.args.max_grad_norm, self.step + 1
        nonfinite = self.step_nonfinite
        if accelerator.num_processes > 1:  # every process skips if any must: the gradients are averaged over all
            nonfinite = accelerator.reduce(nonfinite.float(), reduction="sum") > 0
        if self.skip_on_device:
            if max_grad_norm:
                norm = accelerator.clip_grad_norm_(self.model.parameters(), max_grad_norm)
                self.grad_norm = norm if self.grad_norm is None else torch.where(nonfinite, self.grad_norm, norm)
            step_unless(self.optimizer, nonfinite)
            self.guard.record_later(nonfinite, step=step)
        else:
            skip = bool(nonfinite.item())
            if not skip:
                if max_grad_norm:
                    self.grad_norm = accelerator.clip_grad_norm_(self.model.parameters(), max_grad_norm)
                self.optimizer.step()
            self.guard.record(finite=not skip, step=step)
        self.optimizer.zero_grad(set_to_none=True)

    def finish_step(self) -> None:
        """After an optimizer step (or a skipped one): the schedule, then what is due at this step."""
        learning_rate = self.scheduler.get_last_lr()[0]
        self.scheduler.step()  # per step, skipped or not: lr stays a function of the step alone
        self.step += 1
        self.start_optimizer_step()
        self.progress.update(1)
        step, total_steps = self.step, self.schedule.total_steps
        if step % self.args.logging_steps == 0 or step == total_steps or step == self.start_step + 1:
            self.log(learning_rate)
        # A checkpoint only after a real update: during a non-finite streak `latest` stays on the last good one,
        # and a save point that falls in the streak is kept at its first finite step.
        self.save_due |= step % self.args.save_steps == 0 or step == total_steps
        if self.save_due:
            self.guard.flush()
            if self.guard.consecutive == 0:
                self.save()
        if self.figure_video and self.figures_every and step % self.figures_every == 0:
            figures = Path(self.args.output_dir) / "visualizations"
            write_mask_figure(self.unwrapped, self.figure_video, figures / f"masks-step-{step}.gif", self.clip_config)

    # -----------------------------------------------------------------------------------------------------------------
    # Logging and saving

    def log(self, learning_rate: float) -> None:
        """The interval's scalars: to the scalar log and trackers, and the progress bar or a log line."""
        self.guard.flush()
        skipped = self.skipped_videos.count if self.skipped_videos is not None else 0
        values = self.interval.reduce(self.accelerator, skipped)
        # the interval ends here, so the logging below counts into the next one: clips/s is wall-clock
        now = time.perf_counter()
        elapsed, self.interval_start = now - self.interval_start, now
        clips = self.interval_batches * self.args.per_device_train_batch_size * self.accelerator.num_processes
        self.interval_batches = 0
        steps_per_epoch = self.schedule.steps_per_epoch
        record = {
            "epoch": self.step / steps_per_epoch if steps_per_epoch else self.batches.epoch,  # a stream: its count
            "loss": values["loss"],
            "reconstruction_loss": values["reconstruction_loss"],
            "lr": learning_rate,
            "clips_per_second": clips / max(elapsed, 1e-9),
            "nonfinite_steps": self.guard.total,
            "skipped_videos": values["skipped_videos"],
        }
        if self.adaptive:
            record["sampling_loss"] = values["sampling_loss"]
        if self.grad_norm is not None:
            record["grad_norm"] = float(self.grad_norm)
        record.update(self.sampler_diagnostics())
        self.scalar_log.log(record, step=self.step)
        self.show(record)
        self.last_logged = {"step": self.step, **record}

    def sampler_diagnostics(self) -> dict[str, float]:
        """Every process runs its recent micro-batches again and the values pool over all of them."""
        mean, std = self.clip_config.image_mean, self.clip_config.image_std
        normalized = (
            normalize(clips, mean, std) if clips.dtype == torch.uint8 else clips for clips in self.recent_batches
        )
        values = averaged_sampler_diagnostics(self.diagnostic_model, normalized, self.accelerator, self.step)
        self.recent_batches.clear()
        return values

    def show(self, record: dict[str, float]) -> None:
        if self.interactive:
            self.progress.set_postfix(
                loss=f"{record['loss']:.4f}",
                rec=f"{record['reconstruction_loss']:.4f}",
                samp=f"{record.get('sampling_loss', 0.0):.2e}",
                lr=f"{record['lr']:.2e}",
                clips_s=f"{record['clips_per_second']:.1f}",
                refresh=False,
            )
        elif self.accelerator.is_main_process:
            logger.info(log_line(self.step, self.schedule.total_steps, record))

    def save(self) -> None:
        self.save_due = False
        state = {
            "epoch": self.batches.epoch,
            "steps_per_epoch": self.schedule.steps_per_epoch,
            "total_steps": self.schedule.total_steps,
            "global_batch_size": self.schedule.global_batch_size,
            "num_processes": self.accelerator.num_processes,
            "seed": self.args.seed,
            **self.batches.checkpoint_state(),
            **self.guard.state_dict(),
        }
        path = save_checkpoint(
            self.accelerator, self.args.output_dir, self.step, state, save_total_limit=self.args.save_total_limit
        )
        self.guard.last_checkpoint = str(path)


def log_line(step: int, total_steps: int, record: dict[str, float]) -> str:
    """One plain line of a logging step, for a log file: step, losses, lr, throughput (and the counters when not 0)."""
    parts = [f"loss {record['loss']:.4f}", f"reconstruction {record['reconstruction_loss']:.4f}"]
    if "sampling_loss" in record:
        parts.append(f"sampling {record['sampling_loss']:.3e}")
    parts += [f"lr {record['lr']:.3e}", f"{record['clips_per_second']:.1f} clips/s"]
    if record.get("nonfinite_steps"):
        parts.append(f"{record['nonfinite_steps']} non-finite steps")
    if record.get("skipped_videos"):
        parts.append(f"{record['skipped_videos']} skipped videos")
    return f"step {step}/{total_steps}: " + ", ".join(parts)


def collects_diagnostic_batch(
    upcoming_step: int, diagnostic_steps: int, start_step: int, total_steps: int, logging_steps: int
) -> bool:
    """Whether a micro-batch of optimizer step `upcoming_step` is kept for the sampler diagnostics: it is one of the
    `diagnostic_steps` steps that end at a logging step (every `logging_steps`-th, the first after `start_step`, the
    last)."""
    return (
        upcoming_step == start_step + 1
        or upcoming_step > total_steps - diagnostic_steps
        or -upcoming_step % logging_steps < diagnostic_steps
    )


__all__ = ["IntervalLosses", "PretrainingLoop", "TrainBatches", "collects_diagnostic_batch", "log_line"]
