"""Every video source through one flag family (DataSourceArguments / open_video_split / clip_dataset): index files,
class folders, `datasets` Video columns (decoded or not, paths or bytes), videofolder datasets, string labels, tar
shards, save_to_disk folders, and streams of each."""

import os
import shutil
import tempfile

import datasets
import pytest
import torch
from test_data_streaming import CLASSES, encoded_videos, key_of, run_epoch, write_video_shards

from adamae_hf.data import (
    DataSourceArguments,
    StreamingVideoClipDataset,
    UnknownLabelError,
    VideoClipConfig,
    VideoClipDataset,
    clip_dataset,
    index_from_dataset,
    label_maps,
    open_video_split,
)
from adamae_hf.errors import ArgumentParser


CONFIG = VideoClipConfig(num_frames=4, sampling_rate=2, crop_size=32, short_side_size=32, num_sample=1)
EXPECTED_CLASSES = ["move_left", "move_right", "move_up"]


@pytest.fixture(autouse=True)
def datasets_cache_in_tmp(tmp_path, monkeypatch):
    """load_dataset's Arrow cache goes to the test's folder, not the user's ~/.cache."""
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path / "hf_cache"))


@pytest.fixture()
def class_folders(tmp_path, sample_videos):
    """`<root>/<split>/<class>/<video>`: videos 0-3 in train, 4-5 in validation."""
    root = tmp_path / "videofolder"
    for number, video in enumerate(sample_videos):
        folder = root / ("train" if number < 4 else "validation") / video.label
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(video.path, folder)
    return root


def sources(**flags) -> DataSourceArguments:
    return DataSourceArguments(**flags)


def test_the_flags_parse_the_same_in_every_script():
    (args,) = ArgumentParser(DataSourceArguments).parse_args_into_dataclasses(
        [
            "--train_index",
            "user/k400",
            "--dataset_config_name",
            "full",
            "--streaming",
            "--video_column",
            "clip",
            "--label_column",
            "action",
            "--max_train_videos",
            "8",
            "--shuffle_buffer_size",
            "64",
        ]
    )
    assert (args.train_index, args.dataset_config_name, args.streaming) == ("user/k400", "full", True)
    columns_and_sizes = (args.video_column, args.label_column, args.max_train_videos, args.shuffle_buffer_size)
    assert columns_and_sizes == ("clip", "action", 8, 64)
    assert open_video_split(args, "validation") is None  # no --validation_index
    with pytest.raises(ValueError, match="shuffle_buffer_size"):
        DataSourceArguments(shuffle_buffer_size=0)


def test_index_file_and_class_folder_sources(sample_videos, sample_index_file, class_folders):
    split = open_video_split(sources(train_index=sample_index_file, max_train_videos=4), "train")
    assert split.index["path"] == [video.path for video in sample_videos[:4]]
    assert split.label_names == EXPECTED_CLASSES and "4 videos from index file" in split.description
    dataset = clip_dataset(split, CONFIG, train=True, seed=0)
    assert isinstance(dataset, VideoClipDataset) and dataset[0]["pixel_values"].shape == (1, 4, 3, 32, 32)

    folders = sources(train_index=str(class_folders / "train"), validation_index=str(class_folders))
    train = open_video_split(folders, "train")
    # A folder holding one folder per split: the split's own (`validation/<class>/<video>`), with the train ids.
    validation = open_video_split(folders, "validation", label_names=train.label_names)
    assert len(train.index) == 4 and len(validation.index) == 2
    assert all(path.startswith(str(class_folders / "validation")) for path in validation.index["path"])
    names = [validation.label_names[label] for label in validation.index["label"]]
    assert names == [video.label for video in sample_videos[4:]]


def test_a_local_index_streamed(sample_videos, sample_index_file):
    split = open_video_split(sources(train_index=sample_index_file, streaming=True), "train")
    assert split.index is None and split.label_names == EXPECTED_CLASSES
    assert [row["path"] for row in split.stream] == [video.path for video in sample_videos]
    dataset = clip_dataset(split, CONFIG, train=False, seed=0)
    batches, _ = run_epoch(dataset, epoch=0, num_workers=2)
    path_of = dataset.video_paths()
    label_of = {video.path: EXPECTED_CLASSES.index(video.label) for video in sample_videos}
    assert sorted(path_of[int(batch["video_index"][0])] for batch in batches) == sorted(label_of)
    assert all(int(batch["labels"][0]) == label_of[path_of[int(batch["video_index"][0])]] for batch in batches)


