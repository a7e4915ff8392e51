"""adamae-prepare: an index into WebDataset tar shards (C5 layout), copied or re-encoded, resumable, deterministic."""

from __future__ import annotations

import csv
import json
import os
import tarfile
from pathlib import Path

import av
import datasets
import numpy as np
import pytest

from adamae_hf import prepare as prepare_module
from adamae_hf.data import VideoReader, generate_sample_videos, render_motion_clip, write_video
from adamae_hf.prepare import main
from adamae_hf.prepare_video import prepare_video


CLASSES = ["move_left", "move_right", "move_up"]


@pytest.fixture(scope="module")
def class_folder(tmp_path_factory) -> Path:
    """Six 12-frame 64x48 videos in three class folders."""
    root = tmp_path_factory.mktemp("class_folder")
    generate_sample_videos(
        root, num_videos=6, num_frames=12, height=48, width=64, class_folders=True, save_masks=False, gop_size=4
    )
    return root


@pytest.fixture(scope="module")
def large_videos(tmp_path_factory) -> Path:
    """A CSV index of two 40-frame 25 fps videos with one keyframe each: 96x128 (rotated 90 degrees) and 32x48."""
    root = tmp_path_factory.mktemp("large_videos")
    rng = np.random.default_rng(3)
    big, _ = render_motion_clip("move_right", 40, 96, 128, rng)
    small, _ = render_motion_clip("move_up", 40, 32, 48, rng)
    write_video(root / "big.mp4", big, fps=25, options={"g": "250", "preset": "veryfast"}, rotation=90)
    write_video(root / "small.mp4", small, fps=25, options={"g": "250", "preset": "veryfast"})
    write_index(root / "index.csv", [("big.mp4", "a"), ("small.mp4", "b")])
    return root


