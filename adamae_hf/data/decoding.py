"""Frame-accurate, seek-based video decoding with PyAV: :class:`VideoReader` and its helpers.

The implementation lives in the top-level ``video_adamae.py``, a file every classifier folder carries for its Hub
pipeline (``pipeline_adamae.py``), so that training, ``run_finetune.py`` and ``pipeline("video-classification")``
read videos with one reader: seeking, frame counts, variable frame rate, rotation metadata, odd pixel formats, from
paths, bytes or file objects.
"""

from video_adamae import (
    VIDEO_EXTENSIONS,
    VideoDecodeError,
    VideoInfo,
    VideoReader,
    check_video_file,
    describe_source,
    probe_video,
    read_video_frames,
)


__all__ = [
    "VIDEO_EXTENSIONS",
    "VideoDecodeError",
    "VideoInfo",
    "VideoReader",
    "check_video_file",
    "describe_source",
    "probe_video",
    "read_video_frames",
]
