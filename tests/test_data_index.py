"""Video indexes through `datasets`: CSV / JSON lines / folders / existing datasets, labels, sharding."""

import json
import os
import shutil

import datasets
import pytest
from transformers import VideoMAEConfig

from adamae_hf.data import index_from_dataset, index_from_file, index_from_folder, label_maps, shard_index


EXPECTED_ID2LABEL = {0: "move_left", 1: "move_right", 2: "move_up"}


def test_csv_index_resolves_paths_relative_to_the_file(sample_videos, sample_index_file):
    index = index_from_file(sample_index_file)
    assert index.column_names == ["path", "label"]
    assert index["path"] == [video.path for video in sample_videos]
    assert isinstance(index.features["label"], datasets.ClassLabel)
    assert [index.features["label"].int2str(i) for i in index["label"]] == [video.label for video in sample_videos]


def test_paths_relative_to_a_data_root(tmp_path, sample_videos):
    (tmp_path / "lists").mkdir()
    index_file = tmp_path / "lists" / "train.jsonl"
    root = os.path.dirname(sample_videos[0].path)
    with open(index_file, "w") as handle:
        for video in sample_videos:
            handle.write(json.dumps({"path": os.path.basename(video.path), "label": video.label}) + "\n")
    index = index_from_file(index_file, data_root=root)
    assert index["path"] == [video.path for video in sample_videos]
    assert label_maps(index)[0] == EXPECTED_ID2LABEL


def test_folder_index_with_a_subset_of_the_classes_keeps_the_given_ids(tmp_path, sample_videos):
    video = next(v for v in sample_videos if v.label == "move_up")
    os.makedirs(tmp_path / "move_up")
    shutil.copy(video.path, tmp_path / "move_up")
    index = index_from_folder(tmp_path, label_names=["move_left", "move_right", "move_up"])
    assert index["label"] == [2] and index.features["label"].names == ["move_left", "move_right", "move_up"]
    with pytest.raises(ValueError, match="label_names"):
        index_from_folder(tmp_path, label_names=["move_left"])


def test_folder_index(tmp_path, sample_videos):
    for video in sample_videos:
        os.makedirs(tmp_path / video.label, exist_ok=True)
        shutil.copy(video.path, tmp_path / video.label)
    (tmp_path / "notes.txt").write_text("not a class folder")
    (tmp_path / "move_up" / "readme.md").write_text("not a video")
    index = index_from_folder(tmp_path)
    assert len(index) == len(sample_videos)
    assert label_maps(index)[0] == EXPECTED_ID2LABEL
    assert all(
        os.path.basename(os.path.dirname(path)) == index.features["label"].int2str(label)
        for path, label in zip(index["path"], index["label"])
    )


def test_from_an_existing_dataset_with_string_class_label_or_integer_labels(sample_videos):
    paths = [video.path for video in sample_videos]
    names = [video.label for video in sample_videos]
    from_strings = index_from_dataset(datasets.Dataset.from_dict({"file": paths, "action": names}), "file", "action")
    assert label_maps(from_strings)[0] == EXPECTED_ID2LABEL

    class_label = datasets.ClassLabel(names=["move_up", "move_right", "move_left"])  # an order of its own: kept
    with_class_label = datasets.Dataset.from_dict(
        {"path": paths, "label": [class_label.str2int(name) for name in names]},
        features=datasets.Features({"path": datasets.Value("string"), "label": class_label}),
    )
    index = index_from_dataset(with_class_label)
    assert index.features["label"].names == ["move_up", "move_right", "move_left"]
    assert index["label"] == with_class_label["label"]

    integer_ids = index_from_dataset(datasets.Dataset.from_dict({"path": paths, "label": [3, 0, 7, 3, 0, 7]}))
    assert integer_ids["label"] == [3, 0, 7, 3, 0, 7]
    assert len(integer_ids.features["label"].names) == 8

    unlabelled = index_from_dataset(datasets.Dataset.from_dict({"path": paths}))
    assert unlabelled.column_names == ["path"]


def test_relative_dataset_paths_use_data_root(sample_videos):
    root = os.path.dirname(sample_videos[0].path)
    dataset = datasets.Dataset.from_dict({"path": [os.path.basename(video.path) for video in sample_videos]})
    assert index_from_dataset(dataset, data_root=root)["path"] == [video.path for video in sample_videos]


def test_label_names_map_ids_and_names(tmp_path):
    index_file = tmp_path / "ids.csv"
    index_file.write_text("path,label\na.mp4,2\nb.mp4,0\nc.mp4,walk\n")
    index = index_from_file(index_file, label_names=["walk", "run", "jump"])
    assert index["label"] == [2, 0, 0]
    assert label_maps(index) == ({0: "walk", 1: "run", 2: "jump"}, {"walk": 0, "run": 1, "jump": 2})
    with pytest.raises(ValueError, match="label_names"):
        index_from_file(index_file, label_names=["walk"])


