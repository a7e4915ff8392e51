"""run_finetune.py end to end on generated videos of 3 motion classes: training through Trainer, single-view
validation, multi-view testing and predictions, the published folder (model, processor, card), the stock VideoMAE
export, `pipeline("video-classification")` from a fresh process without the project, and an evaluation-only run."""

import json
import logging
import os
import re
import shutil
import subprocess
import textwrap
from pathlib import Path

import datasets
import pytest
import torch
import transformers
from huggingface_hub import ModelCard
from tar_shards import write_tar_shards
from tiny_configs import tiny_config
from transformers import AutoImageProcessor, VideoMAEForVideoClassification, pipeline
from two_processes import two_process_command
from without_project import run_without_project

import run_finetune
from adamae_hf.data import CLIP_CONFIG_NAME, VideoClipConfig, load_eval_clip, save_clip_config
from adamae_hf.errors import UserError, run_cli
from adamae_hf.finetune_arguments import FinetuningTrainingArguments, parse_finetuning_args
from adamae_hf.finetune_run import configure_logging
from adamae_hf.hub import FINETUNING_UPLOAD_IGNORE, retry_upload_command
from modeling_adamae import AdaMaeForPreTraining, AdaMaeForVideoClassification


REPO_ROOT = Path(__file__).resolve().parents[1]
CLASSES = ["move_left", "move_right", "move_up"]
METRICS = ("top1_accuracy", "top5_accuracy", "mean_class_accuracy")
TINY_CLIPS = ["--num_frames", "8", "--sampling_rate", "2", "--crop_size", "32", "--report_to", "none", "--use_cpu"]


def parse_arguments(argv):
    """run_finetune.py's five argument dataclasses from `argv`."""
    return parse_finetuning_args(argv)[0]


@pytest.fixture(scope="module")
def finetuned(tmp_path_factory, sample_index_file):
    """One tiny fine-tuning run: 4 steps of 3 videos x 2 repeated samples, with mixup / cutmix, RandAugment and random
    erasing on; validation and a 2 clips x 3 crops test on the same 6 videos; the VideoMAE export."""
    root = tmp_path_factory.mktemp("finetune")
    AdaMaeForPreTraining(tiny_config()).save_pretrained(root / "pretrained")
    output_dir = root / "finetuned"
    metrics = run_finetune.main(
        [
            "--model_name_or_path",
            str(root / "pretrained"),
            "--train_index",
            sample_index_file,
            "--validation_index",
            sample_index_file,
            "--output_dir",
            str(output_dir),
            "--do_train",
            "--do_eval",
            "--do_predict",
            "--max_steps",
            "4",
            "--per_device_train_batch_size",
            "3",
            "--num_sample",
            "2",
            "--per_device_eval_batch_size",
            "2",
            "--test_num_clips",
            "2",
            "--test_num_crops",
            "3",
            "--base_learning_rate",
            "1e-3",
            "--warmup_epochs",
            "1",
            "--seed",
            "0",
            "--export_videomae",
            "--dataset_card_name",
            "motion toy",
            *TINY_CLIPS,
        ]
    )
    return output_dir, metrics


def test_finetuning_runs_end_to_end_and_reports_both_evaluations(finetuned):
    output_dir, metrics = finetuned
    assert metrics["train_loss"] > 0 and metrics["train_skipped_videos"] == 0
    saved = json.loads((output_dir / "all_results.json").read_text())
    for prefix in ("eval", "test"):  # single-view validation and multi-view test, reported separately
        for name in METRICS:
            assert 0.0 <= metrics[f"{prefix}_{name}"] <= 1.0
            assert saved[f"{prefix}_{name}"] == metrics[f"{prefix}_{name}"]
        assert metrics[f"{prefix}_num_videos"] == 6
    assert metrics["eval_top5_accuracy"] == 1.0  # 3 classes