def write_index(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows(rows)
    return path


def run_prepare(index, output_dir, *flags: str, workers: int = 1) -> int:
    return main(["--index", str(index), "--output_dir", str(output_dir), "--num_workers", str(workers), *flags])


def shards_of(output_dir: Path) -> list[Path]:
    return sorted(output_dir.glob("shard-*.tar"))


def read_groups(shard: Path) -> dict[str, dict[str, bytes]]:
    """{key: {extension: bytes}} in member order."""
    groups: dict[str, dict[str, bytes]] = {}
    with tarfile.open(shard) as tar:
        for member in tar.getmembers():
            key, extension = member.name.split(".", 1)
            groups.setdefault(key, {})[extension] = tar.extractfile(member).read()
    return groups


def decoded(video: bytes, tmp_path: Path, name: str = "member.mp4") -> tuple[int, np.ndarray]:
    """(frame count, every frame) of an mp4 held in memory, read with the training reader."""
    path = tmp_path / name
    path.write_bytes(video)
    with VideoReader(path, num_threads=1) as reader:
        return reader.num_frames, reader.read_frames(list(range(reader.num_frames)))


def file_states(output_dir: Path) -> dict[str, tuple[int, int]]:
    return {path.name: (path.stat().st_ino, path.stat().st_mtime_ns) for path in shards_of(output_dir)}


def all_bytes(output_dir: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(output_dir.iterdir()) if path.name != "report.json"}


def test_copied_shards_hold_each_video_its_class_and_path(class_folder, tmp_path, capsys):
    assert run_prepare(class_folder, tmp_path / "out", "--videos_per_shard", "4") == 0
    out = tmp_path / "out"
    assert (out / "classes.txt").read_text().splitlines() == CLASSES
    shards = shards_of(out)
    assert [shard.name for shard in shards] == ["shard-000000.tar", "shard-000001.tar"]
    groups = {key: group for shard in shards for key, group in read_groups(shard).items()}
    assert [len(read_groups(shard)) for shard in shards] == [4, 2]
    sources = sorted(class_folder.glob("*/*.mp4"))
    assert len(groups) == len(sources) == 6
    for (key, group), source in zip(groups.items(), sources):
        assert "." not in key and set(group) == {"cls", "json", "mp4"}
        meta = json.loads(group["json"])
        assert meta == {"label": source.parent.name, "path": f"{source.parent.name}/{source.name}"}
        assert CLASSES[int(group["cls"].decode())] == source.parent.name
        assert group["mp4"] == source.read_bytes()  # no re-encode: the bytes unchanged
        num_frames, frames = decoded(group["mp4"], tmp_path)
        assert num_frames == 12 and frames.shape == (12, 48, 64, 3)
    report = json.loads((out / "report.json").read_text())
    assert {name: report[name] for name in ("videos", "written", "failed", "shards", "classes")} == {
        "videos": 6, "written": 6, "failed": 0, "shards": 2, "classes": 3
    }  # fmt: skip
    assert report["bytes"] == sum(shard.stat().st_size for shard in shards)
    assert "6 of 6 videos in 2 shards" in capsys.readouterr().out


def test_shard_size_limit(class_folder, tmp_path):
    # Below one video's size, each video gets a shard of its own; a large limit puts them all in one.
    assert run_prepare(class_folder, tmp_path / "tiny", "--shard_size_mb", "0.001") == 0
    assert [len(read_groups(shard)) for shard in shards_of(tmp_path / "tiny")] == [1] * 6
    video_bytes = sorted(os.path.getsize(path) for path in class_folder.glob("*/*.mp4"))
    limit_mb = (video_bytes[-1] + video_bytes[-2] + 8 * 1024) / 1e6  # room for any two videos, never three
    assert run_prepare(class_folder, tmp_path / "pairs", "--shard_size_mb", str(limit_mb)) == 0
    shards = shards_of(tmp_path / "pairs")
    assert [len(read_groups(shard)) for shard in shards] == [2, 2, 2]
    assert all(shard.stat().st_size <= limit_mb * 1e6 + tarfile.RECORDSIZE for shard in shards)


def keyframe_positions(video: bytes, tmp_path: Path) -> tuple[list[int], av.VideoFrame, int]:
    """(display-order frame numbers of the keyframes, the first decoded frame, frame count)."""
    path = tmp_path / "keyframes.mp4"
    path.write_bytes(video)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        step = 1 / (stream.average_rate * stream.time_base)
        packets = sorted((packet.pts, packet.is_keyframe) for packet in container.demux(stream) if packet.size)
    with av.open(str(path)) as container:
        first = next(container.decode(video=0))
    return [round(pts / step) for pts, keyframe in packets if keyframe], first, len(packets)


def test_reencode_scales_the_short_side_and_spaces_keyframes(large_videos, tmp_path):
    flags = ["--short_side", "48", "--keyframe_interval", "0.4", "--preset", "veryfast"]
    assert run_prepare(large_videos / "index.csv", tmp_path / "out", *flags) == 0
    (group_big, group_small) = read_groups(shards_of(tmp_path / "out")[0]).values()
    source_keyframes, _, _ = keyframe_positions((large_videos / "big.mp4").read_bytes(), tmp_path)
    assert source_keyframes == [0]  # one keyframe in 40 frames before
    keyframes, first, num_packets = keyframe_positions(group_big["mp4"], tmp_path)
    assert num_packets == 40 and (first.width, first.height) == (64, 48)  # 128x96 -> short side 48
    assert first.rotation == 90  # the display rotation travels with the video
    gop = round(25 * 0.4)
    assert keyframes[0] == 0 and all(later - earlier <= gop for earlier, later in zip(keyframes, keyframes[1:]))
    assert 40 - 1 - keyframes[-1] < gop
    num_frames, frames = decoded(group_big["mp4"], tmp_path)
    assert num_frames == 40 and frames.shape == (40, 64, 48, 3)  # upright: the reader applies the rotation
    # A video already below the short side keeps its size.
    small_keyframes, small_first, _ = keyframe_positions(group_small["mp4"], tmp_path)
    assert (small_first.width, small_first.height) == (48, 32) and len(small_keyframes) >= 4
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["reencoded"] and report["written"] == 2


@pytest.mark.parametrize("reencode", [False, True], ids=["copy", "reencode"])
def test_unreadable_videos_are_listed_with_their_reason_and_counted(class_folder, tmp_path, capsys, reencode):
    (tmp_path / "empty.mp4").write_bytes(b"")
    (tmp_path / "garbage.mp4").write_bytes(b"not a video" * 50)
    good = sorted(class_folder.glob("*/*.mp4"))[:3]
    rows = [(str(good[0]), "a"), ("missing.mp4", "b"), (str(good[1]), "a"), ("empty.mp4", "b"),
            ("garbage.mp4", "a"), (str(good[2]), "b")]  # fmt: skip
    index = write_index(tmp_path / "index.csv", rows)
    flags = ["--short_side", "32", "--preset", "ultrafast"] if reencode else []
    assert run_prepare(index, tmp_path / "out", *flags) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert (report["videos"], report["written"], report["failed"]) == (6, 3, 3)
    failures = {Path(failure["path"]).name: (failure["row"], failure["reason"]) for failure in report["failures"]}
    assert set(failures) == {"missing.mp4", "empty.mp4", "garbage.mp4"}
    assert failures["missing.mp4"] == (2, "file not found")
    assert failures["empty.mp4"] == (4, "empty file (0 bytes)")
    assert failures["garbage.mp4"][0] == 5 and "Invalid data" in failures["garbage.mp4"][1]
    groups = read_groups(shards_of(tmp_path / "out")[0])
    assert [json.loads(group["json"])["path"] for group in groups.values()] == [
        os.path.relpath(path, tmp_path) for path in good
    ]
    captured = capsys.readouterr()
    assert all(f"skipping {tmp_path / name}" in captured.err for name in failures)
    assert "3 of 6 videos" in captured.out and "3 could not be read" in captured.out


def test_an_index_of_only_unreadable_videos_is_one_error_line(tmp_path, capsys):
    index = write_index(tmp_path / "index.csv", [("missing.mp4", "a")])
    assert run_prepare(index, tmp_path / "out") == 1
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: --index: none of the 1 videos could be read")
    assert json.loads((tmp_path / "out" / "report.json").read_text())["failed"] == 1


def test_a_rerun_keeps_finished_shards_and_redoes_a_missing_one(class_folder, tmp_path):
    out = tmp_path / "out"
    assert run_prepare(class_folder, out, "--videos_per_shard", "2") == 0
    before, contents = file_states(out), all_bytes(out)
    assert run_prepare(class_folder, out, "--videos_per_shard", "2") == 0
    assert file_states(out) == before  # not rewritten: same inode, same modification time
    (out / "shard-000002.tar").unlink()
    assert run_prepare(class_folder, out, "--videos_per_shard", "2") == 0
    after = file_states(out)
    assert {name: after[name] for name in ("shard-000000.tar", "shard-000001.tar")} == {
        name: before[name] for name in ("shard-000000.tar", "shard-000001.tar")
    }
    assert all_bytes(out) == contents


def test_an_interrupted_run_resumes_after_its_last_finished_shard(class_folder, tmp_path, monkeypatch):
    uninterrupted = tmp_path / "uninterrupted"
    assert run_prepare(class_folder, uninterrupted, "--videos_per_shard", "2") == 0
    prepare_video = prepare_module.prepare_video

    def interrupted_at_row_5(row, path, settings):
        if row == 5:
            raise KeyboardInterrupt
        return prepare_video(row, path, settings)

    out = tmp_path / "out"
    monkeypatch.setattr(prepare_module, "prepare_video", interrupted_at_row_5)
    with pytest.raises(KeyboardInterrupt):
        run_prepare(class_folder, out, "--videos_per_shard", "2")
    assert [shard.name for shard in shards_of(out)] == ["shard-000000.tar", "shard-000001.tar"]
    assert (out / ".shard-000002.tar.tmp").exists()  # row 4 was being written when the run stopped
    assert json.loads((out / "manifest.json").read_text())["done_rows"] == 4
    finished = file_states(out)
    monkeypatch.setattr(prepare_module, "prepare_video", prepare_video)
    assert run_prepare(class_folder, out, "--videos_per_shard", "2") == 0
    assert {name: file_states(out)[name] for name in finished} == finished
    assert not list(out.glob(".*.tmp"))
    assert all_bytes(out) == all_bytes(uninterrupted)


def dies_at_row_3(row, path, settings):
    """A worker process killed while preparing row 3 (as by the out-of-memory killer); a module-level function, so
    that a forked worker finds it by name."""
    if row == 3:
        os._exit(9)
    return prepare_video(row, path, settings)


def test_a_killed_worker_stops_the_run_in_one_line_and_a_rerun_finishes_it(
    class_folder, tmp_path, capsys, monkeypatch
):
    uninterrupted = tmp_path / "uninterrupted"
    assert run_prepare(class_folder, uninterrupted, "--videos_per_shard", "2") == 0
    out = tmp_path / "out"
    monkeypatch.setattr(prepare_module, "prepare_video", dies_at_row_3)
    assert run_prepare(class_folder, out, "--videos_per_shard", "2", workers=2) == 1  # (a Pool waited forever)
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: a worker process died") and "run the same command again" in error
    monkeypatch.setattr(prepare_module, "prepare_video", prepare_video)
    assert run_prepare(class_folder, out, "--videos_per_shard", "2", workers=2) == 0
    assert all_bytes(out) == all_bytes(uninterrupted)


def test_a_rerun_with_other_arguments_is_refused(class_folder, tmp_path, capsys):
    out = tmp_path / "out"
    assert run_prepare(class_folder, out, "--videos_per_shard", "2") == 0
    before = file_states(out)
    capsys.readouterr()
    assert run_prepare(class_folder, out, "--videos_per_shard", "3") == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith(f"error: --output_dir: {out} was prepared with other")
    assert "--videos_per_shard 2 then, 3 now" in error
    assert file_states(out) == before


@pytest.mark.parametrize("flags", [[], ["--short_side", "32", "--preset", "ultrafast", "--bit_exact"]],
                         ids=["copy", "reencode"])  # fmt: skip
def test_parallel_workers_write_the_same_bytes_as_one(class_folder, tmp_path, flags):
    assert run_prepare(class_folder, tmp_path / "serial", "--videos_per_shard", "4", *flags, workers=1) == 0
    assert run_prepare(class_folder, tmp_path / "parallel", "--videos_per_shard", "4", *flags, workers=2) == 0
    serial, parallel = all_bytes(tmp_path / "serial"), all_bytes(tmp_path / "parallel")
    assert list(serial) == ["classes.txt", "manifest.json", "shard-000000.tar", "shard-000001.tar"]
    assert serial == parallel


def test_the_datasets_webdataset_builder_reads_the_shards(class_folder, tmp_path):
    out = tmp_path / "out"
    assert run_prepare(class_folder, out, "--videos_per_shard", "4") == 0
    sources = sorted(class_folder.glob("*/*.mp4"))
    files = str(out / "*.tar")
    loaded = datasets.load_dataset("webdataset", data_files=files, split="train", cache_dir=str(tmp_path / "cache"))
    streamed = datasets.load_dataset("webdataset", data_files=files, split="train", streaming=True)
    for dataset in (loaded, streamed):
        examples = list(dataset.cast_column("mp4", datasets.Video(decode=False)))
        assert [example["mp4"]["bytes"] for example in examples] == [source.read_bytes() for source in sources]
        assert [CLASSES[example["cls"]] for example in examples] == [source.parent.name for source in sources]
        assert [example["json"]["label"] for example in examples] == [source.parent.name for source in sources]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--short_side", "33"], "--short_side: expected an even number of pixels"),
        (["--keyframe_interval", "0"], "--keyframe_interval: expected a positive number of seconds"),
        (["--videos_per_shard", "0"], "--videos_per_shard: expected a positive number of videos"),
        (["--preset", "fastest"], "argument --preset: invalid choice"),
    ],
)
def test_user_mistakes_are_one_line(class_folder, tmp_path, capsys, flags, message):
    assert run_prepare(class_folder, tmp_path / "out", *flags) == 1
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and error.startswith("error: ") and message in error


