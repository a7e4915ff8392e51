"""adamae_hf.finetuning: labels and indexes, start checkpoints, mixup / cutmix, layer-wise lr decay inside Trainer,
multi-view averaging and the predictions file."""

import json
import logging
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from transformers import EvalPrediction, VideoMAEForPreTraining
from transformers.utils import logging as transformers_logging

from adamae_hf.convert import UnknownHeadCountError, convert_authors_checkpoint
from adamae_hf.errors import UserError
from adamae_hf.finetuning import (
    DataArguments,
    FinetuningClipConfig,
    FinetuningTrainingArguments,
    MixupCutmix,
    ModelArguments,
    VideoClassificationTrainer,
    aggregate_views,
    build_compute_metrics,
    build_model,
    load_video_index,
    resolve_label_names,
    smoothed_one_hot,
    write_predictions,
)
from adamae_hf.optim import layer_id_for_vit, warmup_cosine_factor
from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification
from checkpoint_builders import authors_finetuned_state_dict, tiny_videomae_config  # the authors' layout, tiny
from tiny_configs import tiny_config


CLASSES = ["move_left", "move_right", "move_up"]


def tiny_clip_config(**overrides):
    return FinetuningClipConfig(**{"num_frames": 8, "crop_size": 32, "sampling_rate": 2, **overrides})


# --- labels and indexes ----------------------------------------------------------------------------------------------


def test_unknown_label_names_the_label_and_the_file_line(tmp_path):
    csv_index = tmp_path / "val.csv"
    csv_index.write_text("path,label\na.mp4,move_left\nb.mp4,jump\nc.mp4,move_up\n")
    with pytest.raises(ValueError, match=r"val\.csv:3: unknown label 'jump'.*classes come from the training index"):
        load_video_index(str(csv_index), label_names=CLASSES, label_source="the training index")
    jsonl_index = tmp_path / "val.jsonl"
    jsonl_index.write_text('{"path": "a.mp4", "label": "move_up"}\n\n{"path": "b.mp4", "label": "spin"}\n')
    with pytest.raises(ValueError, match=r"val\.jsonl:3: unknown label 'spin'"):
        load_video_index(str(jsonl_index), label_names=CLASSES)
    folder = tmp_path / "folder"
    for name in ("move_left", "roll"):
        (folder / name).mkdir(parents=True)
        (folder / name / "clip.mp4").write_bytes(b"")  # indexing lists files; it does not decode them
    (folder / ".ipynb_checkpoints").mkdir()  # a folder without videos is no class, known or not
    with pytest.raises(ValueError, match=r"folder/roll: unknown label 'roll'"):
        load_video_index(str(folder), label_names=CLASSES)
    (folder / "roll" / "clip.mp4").unlink()
    assert load_video_index(str(folder), label_names=CLASSES)["label"] == [0]
    # names and in-range ids are known, as index_from_file reads them
    csv_index.write_text("path,label\na.mp4,move_left\nb.mp4,2\n")
    assert load_video_index(str(csv_index), label_names=CLASSES)["label"] == [0, 2]


def test_a_folder_index_takes_the_ids_of_the_label_set(sample_videos, tmp_path):
    # a validation folder with only two of the three classes must keep the training ids
    for video in sample_videos:
        if video.label != "move_left":
            (tmp_path / video.label).mkdir(exist_ok=True)
            (tmp_path / video.label / os.path.basename(video.path)).symlink_to(video.path)
    index = load_video_index(str(tmp_path), label_names=CLASSES)
    assert index.features["label"].names == CLASSES
    assert sorted(index["label"]) == [1, 1, 2, 2]


def test_label_set_comes_from_names_then_training_index_then_checkpoint(sample_index_file):
    reordered = ["move_up", "move_left", "move_right"]
    assert resolve_label_names(DataArguments(class_names=["b", "a"]), reordered)[0] == ["b", "a"]
    names, source = resolve_label_names(DataArguments(train_index=sample_index_file), None)
    assert names == CLASSES and sample_index_file in source
    # a fine-tuned checkpoint with exactly the training classes keeps its order, so its head keeps its meaning
    assert resolve_label_names(DataArguments(train_index=sample_index_file), reordered)[0] == reordered
    assert resolve_label_names(DataArguments(validation_index=sample_index_file), reordered)[0] == reordered
    with pytest.raises(ValueError, match="No classes to fine-tune on"):
        resolve_label_names(DataArguments(), None)


def test_clip_config_has_the_recipe_defaults_and_only_one_view():
    config = tiny_clip_config()
    assert (config.train_crop, config.rand_augment, config.random_erasing_prob) == (
        "random_resized", "rand-m7-n4-mstd0.5-inc1", 0.25,
    )  # fmt: skip
    with pytest.raises(ValueError, match="--test_num_clips"):
        tiny_clip_config(num_clips=5)


# --- start checkpoints -----------------------------------------------------------------------------------------------


