"""adamae_hf.finetune_model: the classifier from each kind of start checkpoint."""

import logging

import pytest
import torch
from checkpoint_builders import authors_finetuned_state_dict, tiny_videomae_config  # the authors' layout, tiny
from tiny_configs import tiny_config
from transformers import VideoMAEForPreTraining
from transformers.utils import logging as transformers_logging

from adamae_hf.convert import UnknownHeadCountError, convert_authors_checkpoint
from adamae_hf.errors import UserError
from adamae_hf.finetune_arguments import FinetuningClipConfig, ModelArguments
from adamae_hf.finetune_model import build_model
from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification


CLASSES = ["move_left", "move_right", "move_up"]


def tiny_clip_config(**overrides):
    return FinetuningClipConfig(**{"num_frames": 8, "crop_size": 32, "sampling_rate": 2, **overrides})


def test_model_from_an_adamae_pretraining_folder_gets_the_labels_and_recipe(tmp_path):
    pretraining = AdaMaeForPreTraining(tiny_config())
    pretraining.save_pretrained(tmp_path / "pretrained")
    model = build_model(ModelArguments(str(tmp_path / "pretrained")), CLASSES, tiny_clip_config())
    assert model.config.id2label == dict(enumerate(CLASSES)) and model.config.label2id["move_up"] == 2
    assert model.config.problem_type == "single_label_classification"  # soft targets -> soft cross-entropy
    assert model.config.drop_path_rate == 0.1
    torch.testing.assert_close(
        model.videomae.embeddings.patch_embeddings.projection.weight,
        pretraining.videomae.embeddings.patch_embeddings.projection.weight,
    )
    with pytest.raises(UserError, match=r"takes 8 frames of 32x32.*--num_frames 8 --crop_size 32"):
        build_model(ModelArguments(str(tmp_path / "pretrained")), CLASSES, tiny_clip_config(num_frames=16))


def test_head_size_mismatch_is_an_error_unless_told_to_reinitialise(tmp_path, caplog):
    AdaMaeForVideoClassification(tiny_config(num_labels=4)).save_pretrained(tmp_path / "four")
    with pytest.raises(ValueError, match=r"head for 4 classes but the data has 3.*--ignore_mismatched_sizes"):
        build_model(ModelArguments(str(tmp_path / "four")), CLASSES, tiny_clip_config())
    transformers_logging.enable_propagation()
    try:
        with caplog.at_level(logging.WARNING):
            model = build_model(
                ModelArguments(str(tmp_path / "four"), ignore_mismatched_sizes=True), CLASSES, tiny_clip_config()
            )
    finally:
        transformers_logging.disable_propagation()
    assert model.classifier.out_features == 3
    # transformers' own load report says so (the model's one-line summary of it went with issue 13's model rework)
    messages = [record.getMessage() for record in caplog.records]
    assert any("classifier.weight" in message and "Reinit due to size mismatch" in message for message in messages)


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
    with pytest.raises(
        UnknownHeadCountError,
        match=r"128 wide.*convert it first with `adamae-convert authors .*"
        r"--num_attention_heads N`",
    ):
        build_model(ModelArguments(str(tmp_path / "authors.pth")), CLASSES, tiny_clip_config())


def test_model_from_a_videomae_checkpoint_keeps_its_encoder(tmp_path):
    videomae = VideoMAEForPreTraining(tiny_videomae_config(use_mean_pooling=False))
    videomae.save_pretrained(tmp_path / "videomae")
    model = build_model(ModelArguments(str(tmp_path / "videomae")), CLASSES, tiny_clip_config())
    torch.testing.assert_close(
        model.videomae.encoder.layer[1].output.dense.weight, videomae.videomae.encoder.layer[1].output.dense.weight
    )
    assert model.classifier.out_features == 3
