"""`VideoClassificationTrainer`: `transformers.Trainer` for video classification with the fine-tuning recipe, and the
multi-view evaluation around it.

- the optimizer: AdamW with layer-wise lr decay (`adamae_hf.optim`), the recipe's per-step warmup + cosine schedule;
- mixup / cutmix / label smoothing in the training step (`adamae_hf.data.mixup`);
- `video_index` carried through evaluation, so that `aggregate_views` averages each video's views (the protocol of
  docs/method.md) and `build_compute_metrics` scores videos, not views; `write_predictions` writes one line per test
  video;
- `DatasetEpochCallback`: the training videos learn each epoch, which with the seed picks their augmentation;
- `skipped_video_total`: the undecodable videos a split skipped, over every process.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import EvalPrediction, SchedulerType, Trainer, TrainerCallback

from .data import VideoClipConfig, save_video_processor
from .data.mixup import MixupCutmix
from .metrics import load_video_accuracy
from .optim import build_adamw, warmup_cosine_factor, warmup_cosine_schedule


logger = logging.getLogger(__name__)

PREDICTIONS_TOP_K = 5


@dataclass
class VideoScores:
    """Per-video results of an evaluation: `video_ids` (V,) rows of the index, `probabilities` (V, K) softmax averaged
    over each video's views, `labels` (V,) (-100 where the index has none)."""

    video_ids: np.ndarray
    probabilities: np.ndarray
    labels: np.ndarray


def aggregate_views(logits: np.ndarray, labels: np.ndarray, video_index: np.ndarray) -> VideoScores:
    """Average the softmax of every view of a video: `(num_views, K)` logits with their labels and `video_index`
    -> one row per distinct video (sorted by index). A video whose item comes more than once (a distributed sampler's
    padding, a bad video replaced by its neighbour) has all its views each time, so averaging over the copies leaves
    it unchanged."""
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=1, keepdims=True)
    probabilities = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)  # (num_views, K)
    video_ids, inverse, counts = np.unique(np.asarray(video_index), return_inverse=True, return_counts=True)
    sums = np.zeros((len(video_ids), logits.shape[1]))
    np.add.at(sums, inverse, probabilities)
    video_labels = np.full(len(video_ids), -100, dtype=np.int64)
    video_labels[inverse] = np.asarray(labels)
    return VideoScores(video_ids=video_ids, probabilities=sums / counts[:, None], labels=video_labels)


def build_compute_metrics(metric=None) -> Callable[[EvalPrediction], dict[str, float]]:
    """`compute_metrics` for Trainer: groups views by `video_index`, averages their softmax and computes top-1, top-5
    and mean per-class accuracy with the package's `video_accuracy` metric (loaded offline by path). Expects
    `label_ids == (labels, video_index)`, as `VideoClassificationTrainer.prediction_step` returns them."""
    metric = metric if metric is not None else load_video_accuracy(keep_in_memory=True)

    def compute_metrics(eval_prediction: EvalPrediction) -> dict[str, float]:
        labels, video_index = eval_prediction.label_ids
        scores = aggregate_views(eval_prediction.predictions, labels, video_index)
        results = {"num_videos": int(len(scores.video_ids))}
        if (scores.labels >= 0).all():  # an unlabelled test index gives predictions only
            results.update(metric.compute(predictions=scores.probabilities, references=scores.labels))
        return results

    return compute_metrics


def write_predictions(
    path: str | os.PathLike,
    scores: VideoScores,
    video_paths: Sequence[str] | Mapping[int, str],
    id2label: dict[int, str],
    top_k: int = PREDICTIONS_TOP_K,
) -> str:
    """One JSON line per video: `path` (`video_paths[video_id]`: a list by row, or a stream's paths by key),
    `labels` and `scores` of the top-k classes (best first), and `label` (the true class) where the index has one."""
    top_k = min(top_k, scores.probabilities.shape[1])
    ranking = np.argsort(-scores.probabilities, axis=1, kind="stable")[:, :top_k]
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    partial = f"{path}.partial"  # renamed when complete: a crash never leaves a truncated predictions file
    with open(partial, "w") as handle:
        for row, video_id in enumerate(scores.video_ids):
            record = {
                "path": video_paths[int(video_id)],
                "labels": [id2label[int(i)] for i in ranking[row]],
                "scores": [round(float(scores.probabilities[row, i]), 6) for i in ranking[row]],
            }
            if scores.labels[row] >= 0:
                record["label"] = id2label[int(scores.labels[row])]
            handle.write(json.dumps(record) + "\n")
    os.replace(partial, path)
    return str(path)