def test_the_output_folder_loads_with_its_labels_and_processor(finetuned):
    output_dir, _ = finetuned
    model = AdaMaeForVideoClassification.from_pretrained(output_dir)
    assert [model.config.id2label[i] for i in range(3)] == CLASSES
    assert model.config.problem_type == "single_label_classification"
    for name in (
        "model.safetensors",
        "config.json",
        "modeling_adamae.py",
        "configuration_adamae.py",
        "README.md",
        "preprocessor_config.json",
        "video_preprocessor_config.json",
        "pipeline_adamae.py",
    ):
        assert (output_dir / name).is_file(), name
    # the Hub pipeline that scores as --do_predict does, in the model folder and in every checkpoint
    assert "custom_pipelines" in json.loads((output_dir / "config.json").read_text())
    for checkpoint in output_dir.glob("checkpoint-*"):
        assert {"pipeline_adamae.py", "video_preprocessor_config.json"} <= {path.name for path in checkpoint.iterdir()}
    processor = AutoImageProcessor.from_pretrained(output_dir)
    assert (processor.crop_size["height"], processor.crop_size["width"]) == (32, 32)
    assert list(processor.image_mean) == [0.485, 0.456, 0.406]


def test_predictions_file_has_each_test_video_with_its_top_labels(finetuned, sample_videos):
    output_dir, _ = finetuned
    records = [json.loads(line) for line in (output_dir / "predictions.jsonl").read_text().splitlines()]
    assert sorted(r["path"] for r in records) == sorted(v.path for v in sample_videos)
    expected_labels = {v.path: v.label for v in sample_videos}
    for record in records:
        assert sorted(record["labels"]) == CLASSES  # top-5 of 3 classes: all of them, best first
        assert record["scores"] == sorted(record["scores"], reverse=True)
        assert sum(record["scores"]) == pytest.approx(1.0, abs=1e-5)
        assert record["label"] == expected_labels[record["path"]]


