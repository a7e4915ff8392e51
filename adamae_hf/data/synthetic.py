"""Sample videos with known motion: textured backgrounds, one moving object, per-pixel motion masks.

The tests, the embedded pretraining demo and the throughput benchmark all use these files, so nothing is ever
downloaded. Each video shows a striped object that moves in one of a few directions (or rotates) over a static
textured background (or one that a panning camera sweeps, ``camera_pan``); the direction is the video's label, which
makes a tiny but real classification task, and the object's silhouette in every frame is the per-pixel motion mask.

Masks are returned in memory and, by default, saved beside the video as ``<stem>.motion.npz`` (a bit-packed bool
array of shape (T, H, W) under the key ``"mask"``); :func:`load_motion_mask` reads them back.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import av
import numpy as np


MOTION_CLASSES = ("move_left", "move_right", "move_up", "move_down", "rotate_clockwise")
"""Every motion class the generator can draw. A "move_*" object translates in that direction in image
coordinates (up = towards row 0); "rotate_clockwise" is a bar turning clockwise around its centre."""

DEFAULT_MOTION_CLASSES = ("move_left", "move_right", "move_up")

MASK_SUFFIX = ".motion.npz"


@dataclass
class SampleVideo:
    """One generated video.

    Attributes:
        path: Absolute path of the encoded file.
        label: Its motion class, one of :data:`MOTION_CLASSES`.
        motion_mask: Bool array (T, H, W), True where the moving object covers the pixel in frame t (computed
            before encoding, so it is exact for the rendered frames, not for the lossy decoded ones). None when the
            generator was asked not to keep masks in memory.
        num_frames, height, width, fps: What was encoded.
    """

    path: str
    label: str
    motion_mask: np.ndarray | None
    num_frames: int
    height: int
    width: int
    fps: float


def _textured_background(height: int, width: int, rng: np.random.Generator) -> np.ndarray:
    """A smooth colourful texture with fine grain, float32 (H, W, 3) in [0, 255]."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    background = np.full((height, width, 3), 128.0, dtype=np.float32)
    base_colour = rng.uniform(-40, 40, size=3).astype(np.float32)
    background += base_colour
    # A few oriented gratings per channel give edges in every direction, so motion estimation has texture to bite.
    for channel in range(3):
        for _ in range(3):
            frequency_y, frequency_x = rng.uniform(-0.35, 0.35, size=2)
            phase = rng.uniform(0, 2 * math.pi)
            background[..., channel] += 22.0 * np.sin(frequency_x * cols + frequency_y * rows + phase)
    background += rng.normal(0.0, 6.0, size=background.shape).astype(np.float32)
    return np.clip(background, 0, 255)


