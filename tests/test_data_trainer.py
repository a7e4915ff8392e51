"""The clip dataset and `collate_clips` in a plain `transformers.Trainer`, with its default
`remove_unused_columns=True` (which drops `video_index` from every item, since the model's `forward` does not take
it). The test body is the README's example."""

import math

import torch


def test_a_plain_trainer_trains_and_evaluates_on_video_clips(tmp_path):
    from transformers import Trainer, TrainingArguments

    from adamae_hf.data import VideoClipConfig, VideoClipDataset, collate_clips, generate_sample_videos
    from adamae_hf.data import index_from_file, label_maps
    from configuration_adamae import AdaMaeConfig
    from modeling_adamae import AdaMaeForVideoClassification

    folder = str(tmp_path)  # README: folder = tempfile.mkdtemp()
    generate_sample_videos(folder, num_videos=6, num_frames=16, height=48, width=64, index_file="index.csv")
    index = index_from_file(f"{folder}/index.csv")  # a datasets.Dataset: path, label (ClassLabel)
    id2label, label2id = label_maps(index)
    clips = VideoClipConfig(num_frames=8, sampling_rate=2, crop_size=32)
    config = AdaMaeConfig(image_size=32, patch_size=8, num_frames=8, tubelet_size=2, hidden_size=32,
                          num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          id2label=id2label, label2id=label2id)  # fmt: skip
    trainer = Trainer(
        model=AdaMaeForVideoClassification(config),
        args=TrainingArguments(f"{folder}/run", per_device_train_batch_size=2, max_steps=3, report_to="none",
                               use_cpu=True),  # fmt: skip
        train_dataset=VideoClipDataset(index, clips, train=True, seed=0),
        eval_dataset=VideoClipDataset(index, clips, train=False),
        data_collator=collate_clips,
    )
    train_output = trainer.train()
    metrics = trainer.evaluate()

    assert trainer.args.remove_unused_columns  # the Trainer's default, untouched
    assert math.isfinite(train_output.training_loss) and math.isfinite(metrics["eval_loss"])
    batch = next(iter(trainer.get_eval_dataloader()))
    assert set(batch) == {"pixel_values", "labels"}  # video_index was removed before collating
    assert batch["pixel_values"].shape == (6, 8, 3, 32, 32) and batch["labels"].dtype == torch.long