def test_a_video_column_decoded_or_not_gives_the_files_paths(sample_videos):
    paths = [video.path for video in sample_videos]
    labelled = datasets.Dataset.from_dict({"video": paths, "label": [video.label for video in sample_videos]})
    for decode in (True, False):
        with_videos = labelled.cast_column("video", datasets.Video(decode=decode))
        index = index_from_dataset(with_videos, "video", "label")
        assert index.column_names == ["path", "label"]  # no bytes: every video is a file
        assert index["path"] == paths
        assert label_maps(index)[0] == dict(enumerate(EXPECTED_CLASSES))


def test_videos_held_as_bytes_decode_like_their_files(tmp_path, sample_videos):
    """A saved dataset whose Video column holds the bytes (as Hub parquet files do): the index keeps them, and the
    clips equal those read from the files."""
    videos = []
    for video in sample_videos:
        with open(video.path, "rb") as handle:
            videos.append({"path": os.path.basename(video.path), "bytes": handle.read()})
    labels = datasets.ClassLabel(names=EXPECTED_CLASSES)
    embedded = datasets.Dataset.from_dict(
        {"clip": videos, "action": [labels.str2int(video.label) for video in sample_videos]},
        features=datasets.Features({"clip": datasets.Video(), "action": labels}),
    )
    embedded.save_to_disk(str(tmp_path / "saved"))
    split = open_video_split(sources(train_index=str(tmp_path / "saved")), "train")
    assert split.index.column_names == ["path", "bytes", "label"]
    assert split.index["path"] == [video["path"] for video in videos]  # names only: the bytes are decoded
    assert split.label_names == EXPECTED_CLASSES and "saved dataset" in split.description

    from_files = open_video_split(sources(train_index=os.path.dirname(sample_videos[0].path) + "/index.csv"), "train")
    for train in (True, False):
        in_memory = clip_dataset(split, CONFIG, train=train, seed=3)
        on_disk = clip_dataset(from_files, CONFIG, train=train, seed=3)
        for row in (0, 5):
            assert torch.equal(in_memory[row]["pixel_values"], on_disk[row]["pixel_values"])
            assert torch.equal(in_memory[row]["labels"], on_disk[row]["labels"])


def test_a_videofolder_dataset_keeps_its_folder_labels(class_folders, sample_videos):
    loaded = datasets.load_dataset("videofolder", data_dir=str(class_folders))
    index = index_from_dataset(loaded["train"], "video", "label")
    assert label_maps(index)[0] == {0: "move_left", 1: "move_right", 2: "move_up"}
    assert sorted(index["path"]) == sorted(str(path) for path in (class_folders / "train").glob("*/*.mp4"))
    # The same folder as a source: the same videos and labels.
    split = open_video_split(sources(train_index=str(class_folders)), "train")
    assert sorted(zip(split.index["path"], split.index["label"])) == sorted(zip(index["path"], index["label"]))


@pytest.fixture()
def metadata_folder(tmp_path, sample_videos):
    """A `datasets` folder (videofolder with a metadata.csv) whose labels are strings; labels of videos 0-3."""
    folder = tmp_path / "with_metadata"
    folder.mkdir()
    rows = ["file_name,action"]
    for video, action in zip(sample_videos[:4], ["walk", "run", "walk", "jump"]):
        shutil.copy(video.path, folder)
        rows.append(f"{os.path.basename(video.path)},{action}")
    (folder / "metadata.csv").write_text("\n".join(rows) + "\n")
    return str(folder)


def metadata_source(folder: str, streaming: bool = False) -> DataSourceArguments:
    return sources(train_index=folder, label_column="action", streaming=streaming)


