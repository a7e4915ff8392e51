"""adamae_hf.video_trainer: layer-wise lr decay and the recipe's schedule inside Trainer, multi-view
averaging, the metrics and the predictions file."""

import json
import logging

import numpy as np
import pytest
import torch
from tiny_configs import tiny_config
from transformers import EvalPrediction

from adamae_hf.data import collate_clips
from adamae_hf.finetune_arguments import FinetuningTrainingArguments
from adamae_hf.optim import layer_id_for_vit, warmup_cosine_factor
from adamae_hf.video_trainer import (
    VideoClassificationTrainer,
    aggregate_views,
    build_compute_metrics,
    write_predictions,
)
from modeling_adamae import AdaMaeForVideoClassification


def test_trainer_optimizer_has_layer_wise_lrs_and_its_schedule_keeps_them(tmp_path):
    model = AdaMaeForVideoClassification(tiny_config(num_labels=3))  # depth 2: layer ids 0 (embeddings) .. 3 (head)
    base, decay, depth = 1e-3, 0.75, 2
    args = FinetuningTrainingArguments(
        output_dir=str(tmp_path), learning_rate=base, max_steps=10, warmup_steps=2, use_cpu=True, report_to="none"
    )
    trainer = VideoClassificationTrainer(model=model, args=args, layer_decay=decay)
    trainer.create_optimizer_and_scheduler(num_training_steps=10)
    names = {id(p): n for n, p in model.named_parameters()}
    seen = set()
    for group, initial_lr in zip(trainer.optimizer.param_groups, trainer.lr_scheduler.base_lrs):
        for parameter in group["params"]:
            name = names[id(parameter)]
            expected = base * decay ** (depth + 1 - layer_id_for_vit(name, depth))
            assert initial_lr == pytest.approx(expected), name
            assert group["weight_decay"] == (0.0 if parameter.ndim <= 1 else 0.05), name
            seen.add(name)
    assert seen == set(names.values())
    assert trainer.lr_scheduler.base_lrs[0] == pytest.approx(base)  # the logged lr is the head's
    for _ in range(5):  # into the cosine part: every group follows the same curve times its own scale
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    groups, initial_lrs = trainer.optimizer.param_groups, trainer.lr_scheduler.base_lrs
    ratios = [group["lr"] / initial for group, initial in zip(groups, initial_lrs)]
    assert 0 < ratios[0] < 1 and ratios == pytest.approx([ratios[0]] * len(ratios))


def test_recipe_schedule_warms_up_for_whole_epochs_of_optimizer_steps_then_follows_the_reference_cosine(tmp_path):
    # 10 batches of 1 video with 4 accumulated per step: Trainer takes ceil(10 / 4) = 3 optimizer steps an epoch
    model = AdaMaeForVideoClassification(tiny_config(num_labels=3))
    args = FinetuningTrainingArguments(
        output_dir=str(tmp_path),
        learning_rate=1e-3,
        max_steps=12,
        per_device_train_batch_size=1,
        gradient_accumulation_steps=4,
        use_cpu=True,
        report_to="none",
    )
    videos = [{"pixel_values": torch.zeros(1, 8, 3, 32, 32)} for _ in range(10)]
    trainer = VideoClassificationTrainer(
        model=model, args=args, train_dataset=videos, layer_decay=1.0, warmup_epochs=1, warmup_lr=1e-5, min_lr=2e-5
    )
    trainer.create_optimizer_and_scheduler(num_training_steps=12)
    observed = []
    for _ in range(12):
        observed.append(trainer.optimizer.param_groups[0]["lr"])
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    expected = [1e-3 * warmup_cosine_factor(step, 3, 12, 1e-3, 1e-5, 2e-5) for step in range(12)]
    assert observed == pytest.approx(expected)
    assert observed[0] == pytest.approx(1e-5) and observed[2] == pytest.approx(1e-3)  # warmup: 3 steps, linear


def test_a_run_that_ends_before_its_warmup_is_warned_about_when_training_starts(tmp_path, caplog):
    # 3 batches of 1 video: 3 optimizer steps an epoch, so 5 warmup epochs are 15 steps, more than the run's 4
    model = AdaMaeForVideoClassification(tiny_config(num_labels=3))
    videos = [{"pixel_values": torch.zeros(1, 8, 3, 32, 32)} for _ in range(3)]

    def start(warmup_epochs=5.0, **overrides):
        args = FinetuningTrainingArguments(
            **{
                "output_dir": str(tmp_path),
                "learning_rate": 1e-3,
                "max_steps": 4,
                "per_device_train_batch_size": 1,
                "use_cpu": True,
                "report_to": "none",
                **overrides,
            }
        )
        trainer = VideoClassificationTrainer(
            model=model,
            args=args,
            train_dataset=videos,
            layer_decay=1.0,
            warmup_epochs=warmup_epochs,
            warmup_lr=1e-6,
            min_lr=1e-6,
        )
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="adamae_hf.video_trainer"):
            trainer.create_optimizer_and_scheduler(num_training_steps=4)
        return caplog.text

    reached = 1e-3 * warmup_cosine_factor(3, 15, 4, 1e-3, 1e-6, 1e-6)  # the lr of the last step
    assert reached == pytest.approx(1e-6 + (1e-3 - 1e-6) * 3 / 14)
    assert (
        f"4 optimizer steps, 15 warmup steps from --warmup_epochs (5 epochs of 3 steps), so the learning rate "
        f"rises only to {reached:.3g}, never to its peak 0.001"
    ) in start()
    assert "ends before its warmup" not in start(warmup_epochs=1)  # 3 warmup steps of 4
    assert "4 optimizer steps, 10 warmup steps from --warmup_steps" in start(
        lr_scheduler_type="linear", warmup_steps=10
    )