def render_motion_clip(
    motion_class: str,
    num_frames: int,
    height: int,
    width: int,
    rng: np.random.Generator,
    grain: float = 0.0,
    camera_pan: tuple[float, float] = (0.0, 0.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Draw one clip of a striped object moving over a textured background, static or seen by a panning camera.

    Args:
        motion_class: One of :data:`MOTION_CLASSES`.
        num_frames, height, width: Clip size.
        rng: Source of the background, colours, object size, start position and speed.
        grain: Standard deviation of per-frame Gaussian noise added everywhere (0 = none). It makes the encoded
            stream cost about as much to decode as camera footage does.
        camera_pan: (rows, columns) the camera's view moves per frame over a larger background (offsets rounded to
            whole pixels), so the background slides the opposite way: frame t+1 at (y, x) shows what frame t showed
            at (y + rows, x + columns). The object moves in frame coordinates as without a pan and the motion mask
            marks only it: the background's motion is what a camera-motion-compensated measure should remove.
            (A pan draws a larger background from ``rng``, so the rest of the clip differs from the unpanned one.)

    Returns:
        frames: uint8 (T, H, W, 3) RGB.
        motion_mask: bool (T, H, W), True where the object covers the pixel.
    """
    if motion_class not in MOTION_CLASSES:
        raise ValueError(f"motion_class must be one of {MOTION_CLASSES}, got {motion_class!r}")
    if num_frames < 1 or height < 2 or width < 2:
        raise ValueError(
            f"num_frames must be >= 1 and height, width >= 2, got num_frames={num_frames}, "
            f"height={height}, width={width}"
        )
    pan_rows, pan_cols = (float(value) for value in camera_pan)
    extra_rows, extra_cols = (math.ceil(abs(pan) * max(num_frames - 1, 0)) for pan in (pan_rows, pan_cols))
    background = _textured_background(height + extra_rows, width + extra_cols, rng)
    # Where the view starts: the side of the background it moves away from.
    view_top, view_left = (extra_rows if pan_rows < 0 else 0), (extra_cols if pan_cols < 0 else 0)
    object_colour = rng.uniform(0, 255, size=3).astype(np.float32)
    stripe_colour = 255.0 - object_colour
    stripe_period = max(2, min(height, width) // 8)
    if motion_class == "rotate_clockwise":
        object_at = _rotating_bar(num_frames, height, width, stripe_period, rng)
    else:
        object_at = _sliding_square(motion_class, num_frames, height, width, stripe_period, rng)

    frames = np.empty((num_frames, height, width, 3), dtype=np.uint8)
    masks = np.empty((num_frames, height, width), dtype=bool)
    for t in range(num_frames):
        mask, stripes = object_at(t)
        top_of_view, left_of_view = view_top + round(pan_rows * t), view_left + round(pan_cols * t)
        frame = background[top_of_view : top_of_view + height, left_of_view : left_of_view + width].copy()
        frame[mask & stripes] = stripe_colour
        frame[mask & ~stripes] = object_colour
        if grain > 0:
            frame += rng.normal(0.0, grain, size=frame.shape).astype(np.float32)
        frames[t] = np.clip(frame, 0, 255).astype(np.uint8)
        masks[t] = mask
    return frames, masks


# An object's silhouette and stripes in frame t: two bool (H, W) arrays.
ObjectAt = Callable[[int], tuple[np.ndarray, np.ndarray]]


def _rotating_bar(num_frames: int, height: int, width: int, stripe_period: int, rng: np.random.Generator) -> ObjectAt:
    """A striped bar turning clockwise around the frame's centre, a quarter to a half turn over the clip."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    centre_row, centre_col = (height - 1) / 2, (width - 1) / 2
    half_length = 0.42 * min(height, width)
    half_thickness = max(1.0, 0.09 * min(height, width))
    start_angle = rng.uniform(0, math.pi)
    angular_speed = rng.uniform(0.5, 1.0) * (math.pi / 2) / max(num_frames - 1, 1)

    def object_at(t: int) -> tuple[np.ndarray, np.ndarray]:
        # Rows grow downwards, so a growing angle turns the bar from pointing right to pointing down: clockwise.
        angle = start_angle + angular_speed * t
        along = (cols - centre_col) * math.cos(angle) + (rows - centre_row) * math.sin(angle)
        across = -(cols - centre_col) * math.sin(angle) + (rows - centre_row) * math.cos(angle)
        mask = (np.abs(along) <= half_length) & (np.abs(across) <= half_thickness)
        stripes = (np.floor((along + half_length) / stripe_period) % 2).astype(bool)
        return mask, stripes

    return object_at


def _sliding_square(
    motion_class: str, num_frames: int, height: int, width: int, stripe_period: int, rng: np.random.Generator
) -> ObjectAt:
    """A striped square moving in a straight line (``move_*``) across 60-100% of the free space, always in view."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    side = max(2, min(height, width) // 3)
    direction = {"move_left": (0, -1), "move_right": (0, 1), "move_up": (-1, 0), "move_down": (1, 0)}
    step_row, step_col = direction[motion_class]
    travel_rows, travel_cols = height - side, width - side
    fraction = rng.uniform(0.6, 1.0)
    speed_rows = fraction * travel_rows / max(num_frames - 1, 1)
    speed_cols = fraction * travel_cols / max(num_frames - 1, 1)
    # Start anywhere in the space the motion leaves free, at the end the object moves away from.
    if step_col != 0:
        offset = rng.uniform(0, (1 - fraction) * travel_cols)
        first_col = offset if step_col > 0 else travel_cols - offset
        first_row = rng.uniform(0, travel_rows)
    else:
        offset = rng.uniform(0, (1 - fraction) * travel_rows)
        first_row = offset if step_row > 0 else travel_rows - offset
        first_col = rng.uniform(0, travel_cols)

    def object_at(t: int) -> tuple[np.ndarray, np.ndarray]:
        top = int(round(first_row + step_row * speed_rows * t))
        left = int(round(first_col + step_col * speed_cols * t))
        mask = np.zeros((height, width), dtype=bool)
        mask[top : top + side, left : left + side] = True
        # Stripes move with the object, so every covered pixel changes from frame to frame.
        stripes = (np.floor((cols - left + rows - top) / stripe_period) % 2).astype(bool)
        return mask, stripes

    return object_at


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray,
    fps: float = 25,
    codec: str = "libx264",
    pix_fmt: str | None = None,
    options: dict[str, str] | None = None,
    container_options: dict[str, str] | None = None,
    rotation: int | None = None,
    timestamps: Sequence[float] | None = None,
    deterministic: bool = True,
) -> str:
    """Encode RGB frames to a video file with PyAV.

    Args:
        path: Output file; the container follows the extension (.mp4, .mkv, ...).
        frames: uint8 (T, H, W, 3) RGB.
        fps: Nominal frame rate.
        codec: Encoder name, e.g. "libx264", "libx265", "mpeg4", "ffv1".
        pix_fmt: Encoded pixel format; default yuv420p, or yuv444p when a side is odd (4:2:0 needs even sides).
        options: Encoder options, e.g. {"crf": "23", "preset": "veryfast", "g": "25"}.
        container_options: Muxer options, e.g. {"movflags": "faststart"}.
        rotation: Counter-clockwise display rotation in degrees written as the stream's display matrix.
        timestamps: Presentation time of each frame in seconds (strictly increasing), for variable frame rate;
            default: frame t at t / fps.
        deterministic: With libx264, encode without x264's assembly (``x264-params asm=0``): its SIMD code reads
            uninitialised memory, so two encodes of the same frames can differ (about 5% of small files did here).
            This makes files byte-identical for the same frames, at about 2.5x the encoding time.

    Returns:
        The path written, as a string.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    num_frames, height, width, _ = frames.shape
    if pix_fmt is None:
        pix_fmt = "yuv420p" if height % 2 == 0 and width % 2 == 0 else "yuv444p"
    path = str(path)
    rate = Fraction(fps).limit_denominator(1001)
    with av.open(path, mode="w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=rate)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        # One encoder thread: threaded encoding is not deterministic either, and it keeps one slice per frame as in
        # most real files (PyAV's default slice threading cuts frames up).
        stream.codec_context.thread_count = 1
        options = dict(options or {})
        if deterministic and codec == "libx264":
            options["x264-params"] = ":".join(filter(None, [options.get("x264-params"), "asm=0"]))
        if options:
            stream.options = options
        if rotation:
            stream.set_display_rotation(rotation)
        if timestamps is not None:
            # A millisecond clock lets frames land at arbitrary times.
            stream.codec_context.time_base = Fraction(1, 1000)
        for t in range(num_frames):
            frame = av.VideoFrame.from_ndarray(frames[t], format="rgb24")
            if timestamps is not None:
                frame.pts = int(round(timestamps[t] * 1000))
                frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def save_motion_mask(video_path: str | os.PathLike, mask: np.ndarray) -> str:
    """Save a bool (T, H, W) mask beside its video as ``<stem>.motion.npz``; returns the mask path."""
    mask = np.asarray(mask, dtype=bool)
    mask_path = os.path.splitext(str(video_path))[0] + MASK_SUFFIX
    np.savez_compressed(mask_path, mask=np.packbits(mask, axis=-1), shape=np.array(mask.shape))
    return mask_path


def load_motion_mask(video_path: str | os.PathLike) -> np.ndarray:
    """Load the bool (T, H, W) motion mask saved beside a generated video."""
    mask_path = os.path.splitext(str(video_path))[0] + MASK_SUFFIX
    with np.load(mask_path) as stored:
        shape = tuple(int(s) for s in stored["shape"])
        return np.unpackbits(stored["mask"], axis=-1, count=shape[-1]).astype(bool).reshape(shape)


def write_index_file(path: str | os.PathLike, records: Iterable[tuple[str, str]]) -> str:
    """Write (path, label) rows as CSV (``.csv``) or JSON lines (``.jsonl``), paths relative to the file."""
    path = str(path)
    base = os.path.dirname(os.path.abspath(path))
    rows = [(os.path.relpath(os.path.abspath(video), base), label) for video, label in records]
    if path.endswith(".csv"):
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "label"])
            writer.writerows(rows)
    elif path.endswith(".jsonl"):
        with open(path, "w") as handle:
            for video, label in rows:
                handle.write(json.dumps({"path": video, "label": label}) + "\n")
    else:
        raise ValueError(f"index file must end in .csv or .jsonl, got {path!r}")
    return path


