"""Video data pipeline: PyAV decoding, VideoMAE frame sampling, uint8 tensor transforms, ``datasets`` indexes,
video sources (index files, class folders, tar shards, ``datasets`` names, streaming), repeated sampling, the
inference processors and Hub pipeline, and generated sample videos.

The reader, the samplers and the evaluation views are implemented once, in the top-level Hub files
``video_adamae.py`` (the reader) and ``video_clips_adamae.py`` (samplers, evaluation views) that classifier folders
carry for their pipeline (``pipeline_adamae.py``); this package re-exports them.

Typical use::

    from adamae_hf.data import VideoClipConfig, VideoClipDataset, clip_dataloader, index_from_file, label_maps

    index = index_from_file("train.csv", data_root="/data/k400")
    config = VideoClipConfig(num_frames=16, sampling_rate=4, num_sample=2)
    dataset = VideoClipDataset(index, config, train=True)
    loader = clip_dataloader(dataset, clips_per_batch=32, num_workers=8)
    id2label, label2id = label_maps(index)
    for batch in loader:  # batch["pixel_values"]: (32, 16, 3, 224, 224)
        ...
        print(dataset.skipped.count)  # undecodable videos skipped so far, all workers

Any source (an index file, a folder, tar shards, a ``datasets`` name; ``streaming=True`` for a stream) through the
scripts' flags::

    from adamae_hf.data import DataSourceArguments, clip_dataset, open_video_split

    split = open_video_split(DataSourceArguments(train_index="/data/k400/shards", streaming=True), "train")
    dataset = clip_dataset(split, config, train=True, seed=0, videos_per_batch=16)  # a StreamingVideoClipDataset
"""

from .config import (
    CLIP_CONFIG_NAME,
    CLIP_GEOMETRY_FIELDS,
    IMAGENET_DEFAULT_MEAN,
    IMAGENET_DEFAULT_STD,
    SAMPLING_MODES,
    TRAIN_CROPS,
    VideoClipConfig,
    load_clip_geometry,
    save_clip_config,
)
from .dataset import (
    SkippedVideos,
    VideoClipDataset,
    clip_dataloader,
    collate_clips,
    load_eval_clip,
    video_views,
    videos_per_batch,
)
from .decoding import VIDEO_EXTENSIONS, VideoDecodeError, VideoInfo, VideoReader, probe_video, read_video_frames
from .index import UnknownLabelError, index_from_dataset, index_from_file, index_from_folder, label_maps, shard_index
from .processor import (
    build_video_processor,
    save_classification_pipeline,
    save_video_processor,
    video_processor_kwargs,
)
from .sampling import clip_indices, dense_clip_indices, segment_clip_indices
from .sources import DataSourceArguments, VideoSplit, clip_dataset, open_video_split
from .streaming import StreamingVideoClipDataset
from .synthetic import (
    DEFAULT_MOTION_CLASSES,
    MOTION_CLASSES,
    SampleVideo,
    generate_sample_videos,
    load_motion_mask,
    render_motion_clip,
    write_index_file,
    write_video,
)
from .transforms import EvalTransform, TrainTransform, VideoRandAugment, evaluation_views, normalize, unnormalize


__all__ = [
    "CLIP_CONFIG_NAME",
    "CLIP_GEOMETRY_FIELDS",
    "DEFAULT_MOTION_CLASSES",
    "IMAGENET_DEFAULT_MEAN",
    "IMAGENET_DEFAULT_STD",
    "MOTION_CLASSES",
    "SAMPLING_MODES",
    "TRAIN_CROPS",
    "VIDEO_EXTENSIONS",
    "DataSourceArguments",
    "EvalTransform",
    "SampleVideo",
    "SkippedVideos",
    "StreamingVideoClipDataset",
    "TrainTransform",
    "UnknownLabelError",
    "VideoClipConfig",
    "VideoClipDataset",
    "VideoDecodeError",
    "VideoInfo",
    "VideoRandAugment",
    "VideoReader",
    "VideoSplit",
    "build_video_processor",
    "clip_dataloader",
    "clip_dataset",
    "clip_indices",
    "collate_clips",
    "dense_clip_indices",
    "evaluation_views",
    "generate_sample_videos",
    "index_from_dataset",
    "index_from_file",
    "index_from_folder",
    "label_maps",
    "load_clip_geometry",
    "load_eval_clip",
    "load_motion_mask",
    "normalize",
    "open_video_split",
    "probe_video",
    "read_video_frames",
    "render_motion_clip",
    "save_classification_pipeline",
    "save_clip_config",
    "save_video_processor",
    "segment_clip_indices",
    "shard_index",
    "unnormalize",
    "video_processor_kwargs",
    "video_views",
    "videos_per_batch",
    "write_index_file",
    "write_video",
]
