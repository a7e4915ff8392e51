"""Decoding with PyAV: frame accuracy with seeking, awkward streams, and every kind of bad file."""

import faulthandler
import io
import subprocess
import sys
import time
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adamae_hf.data import VideoDecodeError, VideoReader, probe_video, read_video_frames, write_video


def decode_everything(path):
    """Reference: every frame from a plain full decode, with its grid index round((t - start) * fps)."""
    with av.open(path) as container:
        stream = container.streams.video[0]
        fps, time_base, start = float(stream.average_rate), float(stream.time_base), stream.start_time or 0
        frames, slots = [], []
        for frame in container.decode(stream):
            frames.append(frame.to_ndarray(format="rgb24"))
            slots.append(int(round((frame.pts - start) * time_base * fps)))
    return np.stack(frames), np.array(slots)


def smooth_frames(num_frames, height, width):
    """Colour gradients with a moving block: little high-frequency detail, so 4:2:0 chroma loses almost nothing."""
    rows, cols = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    for t in range(num_frames):
        frames[t, ..., 0] = 40 + 150 * cols / width
        frames[t, ..., 1] = 60 + 120 * rows / height
        frames[t, ..., 2] = 90 + 3 * t
        top, left = height // 4, (t * 3) % max(width // 2, 1)
        frames[t, top : top + height // 3, left : left + width // 4] = (220, 200, 40)
    return frames


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255**2 / max(mse, 1e-12))


@pytest.mark.parametrize("skip_unneeded_frames", [True, False])
def test_any_indices_match_a_full_decode(long_video, skip_unneeded_frames):
    reference, _ = decode_everything(long_video.path)
    rng = np.random.default_rng(0)
    with VideoReader(long_video.path, num_threads=1, skip_unneeded_frames=skip_unneeded_frames) as reader:
        assert reader.num_frames == 60 and reader.frame_count_source == "header"
        for _ in range(25):
            indices = np.sort(rng.integers(0, 60, size=rng.integers(1, 17)))
            np.testing.assert_array_equal(reader.read_frames(indices), reference[indices])
        # Unsorted, repeated, and a strided window like a training clip.
        for indices in ([50, 3, 3, 20], [59, 59, 0], list(range(13, 60, 4))):
            np.testing.assert_array_equal(reader.read_frames(indices), reference[indices])


def test_decoder_threads_do_not_change_the_output(long_video):
    indices = list(range(5, 60, 6))
    with (
        VideoReader(long_video.path, num_threads=0) as threaded,
        VideoReader(long_video.path, num_threads=1) as single,
    ):
        np.testing.assert_array_equal(threaded.read_frames(indices), single.read_frames(indices))


def test_indices_past_the_end_get_the_last_frame(long_video):
    reference, _ = decode_everything(long_video.path)
    frames = read_video_frames(long_video.path, [58, 59, 60, 100])
    np.testing.assert_array_equal(frames, reference[[58, 59, 59, 59]])


def test_probe_reports_the_stream(long_video):
    info = probe_video(long_video.path)
    assert (info.num_frames, info.width, info.height, info.codec) == (60, 64, 48, "h264")
    assert info.fps == 25 and info.duration == pytest.approx(2.4) and info.constant_frame_rate


def test_variable_frame_rate_samples_the_frame_on_screen(tmp_path, moving_frames):
    times = [0.0, 0.04, 0.08, 0.2, 0.21, 0.22, 0.5, 0.54, 0.9, 1.0, 1.04, 1.3]
    path = write_video(tmp_path / "vfr.mp4", moving_frames, fps=25, timestamps=times)
    frames, slots = decode_everything(path)
    with VideoReader(path) as reader:
        assert not reader.info().constant_frame_rate
        assert reader.num_frames == slots[-1] + 1  # measured from timestamps, not the header's 12
        for index in range(reader.num_frames):
            exact = np.flatnonzero(slots == index)
            # The first frame in the slot, else the latest frame before it (still on screen).
            expected = frames[exact[0]] if exact.size else frames[np.flatnonzero(slots < index)[-1]]
            np.testing.assert_array_equal(reader.read_frames([index])[0], expected)