def generate_sample_videos(
    output_dir: str | os.PathLike,
    num_videos: int = 12,
    num_frames: int = 16,
    height: int = 48,
    width: int = 64,
    fps: float = 25,
    seed: int = 0,
    motion_classes: Sequence[str] = DEFAULT_MOTION_CLASSES,
    class_folders: bool = False,
    index_file: str | None = None,
    save_masks: bool = True,
    keep_masks: bool = True,
    grain: float = 0.0,
    crf: int = 23,
    preset: str = "veryfast",
    gop_size: int | None = None,
    camera_pan: tuple[float, float] = (0.0, 0.0),
) -> list[SampleVideo]:
    """Write H.264 mp4 files of objects moving on textured backgrounds, with their motion masks.

    Videos cycle through ``motion_classes`` (video i has class ``motion_classes[i % len]``), so any
    ``num_videos`` that is a multiple of the class count gives balanced classes. The defaults make 12 files of a
    few KB each in well under a second.

    Args:
        output_dir: Created if missing.
        num_videos, num_frames, height, width, fps: What to encode (odd sides switch to yuv444p).
        seed: Everything (textures, colours, speeds, positions) follows from it.
        motion_classes: Subset of :data:`MOTION_CLASSES`.
        class_folders: Lay files out as ``output_dir/<class>/video_XXXX.mp4`` instead of flat.
        index_file: Also write an index, ``"index.csv"`` or ``"index.jsonl"`` (name inside ``output_dir``;
            columns path, label; paths relative to the index).
        save_masks: Save each mask beside its video (see :func:`load_motion_mask`).
        keep_masks: Keep masks in the returned records (turn off for long videos).
        grain: Per-frame noise (see :func:`render_motion_clip`).
        camera_pan: (rows, columns) per frame a panning camera moves (see :func:`render_motion_clip`); the saved
            masks still mark only the object.
        crf, preset, gop_size: libx264 quality, speed preset and keyframe interval (None: the encoder's default,
            250 frames).

    Returns:
        One :class:`SampleVideo` per file, in generation order.
    """
    unknown = [name for name in motion_classes if name not in MOTION_CLASSES]
    if unknown or not motion_classes:
        raise ValueError(f"motion_classes must be a non-empty subset of {MOTION_CLASSES}, got {list(motion_classes)}")
    if num_videos < 1:
        raise ValueError(f"num_videos must be >= 1, got {num_videos}")
    output_dir = os.path.abspath(str(output_dir))
    os.makedirs(output_dir, exist_ok=True)
    rng = np.random.default_rng(seed)
    options = {"crf": str(crf), "preset": preset}
    if gop_size is not None:
        options["g"] = str(gop_size)

    videos = []
    for video_number in range(num_videos):
        label = motion_classes[video_number % len(motion_classes)]
        frames, mask = render_motion_clip(label, num_frames, height, width, rng, grain=grain, camera_pan=camera_pan)
        folder = os.path.join(output_dir, label) if class_folders else output_dir
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, f"video_{video_number:04d}.mp4")
        write_video(path, frames, fps=fps, options=options)
        if save_masks:
            save_motion_mask(path, mask)
        videos.append(SampleVideo(path, label, mask if keep_masks else None, num_frames, height, width, fps))

    if index_file is not None:
        write_index_file(os.path.join(output_dir, index_file), [(video.path, video.label) for video in videos])
    return videos
