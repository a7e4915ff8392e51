"""Reading videos: the one reader that training, evaluation and the Hub pipeline share.

This file travels with every AdaMAE classifier folder (beside ``pipeline_adamae.py`` and ``video_clips_adamae.py``),
so it needs only PyAV and NumPy; ``adamae_hf.data`` re-exports it. :class:`VideoReader` is frame-accurate, seek-based
decoding with PyAV, from a path, bytes or a binary file object; which frames make a clip and how a clip becomes the
evaluation views is ``video_clips_adamae.py``'s part.

Decoding
--------
A clip of 16 frames at stride 4 needs 61 consecutive frames of a video, yet the simple way to get them
(decode from the first frame, keep the wanted ones) decodes everything before the window too. :class:`VideoReader`
instead seeks to the keyframe before the window, tells the decoder to drop non-reference frames it will not
return (they cannot be needed to decode any other frame), stops at the last wanted frame and converts only the
wanted frames to RGB. It also copes with the files real datasets contain: unknown or wrong frame counts, variable
frame rate, any frame rate (high-speed footage at thousands of frames per second), rotation metadata and pixel formats
other than yuv420p. Given a ``target_short_side``, frames far larger than that (4K) are scaled in the same swscale
pass that converts them to RGB, so they never exist at full size.

Frame indices are positions on the stream's nominal frame grid: index i is the frame shown at time
``start_time + i / fps``, where fps is the stream's average rate. For constant-frame-rate video that is exactly
the i-th frame. For variable frame rate it is the first frame whose timestamp rounds to slot i or, when no frame
does (a gap), the latest earlier frame, the one still on screen: what a fixed-rate copy of the video shows.

Every failure to read a file surfaces as :class:`VideoDecodeError` with a short, human-readable reason, so a data
loader can skip the file and say why.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass

import av
import numpy as np


VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv", ".flv", ".ts")

# A decoder that keeps failing on consecutive packets is reading garbage; give up rather than loop.
_MAX_CONSECUTIVE_DECODE_ERRORS = 8
# Decoding stops with an error after 4 * (last wanted index + 1) + this many frames: a stream whose timestamps
# never reach the window (garbled or stuck) must not be decoded to the end of a possibly huge file.
_DECODE_SLACK_FRAMES = 64
_FALLBACK_FPS = 25.0
# The decoder scales frames down only when their short side exceeds this many times the target: frames of ordinary
# size reach the transforms untouched (and give exactly the processor's pixels), huge ones never become full-size RGB.
_DOWNSCALE_FACTOR = 2


class VideoDecodeError(Exception):
    """A video file that cannot be decoded. ``reason`` says why in a few words; ``path`` names the file."""

    def __init__(self, path: str, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):
        # Keep the two-argument constructor working when the error crosses a DataLoader worker boundary.
        return (type(self), (self.path, self.reason))


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about its first video stream (before rotation is applied).

    Attributes:
        num_frames: Frames on the nominal grid; exact for constant frame rate when ``frame_count_source`` is
            "header" or "decoded", an estimate otherwise.
        fps: Nominal frame rate used to map indices to timestamps.
        duration: Seconds, ``num_frames / fps``.
        width, height: Coded size in pixels.
        pix_fmt: Decoder output pixel format (e.g. "yuv420p", "gray", "yuv420p10le").
        codec: Decoder name.
        constant_frame_rate: False when the average rate differs from the stream's base rate.
        frame_count_source: "header", "duration", "container_duration", "packets" or "decoded".
    """

    num_frames: int
    fps: float
    duration: float
    width: int
    height: int
    pix_fmt: str | None
    codec: str
    constant_frame_rate: bool
    frame_count_source: str


def _describe(error: BaseException) -> str:
    # FFmpeg errors repeat the file name in str(error); the reason reads better without it.
    message = getattr(error, "strerror", None) or str(error).strip() or "no message"
    return f"{type(error).__name__}: {message}"


def describe_source(source) -> str:
    """How errors name a video source: the path, "<N bytes in memory>", or a file object's ``name``."""
    if isinstance(source, (str, os.PathLike)):
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        return f"<{memoryview(source).nbytes} bytes in memory>"
    name = getattr(source, "name", None)
    return str(name) if isinstance(name, (str, os.PathLike)) else f"<{type(source).__name__} object>"