class DatasetEpochCallback(TrainerCallback):
    """Tells the training dataset each epoch as it begins (`set_epoch`): with the seed, the epoch picks every clip's
    augmentation (and a stream's shuffle). accelerate forwards the epoch to the dataset only where no sampler takes
    it, which in a multi-process run one does: the clips would be the same every epoch."""

    def __init__(self, trainer: Trainer):
        self.trainer = trainer

    def on_epoch_begin(self, args, state, control, **kwargs):
        dataset = self.trainer.train_dataset
        if hasattr(dataset, "set_epoch"):
            # state.epoch: whole epochs done, plus the fraction of a resumed one
            dataset.set_epoch(math.floor((state.epoch or 0) + 1e-6))


class VideoClassificationTrainer(Trainer):
    """`Trainer` for `AdaMaeForVideoClassification` on batches of `VideoClipDataset` or `StreamingVideoClipDataset`
    (`adamae_hf.data.collate_clips`). A stream is read on the first process and its batches split between the
    processes (accelerate's default for an `IterableDataset`).

    - The optimizer is `adamae_hf.optim.build_adamw`: AdamW with the weight-decay exemptions and layer-wise lr decay;
      Trainer's scheduler multiplies every group's own lr, so the layer scales hold throughout.
    - In training steps the batch goes through `mixup` (mixup / cutmix / label smoothing -> soft targets); Trainer's
      own label smoother is off since `label_smoothing_factor` is folded into those targets.
    - Batches carry `video_index`; it is kept out of the model and returned beside the labels by `prediction_step`,
      so `compute_metrics` receives `label_ids == (labels, video_index)` and groups views per video.
    - Every save (the model, each checkpoint) also writes `clip_config` as `clip_config.json`, so that evaluating any
      of them samples clips as training did, the VideoMAE video and image processors set to the evaluation transform,
      and the Hub pipeline (`pipeline_adamae.py`, named in config.json's `custom_pipelines`) that scores a video as
      `--do_predict` does (`adamae_hf.data.save_video_processor`).
    """

    def __init__(
        self,
        *args,
        clip_config: VideoClipConfig | None = None,
        layer_decay: float | None = None,
        mixup: MixupCutmix | None = None,
        warmup_epochs: float = 0.0,
        warmup_lr: float = 0.0,
        min_lr: float = 0.0,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.warmup_epochs, self.warmup_lr, self.min_lr = warmup_epochs, warmup_lr, min_lr
        if self.args.remove_unused_columns:
            raise ValueError(
                "remove_unused_columns must be False: the batches' `video_index` groups each video's views."
            )
        if self.args.optim not in ("adamw_torch", "adamw_torch_fused"):
            raise ValueError(
                f"the fine-tuning optimizer is AdamW with layer-wise lr decay; --optim {self.args.optim} "
                "is not supported (use adamw_torch or adamw_torch_fused)."
            )
        self.clip_config = clip_config
        self.layer_decay = layer_decay
        self.mixup = mixup
        self.label_smoother = None
        self.add_callback(DatasetEpochCallback(self))

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:
        super()._save(output_dir, state_dict=state_dict)
        if self.clip_config is not None and self.args.should_save:
            # clip_config.json, the video and image processors and the Hub pipeline that scores as our evaluation
            save_video_processor(output_dir if output_dir is not None else self.args.output_dir, self.clip_config)

    def create_optimizer(self, model=None) -> torch.optim.Optimizer:
        if self.optimizer is None:
            self.optimizer = build_adamw(
                self.model if model is None else model,
                lr=self.args.learning_rate,
                weight_decay=self.args.weight_decay,
                betas=(self.args.adam_beta1, self.args.adam_beta2),
                layer_decay=None if self.layer_decay == 1 else self.layer_decay,
                eps=self.args.adam_epsilon,
                # Trainer logs the first group's lr: the head's (undecayed), not the embeddings' decay^(L+1) of it
                head_first=True,
            )
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        """With `lr_scheduler_type="cosine"`, the recipe's schedule (`adamae_hf.optim.warmup_cosine_schedule`): linear
        warmup from `warmup_lr` over `--warmup_steps` or `warmup_epochs` epochs, then cosine to `min_lr`, per step."""
        if self.lr_scheduler is not None:
            return self.lr_scheduler
        if SchedulerType(self.args.lr_scheduler_type) != SchedulerType.COSINE:
            warn_if_warmup_outlasts_training(
                self.args.get_warmup_steps(num_training_steps),
                num_training_steps,
                self.args.learning_rate,
                "--warmup_steps",
            )
            return super().create_scheduler(num_training_steps, optimizer)
        warmup_steps, option = self.args.warmup_steps, "--warmup_steps"
        if not warmup_steps:
            # Trainer's optimizer steps per epoch: the last, partial accumulation still steps.
            steps_per_epoch = max(
                math.ceil(len(self.get_train_dataloader()) / self.args.gradient_accumulation_steps), 1
            )
            warmup_steps = int(round(self.warmup_epochs * steps_per_epoch))
            option = f"--warmup_epochs ({self.warmup_epochs:g} epochs of {steps_per_epoch} steps)"
        peak = self.args.learning_rate
        last_lr = peak * warmup_cosine_factor(
            num_training_steps - 1, int(warmup_steps), num_training_steps, peak, self.warmup_lr, self.min_lr
        )
        warn_if_warmup_outlasts_training(int(warmup_steps), num_training_steps, peak, option, last_lr)
        self.lr_scheduler = warmup_cosine_schedule(
            self.optimizer if optimizer is None else optimizer,
            warmup_steps=int(warmup_steps),
            total_steps=num_training_steps,
            base_lr=self.args.learning_rate,
            warmup_lr=self.warmup_lr,
            min_lr=self.min_lr,
        )
        self._created_lr_scheduler = True
        return self.lr_scheduler

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        inputs = {key: value for key, value in inputs.items() if key != "video_index"}
        if model.training and self.mixup is not None and "labels" in inputs:
            inputs["pixel_values"], inputs["labels"] = self.mixup(inputs["pixel_values"], inputs["labels"])
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    def evaluation_loop(self, dataloader, *args, **kwargs):
        if isinstance(dataloader.dataset, torch.utils.data.IterableDataset):
            # A stream: accelerate reads it on the first process and splits each batch's rows (views) between the
            # processes, padding an uneven last batch with rows of the first; gather_for_metrics drops those rows.
            self.gather_function = self.accelerator.gather_for_metrics
        else:
            # A batch's rows are views, not videos: gather_for_metrics would cut the last batch to
            # len(dataset) % batch_size rows, scoring its videos from their first views only. Plain gather keeps
            # every row; the duplicate videos a distributed sampler pads with are whole items, all of their views,
            # and fold into their own (aggregate_views groups by video).
            self.gather_function = self.accelerator.gather
        return super().evaluation_loop(dataloader, *args, **kwargs)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        video_index = self._prepare_input(inputs["video_index"])
        model_inputs = {key: value for key, value in inputs.items() if key != "video_index"}
        loss, logits, labels = super().prediction_step(model, model_inputs, prediction_loss_only, ignore_keys)
        if prediction_loss_only:
            return loss, None, None
        if labels is None:  # an unlabelled test index
            labels = torch.full_like(video_index, -100)
        return loss, logits, (labels, video_index)


def warn_if_warmup_outlasts_training(
    warmup_steps: int, total_steps: int, peak_lr: float, option: str, last_lr: float | None = None
) -> bool:
    """Warn, at the start of training, when the run ends before its warmup does: the lr then never reaches its peak
    (a short run on a small set may train at a few 1e-6 and its loss never moves). Returns whether it warned."""
    if warmup_steps <= total_steps:
        return False
    last_lr = peak_lr * total_steps / warmup_steps if last_lr is None else last_lr
    logger.warning(
        f"This run ends before its warmup does: {total_steps} optimizer steps, {warmup_steps} warmup steps from "
        f"{option}, so the learning rate rises only to {last_lr:.3g}, never to its peak {peak_lr:.3g}. Shorten the "
        "warmup (--warmup_epochs / --warmup_steps) or train longer (--num_train_epochs / --max_steps)."
    )
    return True


def skipped_video_total(trainer: Trainer, dataset) -> int:
    """Skips of undecodable videos in `dataset` summed over every process (each counts those its own batches met).
    A collective: every process calls it."""
    count = torch.tensor([dataset.skipped.count], dtype=torch.long, device=trainer.accelerator.device)
    return int(trainer.accelerator.reduce(count, reduction="sum").item())


__all__ = [
    "VideoClassificationTrainer",
    "VideoScores",
    "aggregate_views",
    "build_compute_metrics",
    "skipped_video_total",
    "warn_if_warmup_outlasts_training",
    "write_predictions",
]
