"""One video for `adamae-prepare`: its bytes unchanged after a decode check, or re-encoded with PyAV.

Runs inside the preparation's worker processes, so it needs only PyAV and the reader. Re-encoding (H.264 in MP4, one
encoder thread, no audio) scales the short side down to `short_side` (never up: a smaller video keeps its size) and
puts a keyframe at least every `keyframe_interval` seconds, so that the seek-based reader decodes little more than
each clip's window. Frame timestamps, variable frame rate included, and the display rotation are kept.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from fractions import Fraction

import av

from .data.decoding import VideoDecodeError, VideoReader, check_video_file


OUTPUT_PIX_FMT = "yuv420p"  # 8-bit 4:2:0, what every decoder plays; needs even sides
_FALLBACK_RATE = Fraction(25)
# PyAV's "no picture type": a decoded frame remembers whether it was a keyframe, and x264 would honour that.
_NO_PICTURE_TYPE = 0


@dataclass(frozen=True)
class EncodeSettings:
    """How to re-encode: short side in pixels (None: keep the size), keyframe interval in seconds, x264's constant
    rate factor and preset, and `bit_exact` (x264 without its assembly, whose SIMD code reads uninitialised memory:
    the same input then gives the same bytes on every run, at about 2.5x the encoding time)."""

    short_side: int | None
    keyframe_interval: float
    crf: int
    preset: str
    bit_exact: bool


@dataclass(frozen=True)
class PreparedVideo:
    """The outcome for the index row `row`: the bytes to store, or the reason the video could not be read."""

    row: int
    data: bytes | None
    reason: str | None = None


def prepare_video(row: int, path: str, settings: EncodeSettings | None) -> PreparedVideo:
    """The bytes to store for one video (its file unchanged when `settings` is None), or why it failed."""
    try:
        if settings is None:
            return PreparedVideo(row, read_checked(path))
        return PreparedVideo(row, transcode(path, settings))
    except VideoDecodeError as error:
        return PreparedVideo(row, None, error.reason)
    except (av.FFmpegError, OSError, ValueError) as error:  # PyAV reports bad streams with these
        return PreparedVideo(row, None, f"{type(error).__name__}: {getattr(error, 'strerror', None) or error}")


def read_checked(path: str) -> bytes:
    """The file's bytes, after checking that its first frame decodes (raises `VideoDecodeError`)."""
    with VideoReader(path, num_threads=1) as reader:
        reader.read_frames([0])
    with open(path, "rb") as handle:
        return handle.read()


def output_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) of the re-encoded video: the short side scaled to `short_side` if it is longer, the aspect
    ratio kept, both sides rounded to even numbers (4:2:0 needs them)."""
    short = min(width, height)
    scale = short_side / short if short_side is not None and short > short_side else 1.0
    return (max(2, 2 * round(width * scale / 2)), max(2, 2 * round(height * scale / 2)))


def keyframe_gop(rate: Fraction, keyframe_interval: float) -> int:
    """Frames between keyframes for `keyframe_interval` seconds at `rate` frames per second (at least 1)."""
    return max(1, round(float(rate) * keyframe_interval))


def transcode(path: str, settings: EncodeSettings) -> bytes:
    """Re-encode the first video stream of `path` to H.264 in MP4 (bytes); raises `VideoDecodeError` when no frame
    decodes."""
    check_video_file(path)  # missing and empty files get their plain reasons
    output = io.BytesIO()
    with av.open(path, metadata_errors="ignore") as source:
        if not source.streams.video:
            raise VideoDecodeError(path, "no video stream")
        stream = source.streams.video[0]
        stream.codec_context.thread_count = 1  # one process per core does the parallel work
        with av.open(output, mode="w", format="mp4") as sink:
            if encode_frames(source, stream, sink, settings) == 0:
                raise VideoDecodeError(path, "no frame could be decoded")
    return output.getvalue()


def stream_rate(stream) -> Fraction:
    for rate in (stream.average_rate, stream.guessed_rate, stream.base_rate):
        if rate is not None and rate > 0:
            return Fraction(rate)
    return _FALLBACK_RATE


def encode_frames(source, stream, sink, settings: EncodeSettings) -> int:
    """Decode every frame of `stream`, scale it and encode it into `sink`; return the number of frames."""
    rate = stream_rate(stream)
    time_base = stream.time_base or 1 / rate
    frame_step = max(1, round(1 / (rate * time_base)))  # one frame's duration in time_base units
    encoder, size, last_pts, count = None, None, None, 0
    for frame in source.decode(stream):
        if encoder is None:
            size = output_size(frame.width, frame.height, settings.short_side)
            encoder = open_encoder(sink, rate, time_base, size, frame.rotation, settings)
        scaled = frame.reformat(width=size[0], height=size[1], format=OUTPUT_PIX_FMT, interpolation="BICUBIC")
        # Timestamps from 0, strictly increasing (a missing or repeated one gets the next frame slot).
        pts = frame.pts - (stream.start_time or 0) if frame.pts is not None else None
        if pts is None or (last_pts is not None and pts <= last_pts):
            pts = 0 if last_pts is None else last_pts + frame_step
        scaled.pts, scaled.time_base, scaled.pict_type = pts, time_base, _NO_PICTURE_TYPE
        sink.mux(encoder.encode(scaled))
        last_pts, count = pts, count + 1
    if encoder is not None:
        sink.mux(encoder.encode(None))  # flush the frames x264 holds back
    return count


def open_encoder(sink, rate: Fraction, time_base: Fraction, size: tuple[int, int], rotation, settings):
    encoder = sink.add_stream("libx264", rate=rate)
    encoder.width, encoder.height = size
    encoder.pix_fmt = OUTPUT_PIX_FMT
    encoder.codec_context.time_base = time_base
    # One encoder thread: the output then depends on the input only, not on the machine's core count.
    encoder.codec_context.thread_count = 1
    options = {
        "crf": str(settings.crf),
        "preset": settings.preset,
        "g": str(keyframe_gop(rate, settings.keyframe_interval)),
    }
    if settings.bit_exact:
        options["x264-params"] = "asm=0"
    encoder.options = options
    if rotation:
        encoder.set_display_rotation(rotation)
    return encoder


__all__ = ["EncodeSettings", "PreparedVideo", "keyframe_gop", "output_size", "prepare_video", "transcode"]
