"""Clip throughput of the video data pipeline against the naive "decode from the start" reader.

Generates 10-second H.264 videos (320-pixel short side, textured background, moving object, film grain) and
measures clips per second for 16-frame 224x224 training clips at stride 4 (multi-scale crop, normalisation),
through a real DataLoader, with:

* ``naive``: frames decoded as in transformers' video-classification example (``read_video_pyav``: decode every
  frame from the start up to the last wanted index, PyAV's default threading), same sampling and transforms;
* ``seek``: :class:`adamae_hf.data.VideoReader` (seek to the keyframe before the window, drop unneeded
  non-reference frames, convert only wanted frames);
* ``seek, num_sample=2``: the same with repeated sampling (one decode, two augmented clips);
* ``uint8``: the clips leave the dataset as uint8, for the training loop to normalise on the GPU
  (``run_pretrain.py --normalize_on_device``, the default): a quarter of the bytes between processes.

Each row is the median of ``--repeats`` timed passes, after one warm-up batch that also starts the workers.

    python benchmarks/data_throughput.py                  # about 1-2 minutes on 2 cores
    python benchmarks/data_throughput.py --smoke          # a few seconds, tiny videos: checks that it runs
    python benchmarks/data_throughput.py --num-videos 8 --video-seconds 30 --workers 0 1 2 4
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time

import av
import datasets
import numpy as np
import torch


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torch.utils.data import DataLoader  # noqa: E402

from adamae_hf.data import (  # noqa: E402
    VideoClipConfig,
    VideoClipDataset,
    collate_clips,
    generate_sample_videos,
    index_from_dataset,
    videos_per_batch,
)


def read_video_pyav(container, indices):
    """transformers' ``examples`` / video-classification pipeline reader, verbatim in behaviour."""
    frames = []
    container.seek(0)
    start_index = indices[0]
    end_index = indices[-1]
    for i, frame in enumerate(container.decode(video=0)):
        if i > end_index:
            break
        if i >= start_index and i in indices:
            frames.append(frame)
    return np.stack([x.to_ndarray(format="rgb24") for x in frames])