@pytest.mark.parametrize("degrees", [90, -90, 180])
def test_rotation_metadata_is_applied(tmp_path, moving_frames, degrees):
    frames = moving_frames.copy()
    frames[:, :8, :8] = (255, 0, 0)  # a red corner marks the top-left
    plain = read_video_frames(write_video(tmp_path / "plain.mp4", frames), [0, 5])
    with VideoReader(write_video(tmp_path / "rotated.mp4", frames, rotation=degrees)) as reader:
        rotated = reader.read_frames([0, 5])
        assert reader.rotation % 360 == degrees % 360
    # The display matrix angle is counter-clockwise, as np.rot90.
    np.testing.assert_array_equal(rotated, np.rot90(plain, k=degrees // 90, axes=(1, 2)))
    if degrees == 90:
        assert rotated.shape == (2, 64, 48, 3) and rotated[0, -1, 0, 0] > 200  # top-left went to bottom-left


@pytest.mark.parametrize(
    "file_name, codec, pix_fmt, size, decoded_format",
    [
        ("gray.mkv", "ffv1", "gray", (48, 64), "gray"),
        ("gray_h264.mp4", "libx264", "gray", (48, 64), None),  # monochrome H.264; FFmpeg may output it as 4:2:0
        ("ten_bit.mp4", "libx264", "yuv420p10le", (48, 64), "yuv420p10le"),
        ("full_range.mp4", "libx264", "yuvj420p", (48, 64), "yuvj420p"),
        ("odd.mp4", "libx264", None, (273, 641), "yuv444p"),  # 4:2:0 cannot have odd sides
        ("qcif.mp4", "libx264", None, (144, 176), "yuv420p"),
        ("mpeg4.avi", "mpeg4", "yuv420p", (48, 64), "yuv420p"),
    ],
)
def test_other_pixel_formats_sizes_and_containers_decode_to_rgb(
    tmp_path, file_name, codec, pix_fmt, size, decoded_format
):
    source = smooth_frames(12, *size)
    if pix_fmt == "gray":
        source = np.repeat(source.mean(axis=-1, keepdims=True).astype(np.uint8), 3, axis=-1)
    options = {"crf": "12"} if codec == "libx264" else {"b": "2000000"}
    path = write_video(tmp_path / file_name, source, codec=codec, pix_fmt=pix_fmt, options=options)
    if decoded_format is not None:
        assert probe_video(path).pix_fmt == decoded_format
    frames = read_video_frames(path, [0, 6, 11])
    assert frames.shape == (3, *size, 3) and frames.dtype == np.uint8
    if pix_fmt == "gray":
        assert np.array_equal(frames[..., 0], frames[..., 1]) and np.array_equal(frames[..., 1], frames[..., 2])
    assert psnr(frames, source[[0, 6, 11]]) > 30


def test_unknown_frame_count_is_estimated(tmp_path, moving_frames):
    path = write_video(tmp_path / "no_count.mkv", moving_frames, codec="ffv1", pix_fmt="yuv420p")
    with VideoReader(path) as reader:
        assert reader.frame_count_source != "header"  # Matroska stores no frame count
        assert reader.num_frames == 12
        assert reader.read_frames([11]).shape == (1, 48, 64, 3)


def test_header_that_overstates_the_length_is_corrected(tmp_path, moving_frames):
    path = write_video(
        tmp_path / "full.mp4",
        np.concatenate([moving_frames] * 3),
        container_options={"movflags": "faststart"},
        options={"g": "6"},
    )
    data = open(path, "rb").read()
    truncated = tmp_path / "truncated_faststart.mp4"
    truncated.write_bytes(data[: len(data) * 2 // 3])  # the index (at the front) still lists all 36 frames
    with VideoReader(truncated) as reader:
        assert reader.num_frames == 36
        frames = reader.read_frames([0, 35])
        assert frames.shape == (2, 48, 64, 3)
        assert reader.frame_count_source == "decoded" and 0 < reader.num_frames < 36


def write_audio_only(path):
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=16000)
        samples = (0.1 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)[None]
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate, frame.pts = 16000, 0
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return str(path)


def make_bad_file(kind, tmp_path, good_path):
    path = tmp_path / f"{kind}.mp4"
    if kind == "missing":
        return str(path)
    if kind == "zero_bytes":
        path.write_bytes(b"")
    elif kind == "random_bytes":
        path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    elif kind == "text":
        path.write_text("this is a text file, not a video\n" * 20)
    elif kind == "truncated":  # default mp4 layout: the index is at the end, so half a file has none
        data = open(good_path, "rb").read()
        path.write_bytes(data[: len(data) // 2])
    elif kind == "audio_only":
        return write_audio_only(tmp_path / "audio_only.m4a")
    elif kind == "directory":
        path.mkdir()
    return str(path)


@pytest.mark.parametrize(
    "kind, reason",
    [
        ("missing", "file not found"),
        ("zero_bytes", "empty file (0 bytes)"),
        ("random_bytes", "cannot open as a media container"),
        ("text", "cannot open as a media container"),
        ("truncated", "cannot open as a media container"),
        ("audio_only", "no video stream (streams found: audio)"),
        ("directory", "not a regular file"),
    ],
)
def test_bad_files_raise_video_decode_error_with_a_reason(tmp_path, long_video, kind, reason):
    path = make_bad_file(kind, tmp_path, long_video.path)
    with pytest.raises(VideoDecodeError) as raised:
        read_video_frames(path, [0])
    assert raised.value.path == path and raised.value.reason.startswith(reason)
    assert path in str(raised.value)


def test_one_frame_video(tmp_path, moving_frames):
    path = write_video(tmp_path / "one.mp4", moving_frames[:1])
    assert probe_video(path).num_frames == 1
    assert read_video_frames(path, [0, 0, 3]).shape == (3, 48, 64, 3)


@pytest.fixture(scope="module")
def fuzz_seeds(tmp_path_factory, moving_frames):
    folder = tmp_path_factory.mktemp("fuzz")
    return [
        open(write_video(folder / "plain.mp4", moving_frames, options={"g": "4"}), "rb").read(),
        open(
            write_video(
                folder / "faststart.mp4",
                moving_frames,
                options={"g": "4"},
                container_options={"movflags": "faststart"},
            ),
            "rb",
        ).read(),
    ]


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed_index=st.integers(0, 1),
    edits=st.lists(
        st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255), st.integers(1, 16)), min_size=1, max_size=12
    ),
    truncate=st.one_of(st.none(), st.floats(0.05, 1.0)),
    indices=st.lists(st.integers(0, 40), min_size=1, max_size=8),
)
def test_mutated_mp4_is_decoded_or_skipped_with_a_reason(tmp_path, fuzz_seeds, seed_index, edits, truncate, indices):
    data = bytearray(fuzz_seeds[seed_index])
    for position, value, length in edits:  # overwrite short runs of bytes anywhere, header included
        start = int(position * len(data))
        data[start : start + length] = bytes([value]) * len(data[start : start + length])
    if truncate is not None:
        data = data[: max(1, int(truncate * len(data)))]
    path = tmp_path / "mutated.mp4"
    path.write_bytes(bytes(data))
    # A hang inside FFmpeg cannot be interrupted from Python; the watchdog ends the run instead of stalling CI.
    faulthandler.dump_traceback_later(60, exit=True)
    start = time.perf_counter()
    try:
        frames = read_video_frames(path, indices, num_threads=1)
    except VideoDecodeError as error:
        assert error.reason
    else:
        assert (
            frames.dtype == np.uint8 and frames.ndim == 4 and frames.shape[0] == len(indices) and frames.shape[-1] == 3
        )
    finally:
        faulthandler.cancel_dump_traceback_later()
    assert time.perf_counter() - start < 10


# ------------------------------------------------------------------------------------------- sources other than paths


def test_bytes_and_file_objects_decode_like_the_path(long_video):
    indices = [0, 7, 33, 59, 12]
    expected = read_video_frames(long_video.path, indices)
    data = open(long_video.path, "rb").read()
    with open(long_video.path, "rb") as file:
        sources = [data, bytearray(data), memoryview(data), io.BytesIO(data), file]
        for source in sources:
            np.testing.assert_array_equal(read_video_frames(source, indices), expected)
            assert probe_video(source) == probe_video(long_video.path)
    with VideoReader(io.BytesIO(data)) as reader:  # one reader, seeking back and forth in memory
        np.testing.assert_array_equal(reader.read_frames([59, 0]), expected[[3, 0]])
        np.testing.assert_array_equal(reader.read_frames(indices), expected)


@pytest.mark.parametrize("kind", ["zero_bytes", "random_bytes", "text", "truncated", "audio_only"])
def test_bad_bytes_name_their_size_and_bad_file_objects_their_name(tmp_path, long_video, kind):
    path = make_bad_file(kind, tmp_path, long_video.path)
    data = open(path, "rb").read()
    with pytest.raises(VideoDecodeError) as raised:
        read_video_frames(data, [0])
    assert raised.value.path == f"<{len(data)} bytes in memory>"
    with open(path, "rb") as file, pytest.raises(VideoDecodeError) as raised_from_file:
        read_video_frames(file, [0])
    assert raised_from_file.value.path == path and raised_from_file.value.reason == raised.value.reason


def test_a_source_of_another_kind_is_refused(long_video):
    with pytest.raises(TypeError, match="path, bytes or a binary file object .* got int"):
        VideoReader(3)


# ------------------------------------------------------------------------------------------------ high frame rates


@pytest.mark.parametrize("fps", [1200, 5000])
def test_high_frame_rates_use_the_streams_own_rate(tmp_path, fps):
    frames = smooth_frames(40, 48, 64)
    path = write_video(tmp_path / f"{fps}fps.mp4", frames, fps=fps, options={"g": "8"})
    reference, slots = decode_everything(path)
    np.testing.assert_array_equal(slots, np.arange(40))
    with VideoReader(path, num_threads=1) as reader:
        assert reader.fps == fps and reader.num_frames == 40
        for indices in ([0, 1, 2, 3], [39, 17, 17, 5], list(range(3, 40, 6))):
            np.testing.assert_array_equal(reader.read_frames(indices), reference[indices])
        assert reader.num_frames == 40  # nothing "corrected"


# -------------------------------------------------------------------------------------------- scaling in the decoder


def test_the_decoder_scales_only_frames_far_larger_than_the_target(tmp_path):
    frames = smooth_frames(3, 200, 360)
    path = write_video(tmp_path / "large.mp4", frames, options={"crf": "10"})
    with VideoReader(path, target_short_side=100) as reader:  # 200 <= 2 x 100: left as coded
        np.testing.assert_array_equal(reader.read_frames([1]), read_video_frames(path, [1]))
    with VideoReader(path, target_short_side=40) as reader:
        scaled = reader.read_frames([0, 2])
    assert scaled.shape == (2, 40, 72, 3)  # short side 40, long side 360 * 40 / 200
    # Area averaging: close to an antialiased resize of the full frames.
    full = torch.from_numpy(read_video_frames(path, [0, 2])).permute(0, 3, 1, 2).float()
    resized = torch.nn.functional.interpolate(full, size=(40, 72), mode="bilinear", antialias=True)
    assert (resized.permute(0, 2, 3, 1) - torch.from_numpy(scaled).float()).abs().mean() < 2.0


def test_the_reader_file_imports_no_model_file():
    code = "import sys, video_adamae; assert 'modeling_adamae' not in sys.modules, 'modeling_adamae imported'"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).resolve().parents[1])