def test_multi_view_averaging_equals_a_manual_computation(tmp_path):
    rng = np.random.default_rng(0)
    num_classes, views = 4, 6
    video_index = np.repeat([3, 0, 7], views)  # the views of three videos, in no particular order
    rng.shuffle(video_index)
    video_labels = {3: 2, 0: 1, 7: 0}
    labels = np.array([video_labels[v] for v in video_index])
    logits = rng.normal(scale=3.0, size=(len(video_index), num_classes))
    manual_logits, manual_index = logits, video_index
    # a distributed sampler's padding repeats a whole item, i.e. all the views of a video: nothing may change
    repeated = video_index == 7
    logits = np.vstack([logits, logits[repeated]])
    labels, video_index = np.append(labels, labels[repeated]), np.append(video_index, video_index[repeated])

    scores = aggregate_views(logits, labels, video_index)
    assert scores.video_ids.tolist() == [0, 3, 7]
    for row, video in enumerate([0, 3, 7]):
        views_of_video = manual_logits[manual_index == video]
        manual = np.mean([np.exp(v) / np.exp(v).sum() for v in views_of_video], axis=0)
        np.testing.assert_allclose(scores.probabilities[row], manual, rtol=1e-12)
        assert scores.labels[row] == video_labels[video]

    metrics = build_compute_metrics()(EvalPrediction(predictions=logits, label_ids=(labels, video_index)))
    correct = [scores.probabilities[row].argmax() == scores.labels[row] for row in range(3)]
    assert metrics["num_videos"] == 3 and metrics["top1_accuracy"] == pytest.approx(np.mean(correct))
    assert metrics["top5_accuracy"] == 1.0 and "mean_class_accuracy" in metrics

    paths = [f"video_{i}.mp4" for i in range(8)]
    path = write_predictions(tmp_path / "predictions.jsonl", scores, paths, dict(enumerate("abcd")), top_k=3)
    records = [json.loads(line) for line in open(path)]
    assert [r["path"] for r in records] == ["video_0.mp4", "video_3.mp4", "video_7.mp4"]
    for record, probabilities, label in zip(records, scores.probabilities, scores.labels):
        order = np.argsort(-probabilities)[:3]
        assert record["labels"] == ["abcd"[i] for i in order]
        assert record["scores"] == pytest.approx(probabilities[order], abs=1e-6)
        assert record["label"] == "abcd"[label]


def test_unlabelled_test_videos_give_predictions_without_metrics():
    logits = np.random.default_rng(1).normal(size=(4, 3))
    metrics = build_compute_metrics()(
        EvalPrediction(predictions=logits, label_ids=(np.full(4, -100), np.array([0, 0, 1, 1])))
    )
    assert metrics == {"num_videos": 2}


class EpochRecordingVideos(torch.utils.data.Dataset):
    """Four videos of blank clips that record the epoch each item was read in."""

    def __init__(self):
        self.epoch, self.read_in = 0, []

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return 4

    def __getitem__(self, index):
        self.read_in.append(self.epoch)
        return {
            "pixel_values": torch.zeros(1, 8, 3, 32, 32),
            "labels": torch.zeros(1, dtype=torch.long),
            "video_index": torch.full((1,), index),
        }


def test_the_training_videos_learn_each_epoch_even_where_accelerate_does_not_say_it(tmp_path, monkeypatch):
    # accelerate's multi-process loader gives the epoch to its sampler, not to the dataset: mimic it on one process
    monkeypatch.setattr("accelerate.data_loader.DataLoaderShard.set_epoch", lambda loader, epoch: None)
    videos = EpochRecordingVideos()
    args = FinetuningTrainingArguments(
        output_dir=str(tmp_path),
        learning_rate=1e-3,
        num_train_epochs=3,
        per_device_train_batch_size=2,
        use_cpu=True,
        report_to="none",
        save_strategy="no",
        disable_tqdm=True,
    )
    trainer = VideoClassificationTrainer(
        model=AdaMaeForVideoClassification(tiny_config(num_labels=3)),
        args=args,
        train_dataset=videos,
        data_collator=collate_clips,
        layer_decay=1.0,
    )
    trainer.train()
    assert videos.read_in == [0] * 4 + [1] * 4 + [2] * 4