def test_string_labels_of_a_datasets_source_map_through_label_names(metadata_folder):
    names = ["run", "walk", "jump"]
    split = open_video_split(metadata_source(metadata_folder), "train", label_names=names)
    assert split.index["label"] == [1, 0, 1, 2] and split.label_names == names
    assert open_video_split(metadata_source(metadata_folder), "train").label_names == ["jump", "run", "walk"]
    with pytest.raises(UnknownLabelError, match=r"--train_index: .*unknown label 'jump'.*2 label_names") as error:
        open_video_split(metadata_source(metadata_folder), "train", label_names=["run", "walk"])
    assert "\n" not in str(error.value)


def test_a_streamed_datasets_source_with_string_labels(metadata_folder):
    names = ["run", "walk", "jump"]
    split = open_video_split(metadata_source(metadata_folder, streaming=True), "train", label_names=names)
    assert split.index is None and split.label_names == names
    assert [row["label"] for row in split.stream] == [1, 0, 1, 2]
    dataset = clip_dataset(split, CONFIG, train=False, seed=0, videos_per_batch=2)
    assert isinstance(dataset, StreamingVideoClipDataset)
    assert sorted(int(item["labels"][0]) for item in dataset) == [0, 1, 1, 2]
    # Without the class names a stream's string labels cannot get ids: they are left out (pretraining needs none).
    unlabelled = open_video_split(metadata_source(metadata_folder, streaming=True), "train")
    assert unlabelled.label_names is None and not unlabelled.has_labels


def test_a_streamed_row_of_an_unknown_label_is_a_skipped_video(metadata_folder, caplog):
    """Read hours into a run, such a row is skipped, counted and warned about once (file and label), not raised."""
    split = open_video_split(metadata_source(metadata_folder, streaming=True), "train", ["run", "walk"])
    dataset = clip_dataset(split, CONFIG, train=False, seed=0, videos_per_batch=1)
    for epoch in (0, 1):
        with caplog.at_level("WARNING", logger="adamae_hf.data.dataset"):
            batches, _ = run_epoch(dataset, epoch=epoch, num_workers=0)
        assert sorted(int(batch["labels"][0]) for batch in batches) == [0, 1, 1]
        assert dataset.skipped.count == epoch + 1 and dataset.skipped.num_videos == 1
    warnings = [record.getMessage() for record in caplog.records if "unknown label" in record.getMessage()]
    assert len(warnings) == 1 and "'jump'" in warnings[0] and "with_metadata" in warnings[0]


def test_tar_shards_as_an_index_with_bytes(tmp_path):
    keys = write_video_shards(tmp_path / "shards", encoded_videos(tmp_path), [3, 2])
    for source in (str(tmp_path / "shards"), str(tmp_path / "shards" / "shard-*.tar")):
        split = open_video_split(sources(train_index=source), "train")
        assert split.index.column_names == ["path", "bytes", "label"] and len(split.index) == len(keys)
        assert split.label_names == list(CLASSES) and "2 tar shards" in split.description
        assert split.index["path"] == [f"{key}.mp4" for key in keys]
        assert split.index["label"] == [(int(key[1]) + int(key[3:])) % 2 for key in keys]
    item = clip_dataset(split, CONFIG, train=True, seed=0)[4]
    assert item["pixel_values"].shape == (1, 4, 3, 32, 32) and int(item["labels"][0]) == 0
    streamed = open_video_split(sources(train_index=source, streaming=True), "train")
    assert {stream_row["path"] for stream_row in streamed.stream} == {
        f"shard-{int(key[1]):06d}.tar/{key}.mp4" for key in keys
    }
    assert key_of(keys[0]) != key_of(keys[1])


def test_tar_shards_at_a_url_streamed_and_cut_to_their_first_videos(tmp_path):
    keys = write_video_shards(tmp_path / "shards", encoded_videos(tmp_path, count=2), [3, 3])
    url = (tmp_path / "shards").as_uri()  # file:///...: any fsspec URL (s3://, gs://, hf://) is read the same way
    split = open_video_split(sources(train_index=url, streaming=True, max_train_videos=4), "train")
    assert split.description.startswith(f"train: 2 tar shards {url} (first 4 videos, streamed")
    dataset = clip_dataset(split, CONFIG, train=False, seed=0)
    batches, _ = run_epoch(dataset, epoch=0, num_workers=2)  # 4 videos in all, not 4 per worker
    path_of = dataset.video_paths()
    shown = sorted(path_of[int(batch["video_index"][0])] for batch in batches)
    assert shown == sorted(f"shard-{int(key[1]):06d}.tar/{key}.mp4" for key in keys[:4])