def test_model_card_parses_back_with_the_metrics(finetuned):
    output_dir, metrics = finetuned
    card = ModelCard.load(output_dir / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "video-classification"
    assert "adamae" in card.data.tags
    results = {r.metric_name: r.metric_value for r in card.data.eval_results}
    assert results == pytest.approx({name: metrics[f"test_{name}"] for name in METRICS})
    assert all(r.dataset_name == "motion toy" for r in card.data.eval_results)
    assert "2 clips x 3 crops per video" in card.text and "top1_accuracy (1 view)" in card.text
    assert "| layer-wise lr decay | 0.75 |" in card.text and "| mixup / cutmix | 0.8 / 1.0 |" in card.text


def test_videomae_export_gives_equal_logits_with_plain_transformers(finetuned, sample_videos):
    output_dir, _ = finetuned
    export = output_dir / "videomae"
    assert "auto_map" not in json.loads((export / "config.json").read_text())
    assert not list(export.glob("*.py"))
    videomae = VideoMAEForVideoClassification.from_pretrained(export).eval()
    ours = AdaMaeForVideoClassification.from_pretrained(output_dir).eval()
    clip = load_eval_clip(sample_videos[0].path, num_frames=8, sampling_rate=2, crop_size=32)[None]
    with torch.no_grad():
        torch.testing.assert_close(videomae(clip).logits, ours(clip).logits, rtol=1e-4, atol=1e-5)
    assert videomae.config.id2label == ours.config.id2label
    predictions = pipeline("video-classification", model=str(export))(sample_videos[0].path)
    assert {p["label"] for p in predictions} == set(CLASSES)


CARD_USAGE_SCRIPT = textwrap.dedent(
    """
    import re, sys

    # Run the model card's usage code as written (this folder holds the video.mp4 it names).
    card = open(sys.argv[1]).read()
    usage = card[card.index("## Usage") : card.index("## Architecture")]
    blocks = re.findall(r"```python\\n(.*?)```", usage, flags=re.S)
    assert len(blocks) == 2, blocks
    pipeline_scope, processor_scope = {}, {}
    exec(blocks[0], pipeline_scope)
    exec(blocks[1], processor_scope)

    classes = set(sys.argv[2].split(","))
    classifier = pipeline_scope["classifier"]
    assert type(classifier).__name__ == "AdaMaeVideoClassificationPipeline", type(classifier)  # the folder's own
    assert type(classifier.model).__module__.startswith("transformers_modules"), type(classifier.model).__module__
    predictions = classifier("video.mp4", top_k=5)
    assert len(predictions) == len(classes) and {p["label"] for p in predictions} == classes, predictions
    assert abs(sum(p["score"] for p in predictions) - 1) < 1e-5, predictions
    model, probabilities = processor_scope["model"], processor_scope["probabilities"]
    assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
    assert probabilities.shape == (len(classes),) and abs(float(probabilities.sum()) - 1) < 1e-5
    print("CARD USAGE OK")
    """
)


def test_card_usage_code_and_pipeline_work_in_a_fresh_process_without_the_project(finetuned, sample_videos, tmp_path):
    output_dir, _ = finetuned
    shutil.copy(sample_videos[0].path, tmp_path / "video.mp4")
    result = run_without_project(CARD_USAGE_SCRIPT, [output_dir / "README.md", ",".join(CLASSES)], tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "CARD USAGE OK" in result.stdout


def test_evaluation_only_run_reuses_the_checkpoint_labels_skips_bad_videos_and_pushes(
    finetuned, sample_videos, tmp_path, hub, caplog, monkeypatch
):
    output_dir, metrics = finetuned
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    index = tmp_path / "with_a_broken_video.csv"
    rows = [f"{v.path},{v.label}" for v in sample_videos]
    rows.insert(3, f"{tmp_path / 'broken.mp4'},move_up")
    index.write_text("path,label\n" + "\n".join(rows) + "\n")
    caplog.set_level(logging.INFO)
    # what `accelerate launch --num_processes 2` without --multi_gpu leaves on a CPU machine: one process runs
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29500")
    evaluation = run_finetune.main(
        [
            "--model_name_or_path",
            str(output_dir),
            "--validation_index",
            str(index),
            "--output_dir",
            str(tmp_path / "evaluated"),
            "--do_eval",
            "--do_predict",
            "--per_device_eval_batch_size",
            "3",
            "--test_num_clips",
            "2",
            "--test_num_crops",
            "3",
            "--push_to_hub",
            "--hub_model_id",
            "someone/adamae-tiny",
            "--report_to",
            "none",
            "--use_cpu",  # frames, stride and crop: from the folder's clip_config.json
        ]
    )
    # The broken file is skipped and counted; its item is filled by the next video, whose views are grouped with that
    # video's own, so the same model on the same 6 videos gives the same results.
    for prefix in ("eval", "test"):
        assert evaluation[f"{prefix}_skipped_videos"] == 1 and evaluation[f"{prefix}_num_videos"] == 6
        for name in METRICS:
            assert evaluation[f"{prefix}_{name}"] == pytest.approx(metrics[f"{prefix}_{name}"])
    predicted = [json.loads(line)["path"] for line in (tmp_path / "evaluated" / "predictions.jsonl").open()]
    assert sorted(predicted) == sorted(v.path for v in sample_videos)
    # The Hub was asked first (token, repo, write access), and at the end got the folder as it is on disk.
    assert [path for _, path in hub.requests][:3] == [
        "/api/whoami-v2",
        "/api/repos/create",
        "/api/models/someone/adamae-tiny/auth-check/write",
    ]
    assert "--push_to_hub: someone/adamae-tiny is writable" in caplog.text  # our INFO lines show by default
    assert "accelerate launch was asked for several processes" in caplog.text  # the launch warning
    local = {path.name: path.read_bytes() for path in (tmp_path / "evaluated").iterdir() if path.is_file()}
    assert hub.uploaded("someone/adamae-tiny") == local
    assert {"README.md", "model.safetensors", "config.json", CLIP_CONFIG_NAME} <= set(local)
    card = ModelCard.load(tmp_path / "evaluated" / "README.md")
    assert 'pipeline("video-classification", model="someone/adamae-tiny"' in card.text
    assert card.data.model_name == "adamae-tiny"


def test_skipped_videos_are_counted_over_every_process(finetuned, sample_videos, tmp_path):
    # Two gloo processes evaluate one video per batch, alternating: the broken file (row 3) is rank 1's, so a count
    # from rank 0 alone would be 0.
    output_dir, _ = finetuned
    (tmp_path / "broken.mp4").write_bytes(b"not a video")
    rows = [f"{v.path},{v.label}" for v in sample_videos]
    rows.insert(3, f"{tmp_path / 'broken.mp4'},move_up")
    (tmp_path / "index.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    command = two_process_command(
        str(REPO_ROOT / "run_finetune.py"),
        "--model_name_or_path",
        str(output_dir),
        "--validation_index",
        str(tmp_path / "index.csv"),
        "--output_dir",
        str(tmp_path / "ddp"),
        "--do_eval",
        "--per_device_eval_batch_size",
        "1",
        "--ddp_backend",
        "gloo",
        "--report_to",
        "none",
        "--use_cpu",
    )
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert completed.returncode == 0, completed.stderr[-3000:]
    results = json.loads((tmp_path / "ddp" / "eval_results.json").read_text())
    assert results["eval_skipped_videos"] == 1


def test_a_model_folder_carries_its_clip_geometry_for_the_next_run(finetuned, tmp_path):
    output_dir, _ = finetuned
    saved = json.loads((output_dir / "clip_config.json").read_text())
    assert (saved["num_frames"], saved["sampling_rate"], saved["crop_size"]) == (8, 2, 32)
    checkpoints = sorted(output_dir.glob("checkpoint-*"))
    assert checkpoints and all((checkpoint / "clip_config.json").is_file() for checkpoint in checkpoints)
    from_folder = parse_arguments(["--model_name_or_path", str(output_dir), "--output_dir", "out"])[3]
    assert (from_folder.num_frames, from_folder.sampling_rate, from_folder.crop_size) == (8, 2, 32)
    assert from_folder.rand_augment == "rand-m7-n4-mstd0.5-inc1"  # augmentation is not geometry: the recipe's default
    # a config file and flags still win, in that order
    (tmp_path / "run.yaml").write_text(f"model_name_or_path: {output_dir}\nsampling_rate: 3\n")
    from_file = parse_arguments(["--config", str(tmp_path / "run.yaml"), "--output_dir", "out"])[3]
    assert (from_file.num_frames, from_file.sampling_rate) == (8, 3)
    flagged = parse_arguments(["--config", str(tmp_path / "run.yaml"), "--output_dir", "out", "--sampling_rate", "4"])[
        3
    ]
    assert flagged.sampling_rate == 4
    # a clash between a flag and a saved value names where the saved one came from
    save_clip_config(tmp_path / "model", VideoClipConfig(crop_size=32, short_side_size=36))
    with pytest.raises(
        ValueError, match=r"crop_size must be <= short_side_size .*clip_config.json: .*short_side_size"
    ):
        parse_arguments(["--model_name_or_path", str(tmp_path / "model"), "--output_dir", "out", "--crop_size", "64"])


def test_unknown_validation_label_stops_the_run_naming_label_and_line(finetuned, sample_index_file, tmp_path):
    bad_index = tmp_path / "val.csv"
    rows = open(sample_index_file).read().splitlines()
    rows[4] = re.sub(r",[^,]+$", ",jump", rows[4])
    bad_index.write_text("\n".join(rows) + "\n")  # line 5 of the file now has an unknown label
    output_dir, _ = finetuned
    with pytest.raises(UserError, match=r"--validation_index: .*val\.csv:5: unknown label 'jump'"):
        run_finetune.main(
            [
                "--model_name_or_path",
                str(output_dir),
                "--validation_index",
                str(bad_index),
                "--data_root",
                os.path.dirname(sample_index_file),
                "--output_dir",
                str(tmp_path / "out"),
                "--do_eval",
                *TINY_CLIPS,
            ]
        )


# --- other sources: a datasets folder with string labels, tar shards streamed --------------------------------------


def test_a_datasets_folder_with_a_video_column_and_string_labels_evaluates_as_its_csv_index(
    finetuned, sample_videos, tmp_path
):
    output_dir, metrics = finetuned
    videos = datasets.Dataset.from_dict(
        {"clip": [v.path for v in sample_videos], "action": [v.label for v in sample_videos]}
    ).cast_column("clip", datasets.Video(decode=False))
    videos.save_to_disk(tmp_path / "videos")
    evaluation = run_finetune.main(
        [
            "--model_name_or_path",
            str(output_dir),
            "--validation_index",
            str(tmp_path / "videos"),
            "--video_column",
            "clip",
            "--label_column",
            "action",
            "--output_dir",
            str(tmp_path / "out"),
            "--do_eval",
            "--do_predict",
            "--test_num_clips",
            "2",
            "--test_num_crops",
            "3",
            "--report_to",
            "none",
            "--use_cpu",
        ]
    )
    for prefix in ("eval", "test"):
        assert evaluation[f"{prefix}_num_videos"] == 6
        for name in METRICS:
            assert evaluation[f"{prefix}_{name}"] == pytest.approx(metrics[f"{prefix}_{name}"])


def test_a_stream_of_tar_shards_evaluates_as_the_index_and_trains_for_max_steps(finetuned, sample_videos, tmp_path):
    output_dir, metrics = finetuned
    shards = write_tar_shards(tmp_path / "shards", sample_videos)
    # evaluation of the fine-tuned model, streamed: the same results as from the index; its classes (the stream's
    # labels are names) come from the checkpoint
    evaluation = run_finetune.main(
        [
            "--model_name_or_path",
            str(output_dir),
            "--validation_index",
            str(shards),
            "--streaming",
            "--output_dir",
            str(tmp_path / "evaluated"),
            "--do_eval",
            "--do_predict",
            "--per_device_eval_batch_size",
            "4",
            "--test_num_clips",
            "2",
            "--test_num_crops",
            "3",
            "--report_to",
            "none",
            "--use_cpu",
        ]
    )
    for prefix in ("eval", "test"):
        assert evaluation[f"{prefix}_num_videos"] == 6 and evaluation[f"{prefix}_skipped_videos"] == 0
        for name in METRICS:
            assert evaluation[f"{prefix}_{name}"] == pytest.approx(metrics[f"{prefix}_{name}"])
    records = [json.loads(line) for line in (tmp_path / "evaluated" / "predictions.jsonl").open()]
    expected = {f"shard-{n // 4:06d}.tar/video{n:04d}.mp4": v.label for n, v in enumerate(sample_videos)}
    assert {record["path"]: record["label"] for record in records} == expected
    # training on the stream, from the pretrained folder: --class_names names the stream's labels
    pretrained = tmp_path / "pretrained"
    AdaMaeForPreTraining(tiny_config()).save_pretrained(pretrained)
    trained = run_finetune.main(
        [
            "--model_name_or_path",
            str(pretrained),
            "--train_index",
            str(shards),
            "--streaming",
            "--class_names",
            *CLASSES,
            "--output_dir",
            str(tmp_path / "trained"),
            "--do_train",
            "--max_steps",
            "2",
            "--warmup_steps",
            "1",
            "--per_device_train_batch_size",
            "2",
            "--shuffle_buffer_size",
            "3",
            *TINY_CLIPS,
        ]
    )
    assert trained["train_loss"] > 0 and trained["train_skipped_videos"] == 0
    model = AdaMaeForVideoClassification.from_pretrained(tmp_path / "trained")
    assert [model.config.id2label[i] for i in range(3)] == CLASSES


def test_a_streamed_fine_tune_resumed_from_a_checkpoint_ends_with_the_uninterrupted_runs_weights(
    sample_videos, tmp_path, caplog
):
    # 6 videos in batches of 2: 3 batches a pass over the stream, so the 4 steps go on into a second, reshuffled pass
    shards = write_tar_shards(tmp_path / "shards", sample_videos)
    AdaMaeForPreTraining(tiny_config()).save_pretrained(tmp_path / "pretrained")
    arguments = [
        "--model_name_or_path",
        str(tmp_path / "pretrained"),
        "--train_index",
        str(shards),
        "--streaming",
        "--class_names",
        *CLASSES,
        "--do_train",
        "--max_steps",
        "4",
        "--warmup_steps",
        "1",
        "--save_steps",
        "2",
        "--per_device_train_batch_size",
        "2",
        "--shuffle_buffer_size",
        "3",
        "--learning_rate",
        "1e-2",
        "--seed",
        "1",
        *TINY_CLIPS,
    ]
    run_finetune.main([*arguments, "--output_dir", str(tmp_path / "uninterrupted")])
    # a run that stopped after its step-2 checkpoint, started again on the same output folder
    shutil.copytree(tmp_path / "uninterrupted" / "checkpoint-2", tmp_path / "resumed" / "checkpoint-2")
    caplog.set_level(logging.INFO)
    run_finetune.main([*arguments, "--output_dir", str(tmp_path / "resumed")])
    assert f"Resuming from {tmp_path / 'resumed' / 'checkpoint-2'}" in caplog.text
    uninterrupted = AdaMaeForVideoClassification.from_pretrained(tmp_path / "uninterrupted").state_dict()
    resumed = AdaMaeForVideoClassification.from_pretrained(tmp_path / "resumed").state_dict()
    assert uninterrupted.keys() == resumed.keys()
    for name, weight in uninterrupted.items():
        assert torch.equal(weight, resumed[name]), name
    initial = AdaMaeForVideoClassification.from_pretrained(tmp_path / "uninterrupted" / "checkpoint-2").state_dict()
    assert not all(torch.equal(weight, initial[name]) for name, weight in uninterrupted.items())  # it did train


def test_a_stream_tested_by_two_processes_scores_every_view_once(finetuned, sample_videos, tmp_path):
    # accelerate reads a stream on the first process and splits each batch's rows (views) between the processes; 5
    # videos x 3 views leave an odd last batch, which it pads with rows of the first: they must not count twice
    output_dir, _ = finetuned
    shards = write_tar_shards(tmp_path / "shards", sample_videos)
    arguments = [
        "--model_name_or_path",
        str(output_dir),
        "--validation_index",
        str(shards),
        "--streaming",
        "--do_predict",
        "--max_eval_videos",
        "5",
        "--per_device_eval_batch_size",
        "1",
        "--test_num_clips",
        "1",
        "--test_num_crops",
        "3",
        "--report_to",
        "none",
        "--use_cpu",
    ]
    run_finetune.main([*arguments, "--output_dir", str(tmp_path / "one")])
    command = two_process_command(
        str(REPO_ROOT / "run_finetune.py"),
        *arguments,
        "--output_dir",
        str(tmp_path / "two"),
        "--ddp_backend",
        "gloo",
    )
    environment = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT)}
    completed = subprocess.run(command, capture_output=True, text=True, timeout=300, env=environment)
    assert completed.returncode == 0, completed.stderr[-3000:]

    def predictions(folder):
        return {record["path"]: record["scores"] for record in map(json.loads, (folder / "predictions.jsonl").open())}

    one_process = predictions(tmp_path / "one")
    assert len(one_process) == 5 and predictions(tmp_path / "two") == one_process