def _container_input(source):
    """What ``av.open`` reads: a path string, or a seekable binary file object (bytes wrapped in one)."""
    if isinstance(source, (str, os.PathLike)):
        check_video_file(str(source))
        return str(source)
    if isinstance(source, (bytes, bytearray, memoryview)):
        if memoryview(source).nbytes == 0:
            raise VideoDecodeError(describe_source(source), "empty file (0 bytes)")
        return io.BytesIO(source)
    if callable(getattr(source, "read", None)) and callable(getattr(source, "seek", None)):
        if source.seek(0, io.SEEK_END) == 0:
            raise VideoDecodeError(describe_source(source), "empty file (0 bytes)")
        return source
    raise TypeError(
        "a video source must be a path, bytes or a binary file object (with read and seek), "
        f"got {type(source).__name__}"
    )


def check_video_file(path: str) -> None:
    """Raise :class:`VideoDecodeError` for problems visible without opening the file (missing, empty, a folder)."""
    if not os.path.exists(path):
        raise VideoDecodeError(path, "file not found")
    if not os.path.isfile(path):
        raise VideoDecodeError(path, "not a regular file")
    if os.path.getsize(path) == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


class VideoReader:
    """Reads frames from the first video stream of a file; use it as a context manager.

    Args:
        source: Video file path, its bytes (``bytes``/``bytearray``/``memoryview``), or a binary file object with
            ``read`` and ``seek`` (read from its start).
        num_threads: Decoder threads; 0 lets FFmpeg choose (one per core). Frame and slice threading are both
            enabled. Inside DataLoader workers that already occupy every core, 1 is usually fastest.
        skip_unneeded_frames: Ask the decoder to drop non-reference frames that are not returned (before the
            window, and between wanted frames on constant-frame-rate streams). Output is identical either way.
        target_short_side: Frames whose short side is more than twice this are scaled by the decoder (swscale,
            area averaging) so that their short side equals it, aspect ratio kept; smaller frames come out as
            coded. A 4K clip then never exists as full-size RGB. None: always the coded size.

    Attributes:
        path: The file's path, or how errors name an in-memory source (see :func:`describe_source`).

    Raises:
        VideoDecodeError: The file is missing, empty, not a media container, or has no video stream.
        TypeError: ``source`` is none of the accepted kinds.

    Example::

        with VideoReader("clip.mp4") as reader:
            frames = reader.read_frames([0, 4, 8, 12])  # uint8 (4, H, W, 3) RGB
    """

    def __init__(
        self,
        source,
        num_threads: int = 0,
        skip_unneeded_frames: bool = True,
        target_short_side: int | None = None,
    ):
        self.path = describe_source(source)
        self._num_threads = num_threads
        self._target_short_side = target_short_side
        self._input = _container_input(source)
        try:
            self._open_container()
        except VideoDecodeError:
            raise
        except Exception as error:  # PyAV raises many types for unreadable input; all mean "not a video".
            raise VideoDecodeError(self.path, f"cannot open as a media container ({_describe(error)})") from None
        try:
            self._setup_stream()
        except VideoDecodeError:
            self.close()
            raise
        except Exception as error:
            self.close()
            raise VideoDecodeError(self.path, f"unreadable stream header ({_describe(error)})") from None
        self.skip_unneeded_frames = skip_unneeded_frames
        self.rotation: int | None = None  # Known after the first decoded frame.

    # ------------------------------------------------------------------------------------------------ setup

    def _open_container(self) -> None:
        """Open the file and pick the first video stream, with frame and slice threading."""
        if not isinstance(self._input, str):
            self._input.seek(0)
        self._container = av.open(self._input, metadata_errors="ignore")
        video_streams = self._container.streams.video
        if len(video_streams) == 0:
            found = sorted({stream.type for stream in self._container.streams}) or ["none"]
            self.close()
            raise VideoDecodeError(self.path, f"no video stream (streams found: {', '.join(found)})")
        self._stream = video_streams[0]
        codec_context = self._stream.codec_context
        if codec_context is None:
            self.close()
            raise VideoDecodeError(self.path, "no decoder for the video stream")
        codec_context.thread_type = "AUTO"
        codec_context.thread_count = self._num_threads

    def _setup_stream(self) -> None:
        self._time_base = float(self._stream.time_base) if self._stream.time_base else 1.0 / av.time_base
        start_time = self._stream.start_time
        self._start_pts = start_time if start_time is not None else 0

        average_rate = self._stream.average_rate
        base_rate = self._stream.base_rate
        fps = None
        # Any positive rate is real: high-speed cameras record at thousands of frames per second.
        for rate in (average_rate, self._stream.guessed_rate, base_rate):
            if rate is not None and float(rate) > 0:
                fps = float(rate)
                break
        self._fps = fps if fps is not None else _FALLBACK_FPS
        self._constant_frame_rate = (
            average_rate is not None
            and base_rate is not None
            and float(base_rate) > 0
            and abs(float(average_rate) / float(base_rate) - 1.0) < 0.01
        )
        self._num_frames, self._frame_count_source = self._estimate_num_frames()

    def _estimate_num_frames(self) -> tuple[int, str]:
        """Frame count from the header, cross-checked against the duration; from packet timestamps if neither.

        Variable-frame-rate streams are always measured from packet timestamps (a demux pass, no decoding),
        because their header count and duration need not match the grid that the timestamps span.
        """
        if not self._constant_frame_rate:
            return self._count_grid_slots_from_packets(), "packets"
        header_count = self._stream.frames if self._stream.frames and self._stream.frames > 0 else None
        duration_count = None
        source = None
        if self._stream.duration is not None and self._stream.duration > 0:
            duration_count = int(round(self._stream.duration * self._time_base * self._fps))
            source = "duration"
        elif self._container.duration is not None and self._container.duration > 0:
            duration_count = int(round(self._container.duration / av.time_base * self._fps))
            source = "container_duration"
        if header_count is not None:
            # A header count far below the duration would silently hide the end of the video; a count too high
            # is caught at decode time (see read_frames), so keep the larger of two disagreeing numbers.
            if duration_count is not None and duration_count > 1.1 * header_count + 1:
                return duration_count, source
            return header_count, "header"
        if duration_count is not None and duration_count > 0:
            return duration_count, source
        return self._count_grid_slots_from_packets(), "packets"

    def _count_grid_slots_from_packets(self) -> int:
        """Read every packet (no decoding) and return the grid slots up to the last timestamp, or the count."""
        packet_count = 0
        last_index = -1
        try:
            for packet in self._container.demux(self._stream):
                if packet.size > 0:
                    packet_count += 1
                    if packet.pts is not None:
                        last_index = max(last_index, self._index_of(packet.pts))
            self._rewind()
        except Exception as error:
            raise VideoDecodeError(self.path, f"cannot read packets ({_describe(error)})") from None
        if packet_count == 0:
            raise VideoDecodeError(self.path, "video stream has no packets")
        return last_index + 1 if last_index >= 0 else packet_count

    # ------------------------------------------------------------------------------------------------ queries

    @property
    def num_frames(self) -> int:
        """Frames on the nominal grid (see :class:`VideoInfo`); corrected downwards once decoding hits the end."""
        return self._num_frames

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def frame_count_source(self) -> str:
        return self._frame_count_source

    def info(self) -> VideoInfo:
        """Stream properties as a :class:`VideoInfo`."""
        codec_context = self._stream.codec_context
        return VideoInfo(
            num_frames=self._num_frames,
            fps=self._fps,
            duration=self._num_frames / self._fps,
            width=codec_context.width,
            height=codec_context.height,
            pix_fmt=codec_context.pix_fmt,
            codec=codec_context.name,
            constant_frame_rate=self._constant_frame_rate,
            frame_count_source=self._frame_count_source,
        )

    # ------------------------------------------------------------------------------------------------ decoding

    def read_frames(self, frame_indices) -> np.ndarray:
        """Decode the frames at the given grid indices.

        Args:
            frame_indices: Non-negative ints in any order, repeats allowed (e.g. a clip that repeats its last frame).

        Returns:
            uint8 array (len(frame_indices), H, W, 3), RGB, rotated upright when the stream carries rotation
            metadata (multiples of 90 degrees; other angles are rounded to the nearest one).

        Indices past the real end of the stream get the last frame; when that happens because the header
        overstated the length, :attr:`num_frames` is corrected to the true count (``frame_count_source`` becomes
        "decoded") so a caller can resample its indices.

        Raises:
            VideoDecodeError: Nothing decodes, the decoder keeps failing, or timestamps do not advance.
        """
        indices = np.asarray(frame_indices, dtype=np.int64).reshape(-1)
        if indices.size == 0:
            raise ValueError("frame_indices must not be empty")
        if (indices < 0).any():
            raise ValueError(f"frame_indices must be >= 0, got {indices.min()}")
        wanted = np.unique(indices)
        try:
            frames_by_index = self._decode_wanted(wanted.tolist())
        except VideoDecodeError:
            raise
        except Exception as error:
            raise VideoDecodeError(self.path, f"decoding failed ({_describe(error)})") from None
        frames = np.stack([frames_by_index[index] for index in indices.tolist()])  # (T, H, W, 3)
        quarter_turns = int(round((self.rotation or 0) / 90.0)) % 4
        if quarter_turns:
            # The display matrix angle is counter-clockwise, like np.rot90 over the (H, W) axes.
            frames = np.ascontiguousarray(np.rot90(frames, k=quarter_turns, axes=(1, 2)))
        return frames

    def read_sampled_frames(self, sample_indices) -> tuple[np.ndarray, int]:
        """Decode the frames that ``sample_indices(video_length)`` picks for the video's length
        (:attr:`num_frames`). When the header overstated the length and the picked frames ran past the real end,
        pick again inside the real length.

        ``sample_indices`` must give the same indices whenever it is called with the same length (re-create a
        random generator from its seed inside it): the clip then depends on the file alone, never on whether an
        earlier read already found the real length.

        Returns:
            The frames (see :meth:`read_frames`) and the length they were picked for.
        """
        length = self.num_frames
        frames = self.read_frames(sample_indices(length))
        if self.num_frames < length:  # decoding found the real end before the claimed one
            length = self.num_frames
            frames = self.read_frames(sample_indices(length))
        return frames, length

    def _output_size(self, width: int, height: int) -> tuple[int, int]:
        """(width, height) of the RGB frames: the coded size, or scaled to ``target_short_side`` when far larger."""
        target = self._target_short_side
        if target is None or min(width, height) <= _DOWNSCALE_FACTOR * target:
            return width, height
        scaled_height, scaled_width = short_side_resize_shape(height, width, target)
        return scaled_width, scaled_height

    def _index_of(self, timestamp: int) -> int:
        return int(round((timestamp - self._start_pts) * self._time_base * self._fps))

    def _seek_to_index(self, index: int) -> None:
        target = self._start_pts + int(index / self._fps / self._time_base)
        self._container.seek(target, stream=self._stream, backward=True, any_frame=False)

    def _decode_wanted(self, wanted: list[int]) -> dict[int, np.ndarray]:
        if wanted[0] > 0:
            try:
                self._seek_to_index(wanted[0])
            except Exception:  # Some containers cannot seek; decoding from the start still works.
                pass
            else:
                frames_by_index = self._decode_from_current_position(wanted, after_seek=True)
                if frames_by_index is not None:
                    return frames_by_index
        # Nothing consumed yet, a seek that was impossible or untrustworthy, or a window past the real end:
        # decode from the start, which works for any readable stream.
        self._rewind()
        return self._decode_from_current_position(wanted, after_seek=False)

    def _rewind(self) -> None:
        """Go back to the first packet; reopen the file if the container cannot seek."""
        try:
            self._container.seek(0)
        except Exception:
            self.close()
            self._open_container()

    def _decode_from_current_position(self, wanted: list[int], after_seek: bool) -> dict[int, np.ndarray] | None:
        """Decode forward, giving each wanted index the frame on screen at its time.

        Returns None (after a seek only) when the seek is not trustworthy: no frame came out, or the first frame
        is later than the first wanted index.
        """
        assembly = _WantedFrames(self, wanted)
        try:
            for frame in self._decode_forward(wanted):
                index = assembly.index_of(frame)
                if after_seek and assembly.previous_frame is None and index > wanted[0]:
                    return None
                assembly.add(frame, index)
                if assembly.complete:
                    return assembly.frames_by_index
        finally:
            self._stream.codec_context.skip_frame = "DEFAULT"
        return self._finish_at_end_of_stream(assembly, after_seek)

    def _decode_forward(self, wanted: list[int]) -> Iterator[av.VideoFrame]:
        """Decoded frames from the current position on, skipping packets the decoder fails on (up to
        `_MAX_CONSECUTIVE_DECODE_ERRORS` in a row) and stopping a stream that never reaches `wanted[-1]`."""
        codec_context = self._stream.codec_context
        wanted_set = set(wanted)
        # Dropping a non-reference frame that is not wanted is exact when every frame has its own grid slot
        # (constant frame rate); with variable frame rate a dropped frame could be the one on screen at a wanted
        # time, so nothing is dropped.
        drop_unwanted = self.skip_unneeded_frames and self._constant_frame_rate
        # Variable frame rate can put several frames in one grid slot, hence the factor.
        frame_budget = 4 * (wanted[-1] + 1) + _DECODE_SLACK_FRAMES
        decoded_count = 0
        consecutive_errors = 0
        for packet in self._container.demux(self._stream):
            if packet.pts is None:
                codec_context.skip_frame = "DEFAULT"
            elif drop_unwanted:
                keep = self._index_of(packet.pts) in wanted_set
                codec_context.skip_frame = "DEFAULT" if keep else "NONREF"
            try:
                decoded = packet.decode()
                consecutive_errors = 0
            except (av.FFmpegError, ValueError) as error:
                consecutive_errors += 1
                if consecutive_errors >= _MAX_CONSECUTIVE_DECODE_ERRORS:
                    raise VideoDecodeError(self.path, f"decoder keeps failing ({_describe(error)})") from None
                continue
            for frame in decoded:
                decoded_count += 1
                if decoded_count > frame_budget:
                    raise VideoDecodeError(
                        self.path, f"decoded {decoded_count} frames without reaching frame {wanted[-1]}"
                    )
                yield frame

    def _finish_at_end_of_stream(self, assembly: _WantedFrames, after_seek: bool) -> dict[int, np.ndarray] | None:
        """The stream ended before the last wanted index: the rest show the last frame, and the frame count
        shrinks to what was decoded when the header promised more."""
        if assembly.previous_frame is None:
            if after_seek:
                return None
            raise VideoDecodeError(self.path, "no frame could be decoded")
        assembly.fill_remaining_with_last_frame()
        true_count = assembly.previous_index + 1
        if true_count < self._num_frames:
            self._num_frames = true_count
            self._frame_count_source = "decoded"
        return assembly.frames_by_index

    # ------------------------------------------------------------------------------------------------ lifetime

    def close(self) -> None:
        container = getattr(self, "_container", None)
        if container is not None:
            container.close()
            self._container = None

    def __enter__(self) -> VideoReader:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class _WantedFrames:
    """One forward decoding pass's bookkeeping: which wanted frame index gets which decoded frame (the frame on screen
    at its time), converting each frame to RGB at most once, at the first frame's output size."""

    def __init__(self, reader: VideoReader, wanted: list[int]):
        self.reader = reader
        self.wanted = wanted
        self.frames_by_index: dict[int, np.ndarray] = {}
        self.next_wanted = 0  # position in `wanted` of the first index still unassigned
        self.previous_frame = None
        self.previous_index = -1
        self._output_size: tuple[int, int] | None = None
        self._last_conversion: tuple[object, np.ndarray] | None = None  # (frame, RGB): a held frame converts once

    @property
    def complete(self) -> bool:
        return self.next_wanted == len(self.wanted)

    def index_of(self, frame) -> int:
        """The frame's slot on the frame grid; garbled timestamps must not run backwards."""
        timestamp = frame.pts if frame.pts is not None else frame.dts
        index = self.reader._index_of(timestamp) if timestamp is not None else self.previous_index + 1
        return max(index, self.previous_index)

    def add(self, frame, index: int) -> None:
        # Wanted indices before this frame's slot fall in a gap: they show the previous frame.
        while self.next_wanted < len(self.wanted) and self.wanted[self.next_wanted] < index:
            held = self.previous_frame if self.previous_frame is not None else frame
            self.frames_by_index[self.wanted[self.next_wanted]] = self.to_rgb(held)
            self.next_wanted += 1
        if self.next_wanted < len(self.wanted) and self.wanted[self.next_wanted] == index:
            self.frames_by_index[index] = self.to_rgb(frame)
            self.next_wanted += 1
        self.previous_frame, self.previous_index = frame, index

    def fill_remaining_with_last_frame(self) -> None:
        last_frame = self.to_rgb(self.previous_frame)
        for index in self.wanted[self.next_wanted :]:
            self.frames_by_index[index] = last_frame

    def to_rgb(self, frame) -> np.ndarray:
        """uint8 (H, W, 3) at the first frame's output size."""
        if self._last_conversion is not None and self._last_conversion[0] is frame:
            return self._last_conversion[1]
        if self._output_size is None:
            self._output_size = self.reader._output_size(frame.width, frame.height)
            self.reader.rotation = frame.rotation
        width, height = self._output_size
        # Reformatting to the first frame's size keeps the stack rectangular if a stream changes size.
        rgb = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
        self._last_conversion = (frame, rgb)
        return rgb


def short_side_resize_shape(height: int, width: int, short_side: int) -> tuple[int, int]:
    """Output (height, width) with the short side set to ``short_side``: transformers' rule, long side truncated."""
    if width <= height:
        return int(short_side * height / width), short_side
    return short_side, int(short_side * width / height)


def probe_video(source) -> VideoInfo:
    """Open a video (a path, bytes or a binary file object) and return its :class:`VideoInfo` without decoding;
    raises :class:`VideoDecodeError`."""
    with VideoReader(source) as reader:
        return reader.info()


def read_video_frames(source, frame_indices, num_threads: int = 0) -> np.ndarray:
    """Decode the given frame indices of one video (a path, bytes or a binary file object): uint8 (T, H, W, 3) RGB.
    See :meth:`VideoReader.read_frames`."""
    with VideoReader(source, num_threads=num_threads) as reader:
        return reader.read_frames(frame_indices)