def test_model_from_an_adamae_pretraining_folder_gets_the_labels_and_recipe(tmp_path):
    pretraining = AdaMaeForPreTraining(tiny_config())
    pretraining.save_pretrained(tmp_path / "pretrained")
    model = build_model(ModelArguments(str(tmp_path / "pretrained")), CLASSES, tiny_clip_config())
    assert model.config.id2label == dict(enumerate(CLASSES)) and model.config.label2id["move_up"] == 2
    assert model.config.problem_type == "single_label_classification"  # soft targets -> soft cross-entropy
    assert model.config.drop_path_rate == 0.1
    torch.testing.assert_close(model.videomae.embeddings.patch_embeddings.projection.weight,
                               pretraining.videomae.embeddings.patch_embeddings.projection.weight)  # fmt: skip
    with pytest.raises(UserError, match=r"takes 8 frames of 32x32.*--num_frames 8 --crop_size 32"):
        build_model(ModelArguments(str(tmp_path / "pretrained")), CLASSES, tiny_clip_config(num_frames=16))


def test_head_size_mismatch_is_an_error_unless_told_to_reinitialise(tmp_path, caplog):
    AdaMaeForVideoClassification(tiny_config(num_labels=4)).save_pretrained(tmp_path / "four")
    with pytest.raises(ValueError, match=r"head for 4 classes but the data has 3.*--ignore_mismatched_sizes"):
        build_model(ModelArguments(str(tmp_path / "four")), CLASSES, tiny_clip_config())
    transformers_logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING):
            model = build_model(ModelArguments(str(tmp_path / "four"), ignore_mismatched_sizes=True), CLASSES,
                                tiny_clip_config())  # fmt: skip
    finally:
        transformers_logging.disable_propagation()
    assert model.classifier.out_features == 3
    assert [r.getMessage() for r in caplog.records if "re-initialised (shape mismatch): classifier" in r.getMessage()]


def test_model_from_an_authors_checkpoint_keeps_a_matching_head(tmp_path):
    torch.save({"model": authors_finetuned_state_dict(num_classes=3)}, tmp_path / "authors.pth")
    reference = convert_authors_checkpoint(tmp_path / "authors.pth", num_frames=8, image_size=32).eval()
    model = build_model(ModelArguments(str(tmp_path / "authors.pth")), CLASSES, tiny_clip_config()).eval()
    clip = torch.randn(1, 8, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(clip).logits, reference(clip).logits)
    assert model.config.id2label[2] == "move_up"


def test_an_authors_checkpoint_of_unknown_head_count_says_to_convert_it_first(tmp_path):
    torch.save({"model": authors_finetuned_state_dict(num_classes=3, width=128)}, tmp_path / "authors.pth")
    with pytest.raises(UnknownHeadCountError, match=r"128 wide.*convert it first with `adamae-convert authors .*"
                       r"--num_attention_heads N`"):  # fmt: skip
        build_model(ModelArguments(str(tmp_path / "authors.pth")), CLASSES, tiny_clip_config())


def test_model_from_a_videomae_checkpoint_keeps_its_encoder(tmp_path):
    videomae = VideoMAEForPreTraining(tiny_videomae_config(use_mean_pooling=False))
    videomae.save_pretrained(tmp_path / "videomae")
    model = build_model(ModelArguments(str(tmp_path / "videomae")), CLASSES, tiny_clip_config())
    torch.testing.assert_close(model.videomae.encoder.layer[1].output.dense.weight,
                               videomae.videomae.encoder.layer[1].output.dense.weight)  # fmt: skip
    assert model.classifier.out_features == 3


# --- mixup / cutmix / label smoothing --------------------------------------------------------------------------------


def batch(batch_size=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch_size, 4, 3, 16, 20, generator=generator), torch.tensor([0, 1, 2, 1][:batch_size])


def test_label_smoothing_alone_equals_torch_label_smoothing_cross_entropy():
    pixel_values, labels = batch()
    mixer = MixupCutmix(3, mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.1)
    mixed, targets = mixer(pixel_values, labels)
    assert mixed is pixel_values
    logits = torch.randn(4, 3)
    soft_loss = torch.sum(-targets * F.log_softmax(logits, dim=-1), dim=-1).mean()
    torch.testing.assert_close(soft_loss, F.cross_entropy(logits, labels, label_smoothing=0.1))
    torch.testing.assert_close(targets, smoothed_one_hot(labels, 3, 0.1))