# --- user mistakes, start-up checks and logs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pretrained")
    AdaMaeForPreTraining(tiny_config()).save_pretrained(folder)
    return folder


def run_script(argv, capsys):
    """run_finetune.py as its command line runs it (`run_cli(main)`): the exit status and the lines on stderr."""
    status = run_cli(run_finetune.main, [str(argument) for argument in argv])
    return status, capsys.readouterr().err.strip().splitlines()


def mistake(case, pretrained, index, tmp_path):
    """The arguments of one user mistake and the line expected for it."""
    broken = tmp_path / "broken"
    broken.mkdir()
    for name in ("a.mp4", "b.mp4"):
        (broken / name).write_bytes(b"not a video")
    (broken / "index.csv").write_text("path,label\na.mp4,left\nb.mp4,right\n")
    (tmp_path / "run.yaml").write_text("num_frames: many\n")
    (tmp_path / "run.json").write_text('{"layer_decay": 2}')
    model, train = ["--model_name_or_path", pretrained], ["--train_index", index, "--do_train"]
    return {
        "missing index": (
            [*model, "--train_index", tmp_path / "missing.csv", "--do_train"],
            r"--train_index: no such file or folder: '.*missing\.csv'",
        ),
        "model folder that does not exist": (
            ["--model_name_or_path", tmp_path / "no" / "model", *train],
            r"--model_name_or_path: expected a model folder or a Hub id .*no such",
        ),
        "checkpoint file that does not exist": (
            ["--model_name_or_path", tmp_path / "weights.pth", *train],
            r"expected an authors' checkpoint file, got '.*weights\.pth'",
        ),
        "bad value in a YAML config": (["--config", tmp_path / "run.yaml", *model, *train], r"num_frames.*'many'"),
        "bad value in a JSON config": (
            ["--config", tmp_path / "run.json", *model, *train],
            r"layer_decay must be in \(0, 1\], got 2",
        ),
        "bad flag value": ([*model, *train, "--num_frames", "many"], r"--num_frames.*: invalid int value: 'many'"),
        "misspelt flag": ([*model, *train, "--num_framez", "8"], r"not used by the HfArgumentParser: .*num_framez"),
        "index where no video decodes": (
            [*model, "--train_index", broken / "index.csv", "--do_train"],
            r"--train_index: none of the 2 videos in the index can be decoded",
        ),
        "absurd crop_size": (
            [*model, *train, "--crop_size", "1000000000"],
            r"crop_size must be at most 4096 pixels, got 1000000000",
        ),
        "crop_size the model cannot take": (
            [*model, *train, "--crop_size", "64"],
            r"takes 8 frames of 32x32, but the clips would have 8 frames of 64x64",
        ),
        "nothing to do": (
            [*model, "--train_index", index],
            r"nothing to do: expected --do_train, --do_eval and/or --do_predict .*nothing was written",
        ),
        "training on a stream without --max_steps": (
            [*model, *train, "--streaming"],
            r"--streaming: training on a stream needs --max_steps",
        ),
        "a warmup in epochs on a stream": (
            [*model, *train, "--streaming", "--max_steps", "2"],
            r"--streaming: give the warmup in optimizer steps \(--warmup_steps N",
        ),
        "--dataset_name": (
            [*model, *train, "--dataset_name", "Kinetics-400"],
            r"--dataset_name is not a flag of run_finetune.py: give a datasets name or path as "
            r"--train_index .*--dataset_card_name",
        ),
    }[case]