def test_a_missing_index_is_one_line(tmp_path, capsys):
    assert run_prepare(tmp_path / "nothing.csv", tmp_path / "out") == 1
    error = capsys.readouterr().err.strip()
    assert (
        error == f"error: --index: expected a .csv / .jsonl index or a folder of class folders, got "
        f"'{tmp_path / 'nothing.csv'}': no such file."
    )


def frame_times(video: bytes, tmp_path: Path) -> list[float]:
    path = tmp_path / "times.mp4"
    path.write_bytes(video)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return [round(float((frame.pts - (stream.start_time or 0)) * stream.time_base), 3)
                for frame in container.decode(stream)]  # fmt: skip


def test_reencode_keeps_variable_frame_timing(tmp_path, moving_frames):
    times = [0.0, 0.04, 0.08, 0.2, 0.24, 0.4, 0.44, 0.48, 0.6, 0.64, 0.68, 0.9]  # gaps: a variable frame rate
    write_video(tmp_path / "vfr.mp4", moving_frames, fps=25, timestamps=times)
    index = write_index(tmp_path / "index.csv", [("vfr.mp4", "a")])
    assert run_prepare(index, tmp_path / "out", "--keyframe_interval", "0.2", "--preset", "ultrafast") == 0
    (group,) = read_groups(shards_of(tmp_path / "out")[0]).values()
    assert frame_times(group["mp4"], tmp_path) == times