class NaiveDecodeDataset(VideoClipDataset):
    """Same sampling, transforms and batching as :class:`VideoClipDataset`; naive decoding."""

    def read_clip_frames(self, video_index, rng):
        with av.open(self.paths[video_index]) as container:
            clips = self.sample_clips(container.streams.video[0].frames, rng)
            return [read_video_pyav(container, clip) for clip in clips]


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num-videos", type=int, default=4, help="Distinct generated videos (read round-robin).")
    parser.add_argument("--video-seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=25)
    parser.add_argument("--height", type=int, default=320, help="Short side of the generated videos.")
    parser.add_argument("--width", type=int, default=568, help="Long side (568 = 16:9 at 320).")
    parser.add_argument("--gop", type=int, default=25, help="Keyframe interval in frames (x264's default is 250).")
    parser.add_argument("--crf", type=int, default=20)
    parser.add_argument("--grain", type=float, default=4.0, help="Film grain; sets the bitrate (~0.6 Mbit/s).")
    parser.add_argument("--num-frames", type=int, default=16)
    parser.add_argument("--sampling-rate", type=int, default=4)
    parser.add_argument("--crop-size", type=int, default=224)
    parser.add_argument("--clips", type=int, default=48, help="Clips timed per measurement.")
    parser.add_argument("--clips-per-batch", type=int, default=8)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2], help="DataLoader worker counts.")
    parser.add_argument("--repeats", type=int, default=3, help="Timed passes per row (median reported).")
    parser.add_argument("--video-dir", default=None, help="Reuse/keep generated videos here.")
    parser.add_argument("--smoke", action="store_true", help="Tiny run (a few seconds) to check the script works.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.num_videos, args.video_seconds, args.fps = 2, 1.0, 25
        args.height, args.width, args.gop = 48, 64, 10
        args.num_frames, args.sampling_rate, args.crop_size = 4, 2, 32
        args.clips, args.clips_per_batch, args.workers, args.repeats = 8, 4, [0], 1
    return args


def make_videos(args, video_dir: str) -> datasets.Dataset:
    paths = [os.path.join(video_dir, f"video_{i:04d}.mp4") for i in range(args.num_videos)]
    if all(os.path.exists(path) for path in paths):
        return index_from_dataset(datasets.Dataset.from_dict({"path": paths}))
    num_frames = int(round(args.video_seconds * args.fps))
    records = generate_sample_videos(
        video_dir,
        num_videos=args.num_videos,
        num_frames=num_frames,
        height=args.height,
        width=args.width,
        fps=args.fps,
        grain=args.grain,
        crf=args.crf,
        gop_size=args.gop,
        save_masks=False,
        keep_masks=False,
    )
    return index_from_dataset(datasets.Dataset.from_dict({"path": [record.path for record in records]}))


def clips_per_second(dataset, args, num_workers: int) -> float:
    """Median clips/s over ``args.repeats`` passes of ``args.clips`` clips, after a warm-up batch."""
    # One sampler long enough for the warm-up batch and every timed pass, so the workers run throughout.
    clips_needed = args.clips_per_batch * (1 + args.repeats * -(-args.clips // args.clips_per_batch))
    videos_needed = clips_needed // dataset.views_per_video
    loader = DataLoader(
        dataset,
        batch_size=videos_per_batch(args.clips_per_batch, dataset.views_per_video),
        sampler=[i % len(dataset) for i in range(videos_needed)],  # round-robin over the videos
        collate_fn=collate_clips,
        num_workers=num_workers,
    )
    batches = iter(loader)
    next(batches)  # warm-up: worker start, first file opens
    rates = []
    for _ in range(args.repeats):
        clips, start = 0, time.perf_counter()
        while clips < args.clips:
            clips += next(batches)["pixel_values"].shape[0]
        rates.append(clips / (time.perf_counter() - start))
    return statistics.median(rates)


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as scratch:
        video_dir = args.video_dir or scratch
        # Videos depend only on these settings (seed 0), so a kept folder per setting can be reused.
        video_dir = os.path.join(
            video_dir,
            f"{args.num_videos}x{args.video_seconds:g}s_{args.width}x{args.height}_{args.fps}fps_"
            f"gop{args.gop}_crf{args.crf}_grain{args.grain:g}",
        )
        start = time.perf_counter()
        index = make_videos(args, video_dir)
        generation_seconds = time.perf_counter() - start
        sizes = [os.path.getsize(path) for path in index["path"]]
        bitrate = 8 * sum(sizes) / len(sizes) / args.video_seconds / 1e6

        base = dict(num_frames=args.num_frames, sampling_rate=args.sampling_rate, crop_size=args.crop_size)
        pipelines = [
            ("naive (decode from start)", NaiveDecodeDataset, VideoClipConfig(**base), True),
            ("seek", VideoClipDataset, VideoClipConfig(**base), True),
            ("seek, uint8", VideoClipDataset, VideoClipConfig(**base), False),
            ("seek, num_sample=2", VideoClipDataset, VideoClipConfig(**base, num_sample=2), True),
            ("seek, num_sample=2, uint8", VideoClipDataset, VideoClipConfig(**base, num_sample=2), False),
        ]
        rows = []
        for num_workers in args.workers:
            naive_rate = None
            for name, dataset_class, config, normalize in pipelines:
                dataset = dataset_class(index, config, train=True, normalize=normalize)
                rate = clips_per_second(dataset, args, num_workers)
                naive_rate = rate if naive_rate is None else naive_rate
                rows.append(
                    {"pipeline": name, "workers": num_workers, "clips_per_s": rate, "speedup": rate / naive_rate}
                )

    print(
        f"\n{args.num_videos} videos x {args.video_seconds:g} s, {args.width}x{args.height} @ {args.fps} fps, H.264 "
        f"(libx264 veryfast, crf {args.crf}, keyframe every {args.gop} frames, {bitrate:.2f} Mbit/s), "
        f"generated in {generation_seconds:.1f} s"
    )
    print(
        f"clips: {args.num_frames} frames x stride {args.sampling_rate}, {args.crop_size}x{args.crop_size} "
        f"multi-scale crop; {args.clips} clips per pass, median of {args.repeats}"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}; "
        f"python {platform.python_version()}, torch {torch.__version__}, av {av.__version__} "
        f"(FFmpeg libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))})\n"
    )
    print(f"| {'pipeline':<28} | {'DataLoader workers':>18} | {'clips/s':>8} | {'vs naive':>8} |")
    print(f"| {'-' * 28} | {'-' * 17}: | {'-' * 7}: | {'-' * 7}: |")
    for row in rows:
        workers = f"{row['workers']} (main process)" if row["workers"] == 0 else str(row["workers"])
        print(f"| {row['pipeline']:<28} | {workers:>18} | {row['clips_per_s']:>8.1f} | {row['speedup']:>7.2f}x |")
    return rows


if __name__ == "__main__":
    main()