@pytest.mark.parametrize(
    "case",
    [
        "missing index",
        "model folder that does not exist",
        "checkpoint file that does not exist",
        "bad value in a YAML config",
        "bad value in a JSON config",
        "bad flag value",
        "misspelt flag",
        "index where no video decodes",
        "absurd crop_size",
        "crop_size the model cannot take",
        "nothing to do",
        "training on a stream without --max_steps",
        "a warmup in epochs on a stream",
        "--dataset_name",
    ],
)
def test_a_user_mistake_ends_with_one_line_a_nonzero_exit_and_nothing_written(
    case, pretrained, sample_index_file, tmp_path, capsys
):
    arguments, expected = mistake(case, pretrained, sample_index_file, tmp_path)
    # the case's arguments last: of a flag given twice, the last counts
    status, lines = run_script(["--output_dir", tmp_path / "out", *TINY_CLIPS, *arguments], capsys)
    assert status == 1 and len(lines) == 1, lines
    assert lines[0].startswith("error: ") and re.search(expected, lines[0]), lines[0]
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback_of_a_user_mistake(pretrained, tmp_path, capsys):
    arguments = ["--model_name_or_path", pretrained, "--output_dir", tmp_path / "out", "--use_cpu", "--debug"]
    status, lines = run_script(arguments, capsys)
    assert status == 1 and lines[0].startswith("Traceback") and lines[-1].startswith("error: nothing to do")