def test_id2label_round_trips_through_a_model_config(tmp_path, sample_index_file):
    id2label, label2id = label_maps(index_from_file(sample_index_file))
    config = VideoMAEConfig(num_labels=len(id2label), id2label=id2label, label2id=label2id)
    config.save_pretrained(tmp_path)
    reloaded = VideoMAEConfig.from_pretrained(tmp_path)
    assert reloaded.id2label == id2label and reloaded.label2id == label2id


def test_unlabelled_csv_and_bad_files(tmp_path):
    (tmp_path / "paths.csv").write_text("path\nx.mp4\ny.mp4\n")
    index = index_from_file(tmp_path / "paths.csv")
    assert index.column_names == ["path"] and index["path"] == [str(tmp_path / "x.mp4"), str(tmp_path / "y.mp4")]
    with pytest.raises(ValueError, match="label"):
        label_maps(index)
    (tmp_path / "partly_labelled.csv").write_text("path,label\nx.mp4,a\ny.mp4,\n")
    with pytest.raises(ValueError, match="row 2 has no label"):
        index_from_file(tmp_path / "partly_labelled.csv")
    (tmp_path / "wrong.csv").write_text("video,label\nx.mp4,a\n")
    with pytest.raises(ValueError, match="'path' column"):
        index_from_file(tmp_path / "wrong.csv")
    (tmp_path / "empty.csv").write_text("path,label\n")
    with pytest.raises(ValueError, match="empty"):
        index_from_file(tmp_path / "empty.csv")
    with pytest.raises(ValueError, match=".csv or .jsonl"):
        index_from_file(tmp_path / "index.txt")
    with pytest.raises(ValueError, match="path_column"):
        index_from_dataset(datasets.Dataset.from_dict({"file": ["a.mp4"]}))


def test_shards_partition_the_index(sample_index_file):
    index = index_from_file(sample_index_file)
    shards = [shard_index(index, rank, 4) for rank in range(4)]
    assert sorted(len(shard) for shard in shards) == [1, 1, 2, 2]
    assert sorted(path for shard in shards for path in shard["path"]) == sorted(index["path"])
    assert shards[0].features == index.features
    with pytest.raises(ValueError, match="rank"):
        shard_index(index, 4, 4)


# Index files as users' tools write them


def test_csv_and_json_lines_with_a_byte_order_mark(tmp_path):
    (tmp_path / "excel.csv").write_bytes("path,label\nx.mp4,walk\ny.mp4,run\n".encode("utf-8-sig"))
    index = index_from_file(tmp_path / "excel.csv")
    assert index["path"] == [str(tmp_path / "x.mp4"), str(tmp_path / "y.mp4")]
    assert label_maps(index)[0] == {0: "run", 1: "walk"}
    lines = '{"path": "x.mp4", "label": "walk"}\n{"path": "y.mp4", "label": "run"}\n'
    (tmp_path / "bom.jsonl").write_bytes(lines.encode("utf-8-sig"))
    assert index_from_file(tmp_path / "bom.jsonl")["label"] == index["label"]


def test_a_malformed_json_line_names_the_file_and_its_line(tmp_path):
    index_file = tmp_path / "broken.jsonl"
    index_file.write_text('{"path": "x.mp4", "label": "a"}\n\n{"path": "y.mp4" "label": "b"}\n')
    with pytest.raises(ValueError, match=r"broken\.jsonl:3: not a JSON object") as error:
        index_from_file(index_file)
    assert str(error.value).count("broken.jsonl") == 1 and "\n" not in str(error.value)
    index_file.write_text('{"path": "x.mp4"}\n["y.mp4"]\n')
    with pytest.raises(ValueError, match=r"broken\.jsonl:2: expected an object with a 'path'"):
        index_from_file(index_file)


def test_spaces_after_the_commas_keep_the_label(tmp_path):
    index_file = tmp_path / "spaced.csv"
    index_file.write_text('path, label\nx.mp4, walk\n"y, take 2.mp4", run\n')
    index = index_from_file(index_file)
    assert index["path"] == [str(tmp_path / "x.mp4"), str(tmp_path / "y, take 2.mp4")]
    assert [index.features["label"].int2str(i) for i in index["label"]] == ["walk", "run"]


def test_an_unquoted_comma_in_a_path_is_an_error_naming_the_line(tmp_path):
    index_file = tmp_path / "commas.csv"
    index_file.write_text("path,label\nx.mp4,walk\nclips/y,take 2.mp4,run\n")
    with pytest.raises(ValueError, match=r"commas\.csv:3: 3 fields but the header names 2 .*quote a path"):
        index_from_file(index_file)
    unlabelled = tmp_path / "paths.csv"
    unlabelled.write_text("path\nclips/y,take 2.mp4\n")
    with pytest.raises(ValueError, match=r"paths\.csv:2: 2 fields but the header names 1"):
        index_from_file(unlabelled)