def test_the_first_videos_of_a_stream_leave_no_files_behind(tmp_path, monkeypatch):
    """--max_train_videos on a stream holds its videos in memory: no copy is left in datasets' cache or elsewhere."""
    write_video_shards(tmp_path / "shards", encoded_videos(tmp_path, count=2), [3, 3])
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    os.mkdir(tmp_path / "tmp")
    split = open_video_split(
        sources(train_index=str(tmp_path / "shards"), streaming=True, max_train_videos=4), "train"
    )
    assert len(list(split.stream)) == 4
    cache = tmp_path / "hf_cache"
    left = [path for path in cache.rglob("*") if path.is_file() and not path.name.endswith(".lock")]
    assert left == [] and list((tmp_path / "tmp").iterdir()) == []


def test_tar_shards_labelled_by_their_json_only(tmp_path):
    folder = tmp_path / "shards"
    keys = write_video_shards(folder, encoded_videos(tmp_path, count=2), [2, 2], with_cls=False)
    os.remove(folder / "classes.txt")
    split = open_video_split(sources(train_index=str(folder)), "train", label_names=list(CLASSES))
    assert split.index["label"] == [(int(key[1]) + int(key[3:])) % 2 for key in keys]
    streamed = open_video_split(sources(train_index=str(folder), streaming=True), "train", list(reversed(CLASSES)))
    assert [row["label"] for row in streamed.stream] == [1 - label for label in split.index["label"]]


def test_a_saved_dataset_dict_picks_the_split(tmp_path, sample_videos):
    paths = [video.path for video in sample_videos]
    splits = {"train": paths[:4], "dev": paths[4:]}
    saved = datasets.DatasetDict({name: datasets.Dataset.from_dict({"path": rows}) for name, rows in splits.items()})
    saved.save_to_disk(str(tmp_path / "saved"))
    flags = sources(train_index=str(tmp_path / "saved"), validation_index=str(tmp_path / "saved"))
    assert open_video_split(flags, "train").index["path"] == paths[:4]
    with pytest.raises(ValueError, match=r"splits \['train', 'dev'\], not 'validation' \(--validation_split\)"):
        open_video_split(flags, "validation")
    flags.validation_split = "dev"
    assert open_video_split(flags, "validation").index["path"] == paths[4:]
    assert open_video_split(flags, "validation").label_names is None  # unlabelled


def test_mistakes_are_one_line_naming_the_flag(tmp_path, sample_index_file):
    with pytest.raises(ValueError, match=r"--test_index: no such file or folder: '/no/such/videos.csv'"):
        open_video_split(sources(test_index="/no/such/videos.csv"), "test")
    with pytest.raises(ValueError, match=r"--train_index: '.*/\*\.mp4' names no \.tar shards"):
        open_video_split(sources(train_index=str(tmp_path / "*.mp4")), "train")
    with pytest.raises(ValueError, match=r"--train_index: 'file://.*' names no \.tar shards"):
        open_video_split(sources(train_index=tmp_path.as_uri()), "train")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(ValueError, match="--train_index: expected a .csv or .jsonl index"):
        open_video_split(sources(train_index=str(tmp_path / "notes.txt")), "train")
    saved = tmp_path / "saved"
    datasets.Dataset.from_dict({"file": ["a.mp4"]}).save_to_disk(str(saved))
    with pytest.raises(ValueError, match=r"no video column found among \['file'\]: give --video_column"):
        open_video_split(sources(train_index=str(saved)), "train")
    with pytest.raises(ValueError, match="--label_column 'action' is not a column"):
        open_video_split(sources(train_index=str(saved), video_column="file", label_column="action"), "train")
    with pytest.raises(ValueError, match="split must be one of"):
        open_video_split(sources(train_index=sample_index_file), "dev")