def test_push_to_hub_is_checked_before_anything_is_trained(pretrained, sample_index_file, tmp_path, hub, capsys):
    status, lines = run_script(
        [
            "--model_name_or_path",
            pretrained,
            "--train_index",
            sample_index_file,
            "--do_train",
            "--push_to_hub",
            "--hub_model_id",
            "someone-else/shared",
            "--output_dir",
            tmp_path / "out",
            *TINY_CLIPS,
        ],
        capsys,
    )
    assert status == 1 and len(lines) == 1, lines
    assert "--push_to_hub to someone-else/shared: the token may not write there (403 Forbidden" in lines[0]
    assert not (tmp_path / "out").exists() and hub.commits == {}


def test_a_failed_upload_keeps_every_file_and_prints_the_command_that_retries_it(
    finetuned, sample_index_file, tmp_path, hub, capsys
):
    output_dir, _ = finetuned
    hub.commit_status = 401  # the token stops working during the run
    out = tmp_path / "evaluated"
    status, lines = run_script(
        [
            "--model_name_or_path",
            output_dir,
            "--validation_index",
            sample_index_file,
            "--do_eval",
            "--max_eval_videos",
            "2",
            "--push_to_hub",
            "--hub_model_id",
            "someone/adamae-tiny",
            "--output_dir",
            out,
            "--report_to",
            "none",
            "--use_cpu",
        ],
        capsys,
    )
    error = lines[-1]  # after the evaluation's progress bar
    assert status == 1 and error.startswith("error: the upload of") and "Traceback" not in "\n".join(lines)
    assert "refused the token (401 Unauthorized)" in error and f"Nothing is lost: every file is in {out}" in error
    assert error.endswith(retry_upload_command("someone/adamae-tiny", out, FINETUNING_UPLOAD_IGNORE))
    for name in ("README.md", "model.safetensors", "config.json", CLIP_CONFIG_NAME, "eval_results.json"):
        assert (out / name).is_file(), name
    assert 'model="someone/adamae-tiny"' in (out / "README.md").read_text()


def test_default_logs_show_our_info_lines_but_not_transformers_configuration_dumps(tmp_path):
    transformers_level = transformers.utils.logging.get_verbosity()
    try:
        configure_logging(FinetuningTrainingArguments(output_dir=str(tmp_path), use_cpu=True))
        assert logging.getLogger("adamae_hf.finetune_run").getEffectiveLevel() == logging.INFO
        assert logging.getLogger("adamae_hf.video_trainer").getEffectiveLevel() == logging.INFO
        assert transformers.utils.logging.get_verbosity() == logging.WARNING  # its INFO dumps every config it reads
        assert not transformers.utils.logging.is_progress_bar_enabled()  # no loading / shard-writing bars every run
        # --log_level applies to both
        configure_logging(FinetuningTrainingArguments(output_dir=str(tmp_path), use_cpu=True, log_level="debug"))
        assert logging.getLogger("adamae_hf.finetune_run").getEffectiveLevel() == logging.DEBUG
        assert transformers.utils.logging.get_verbosity() == logging.DEBUG
    finally:
        transformers.utils.logging.set_verbosity(transformers_level)
        transformers.utils.logging.enable_progress_bar()
