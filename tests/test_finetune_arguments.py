"""adamae_hf.finetune_arguments: the recipe's defaults, the parse from flags and files, and the clip settings
saved beside a model."""

import os

import pytest
import torch
import yaml

from adamae_hf.data import VideoClipConfig, save_clip_config
from adamae_hf.finetune_arguments import (
    FinetuningClipConfig,
    FinetuningTrainingArguments,
    parse_finetuning_args,
    saved_clip_geometry,
)


REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_arguments(argv):
    """run_finetune.py's five argument dataclasses from `argv`."""
    return parse_finetuning_args(argv)[0]


def tiny_clip_config(**overrides):
    return FinetuningClipConfig(**{"num_frames": 8, "crop_size": 32, "sampling_rate": 2, **overrides})


def test_clip_config_has_the_recipe_defaults_and_only_one_view():
    config = tiny_clip_config()
    assert (config.train_crop, config.rand_augment, config.random_erasing_prob) == (
        "random_resized",
        "rand-m7-n4-mstd0.5-inc1",
        0.25,
    )
    with pytest.raises(ValueError, match="--test_num_clips"):
        tiny_clip_config(num_clips=5)


def test_batches_are_pinned_only_where_an_accelerator_is(tmp_path):
    # pinning without an accelerator makes torch's DataLoader warn on every run
    args = FinetuningTrainingArguments(output_dir=str(tmp_path), use_cpu=True)
    assert args.dataloader_pin_memory is torch.accelerator.is_available()
    assert FinetuningTrainingArguments(output_dir=str(tmp_path), dataloader_pin_memory=True).dataloader_pin_memory


def test_a_hub_model_gives_its_clip_geometry_and_a_missing_file_gives_none(tmp_path, monkeypatch):
    from huggingface_hub.errors import EntryNotFoundError

    downloads = []

    def hub_download(repo_id, filename, revision=None, cache_dir=None, token=None):
        downloads.append((repo_id, filename, revision))
        if repo_id == "someone/no-clip-config":
            raise EntryNotFoundError(f"{filename} not in {repo_id}")
        return str(save_clip_config(tmp_path / "snapshot", VideoClipConfig(num_frames=8, sampling_rate=2)))

    monkeypatch.setattr("adamae_hf.finetune_arguments.hf_hub_download", hub_download)
    assert saved_clip_geometry("someone/adamae", model_revision="v1")["sampling_rate"] == 2
    assert saved_clip_geometry("someone/no-clip-config") == {}
    (tmp_path / "weights.pth").write_bytes(b"")
    assert saved_clip_geometry(str(tmp_path / "weights.pth")) == {}  # a checkpoint file: nothing to look for
    assert downloads == [
        ("someone/adamae", "clip_config.json", "v1"),
        ("someone/no-clip-config", "clip_config.json", None),
    ]


@pytest.mark.parametrize(
    "name, base_lr, epochs, test_clips, sampling",
    [
        ("finetune_k400.yaml", 1e-3, 100, 5, ("dense", 4, True)),
        ("finetune_ssv2.yaml", 5e-4, 50, 2, ("segment", 4, False)),
    ],
)
def test_example_configs_parse_with_the_recipe(name, base_lr, epochs, test_clips, sampling, tmp_path):
    path = os.path.join(REPO_ROOT, "configs", name)
    # through the script's own parser, with a flag on top (bf16 needs a GPU, or --use_cpu, to validate)
    model_args, data_args, recipe_args, clip_config, training_args = parse_arguments(
        ["--config", path, "--use_cpu", "--save_total_limit", "7"]
    )
    assert recipe_args.base_learning_rate == base_lr and isinstance(recipe_args.base_learning_rate, float)
    assert (training_args.num_train_epochs, recipe_args.warmup_epochs, training_args.save_total_limit) == (
        epochs,
        5,
        7,
    )
    assert (clip_config.sampling_mode, clip_config.sampling_rate, clip_config.horizontal_flip) == sampling
    assert (recipe_args.layer_decay, model_args.drop_path_rate) == (0.75, 0.1)
    assert training_args.label_smoothing_factor == 0.1 and training_args.bf16
    assert (recipe_args.mixup_alpha, recipe_args.cutmix_alpha, clip_config.random_erasing_prob) == (0.8, 1.0, 0.25)
    assert (training_args.adam_beta1, training_args.adam_beta2, training_args.weight_decay) == (0.9, 0.999, 0.05)
    assert data_args.test_num_crops == 3 and data_args.test_num_clips == test_clips
    assert training_args.learning_rate is None  # derived from base_learning_rate x clips per step / 256
    # the lone-file form reads a file the same way (YAML's 1e-3 is a string to PyYAML: argparse converts it)
    settings = {**yaml.safe_load(open(path)), "use_cpu": True}
    (tmp_path / "run.yaml").write_text(
        yaml.safe_dump(settings).replace(f"base_learning_rate: {base_lr}", "base_learning_rate: 1e-3")
    )
    assert parse_arguments([str(tmp_path / "run.yaml")])[2].base_learning_rate == 1e-3


def test_config_file_lists_and_dicts_reach_the_training_arguments_as_objects(tmp_path):
    # TrainingArguments declares these as strings (JSON on the command line); a file gives them as YAML objects
    config_file = tmp_path / "run.yaml"
    config_file.write_text(
        f"output_dir: {tmp_path / 'out'}\nmodel_name_or_path: {tmp_path}\ndo_eval: true\nreport_to: [tensorboard]\n"
        "lr_scheduler_kwargs: {min_lr: 1.0e-6}\n"
    )
    training_args = parse_arguments(["--config", str(config_file)])[-1]
    assert training_args.report_to == ["tensorboard"]
    assert training_args.lr_scheduler_kwargs == {"min_lr": 1e-6}