def test_mixup_blends_each_clip_with_the_reversed_batch_and_its_targets_alike():
    pixel_values, labels = batch()
    mixer = MixupCutmix(3, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=0.0, label_smoothing=0.1)
    mixed, targets = mixer(pixel_values, labels, generator=torch.Generator().manual_seed(1))
    # recover lambda from one pixel of clip 0 and check every pixel and target with it
    first, last = pixel_values[0, 0, 0, 0, 0], pixel_values[3, 0, 0, 0, 0]
    lam = float((mixed[0, 0, 0, 0, 0] - last) / (first - last))
    assert 0.0 < lam < 1.0
    torch.testing.assert_close(mixed, lam * pixel_values + (1 - lam) * pixel_values.flip(0), rtol=1e-4, atol=1e-5)
    smoothed = smoothed_one_hot(labels, 3, 0.1)
    torch.testing.assert_close(targets, lam * smoothed + (1 - lam) * smoothed.flip(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(targets.sum(dim=1), torch.ones(4))


def test_cutmix_pastes_one_box_in_every_frame_and_weights_targets_by_its_area():
    pixel_values, labels = batch()
    mixer = MixupCutmix(3, mixup_alpha=0.8, cutmix_alpha=1.0, switch_prob=1.0, label_smoothing=0.0)
    for seed in range(5):
        mixed, targets = mixer(pixel_values, labels, generator=torch.Generator().manual_seed(seed))
        pasted = (mixed != pixel_values)[0]  # (T, C, H, W)
        assert (pasted == pasted[0, 0]).all()  # the same box in every frame and channel
        rows, cols = pasted[0, 0].any(dim=1).nonzero().flatten(), pasted[0, 0].any(dim=0).nonzero().flatten()
        if len(rows) == 0:
            torch.testing.assert_close(targets, F.one_hot(labels, 3).float())
            continue
        box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        assert pasted[0, 0][box].all()  # a rectangle
        torch.testing.assert_close(mixed[..., box[0], box[1]], pixel_values.flip(0)[..., box[0], box[1]])
        lam = 1.0 - pasted[0, 0].sum().item() / (16 * 20)
        one_hot = F.one_hot(labels, 3).float()
        torch.testing.assert_close(targets, lam * one_hot + (1 - lam) * one_hot.flip(0))


def test_no_mixing_when_the_batch_probability_is_zero():
    pixel_values, labels = batch()
    mixed, targets = MixupCutmix(3, prob=0.0, label_smoothing=0.0)(pixel_values, labels)
    assert mixed is pixel_values
    torch.testing.assert_close(targets, F.one_hot(labels, 3).float())


# --- layer-wise lr decay inside Trainer ------------------------------------------------------------------------------


def test_trainer_optimizer_has_layer_wise_lrs_and_its_schedule_keeps_them(tmp_path):
    model = AdaMaeForVideoClassification(tiny_config(num_labels=3))  # depth 2: layer ids 0 (embeddings) .. 3 (head)
    base, decay, depth = 1e-3, 0.75, 2
    args = FinetuningTrainingArguments(output_dir=str(tmp_path), learning_rate=base, max_steps=10, warmup_steps=2,
                                       use_cpu=True, report_to="none")  # fmt: skip
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
    args = FinetuningTrainingArguments(output_dir=str(tmp_path), learning_rate=1e-3, max_steps=12,
                                       per_device_train_batch_size=1, gradient_accumulation_steps=4, use_cpu=True,
                                       report_to="none")  # fmt: skip
    videos = [{"pixel_values": torch.zeros(1, 8, 3, 32, 32)} for _ in range(10)]
    trainer = VideoClassificationTrainer(model=model, args=args, train_dataset=videos, layer_decay=1.0,
                                         warmup_epochs=1, warmup_lr=1e-5, min_lr=2e-5)  # fmt: skip
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
        args = FinetuningTrainingArguments(**{"output_dir": str(tmp_path), "learning_rate": 1e-3, "max_steps": 4,
                                              "per_device_train_batch_size": 1, "use_cpu": True, "report_to": "none",
                                              **overrides})  # fmt: skip
        trainer = VideoClassificationTrainer(model=model, args=args, train_dataset=videos, layer_decay=1.0,
                                             warmup_epochs=warmup_epochs, warmup_lr=1e-6, min_lr=1e-6)  # fmt: skip
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="adamae_hf.finetuning"):
            trainer.create_optimizer_and_scheduler(num_training_steps=4)
        return caplog.text

    reached = 1e-3 * warmup_cosine_factor(3, 15, 4, 1e-3, 1e-6, 1e-6)  # the lr of the last step
    assert reached == pytest.approx(1e-6 + (1e-3 - 1e-6) * 3 / 14)
    assert (f"4 optimizer steps, 15 warmup steps from --warmup_epochs (5 epochs of 3 steps), so the learning rate "
            f"rises only to {reached:.3g}, never to its peak 0.001") in start()  # fmt: skip
    assert "ends before its warmup" not in start(warmup_epochs=1)  # 3 warmup steps of 4
    assert "4 optimizer steps, 10 warmup steps from --warmup_steps" in start(lr_scheduler_type="linear", warmup_steps=10)


# --- multi-view evaluation and predictions ---------------------------------------------------------------------------


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


def test_batches_are_pinned_only_where_an_accelerator_is(tmp_path):
    # pinning without an accelerator makes torch's DataLoader warn on every run
    args = FinetuningTrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    assert args.dataloader_pin_memory is torch.accelerator.is_available()
    assert FinetuningTrainingArguments(output_dir=str(tmp_path), dataloader_pin_memory=True).dataloader_pin_memory
