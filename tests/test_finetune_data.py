"""adamae_hf.finetune_data: the class list and the indexes checked against it."""

import logging
import os

import datasets
import pytest
from tar_shards import write_tar_shards
from transformers import TrainingArguments

from adamae_hf.data import VideoClipConfig
from adamae_hf.finetune_arguments import DataArguments
from adamae_hf.finetune_data import build_video_datasets, hub_dataset_names, load_video_index, resolve_label_names


CLASSES = ["move_left", "move_right", "move_up"]


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


def test_a_stream_of_class_names_takes_the_checkpoints_classes_without_warning(sample_videos, tmp_path, caplog):
    # The stream's labels are names, so its classes are unknown until read whole: the checkpoint's classes name them,
    # and the probe that found this does not warn that labels would be left out.
    shards = write_tar_shards(tmp_path / "shards", sample_videos)
    reordered = ["move_up", "move_left", "move_right"]
    with caplog.at_level(logging.WARNING):
        names, source = resolve_label_names(DataArguments(train_index=str(shards), streaming=True), reordered)
    assert names == reordered and source == "the checkpoint's id2label"
    assert "left out" not in caplog.text


def test_the_cards_datasets_are_the_hub_datasets_among_the_sources(sample_index_file, tmp_path, monkeypatch):
    arguments = DataArguments(
        train_index="someone/motion-videos", validation_index=sample_index_file, test_index="someone/motion-videos"
    )
    assert hub_dataset_names(arguments) == ["someone/motion-videos"]
    # index files, shards, URLs, globs and local folders are not Hub datasets, even when they read like "a/b"
    (tmp_path / "data" / "k400").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    local = DataArguments(
        train_index="k400/train.csv", validation_index="s3://bucket/shards", test_index="shards/shard-*.tar"
    )
    assert hub_dataset_names(local) == []
    assert hub_dataset_names(DataArguments(train_index="data/k400")) == []  # a local folder


def test_a_streams_test_videos_each_get_their_own_name(sample_videos, tmp_path):
    # Hub parquet datasets may hold a video's bytes without its path: each row is still a video of its own in
    # predictions.jsonl, named by its row.
    rows = []
    for video in sample_videos[:3]:
        with open(video.path, "rb") as handle:
            rows.append({"bytes": handle.read(), "path": None})
    labels = datasets.ClassLabel(names=["move_left", "move_right", "move_up"])
    features = datasets.Features({"video": datasets.Video(), "label": labels})
    table = datasets.Dataset.from_dict({"video": rows, "label": [0, 1, 2]}, features=features)
    table.save_to_disk(str(tmp_path / "saved"))
    data_args = DataArguments(test_index=str(tmp_path / "saved"), streaming=True)
    training_args = TrainingArguments(output_dir=str(tmp_path / "out"), do_predict=True, per_device_eval_batch_size=1)
    clips = VideoClipConfig(num_frames=4, sampling_rate=1, crop_size=32, short_side_size=32)
    videos = build_video_datasets(data_args, clips, labels.names, "the test", training_args)
    keys = [int(item["video_index"][0]) for item in videos.test]
    names = videos.test_video_paths()
    assert len(set(keys)) == 3 and sorted(names) == sorted(keys)
    assert [names[key] for key in keys] == ["<bytes>#1", "<bytes>#2", "<bytes>#3"]
