"""Clip throughput of the video data pipeline: readers, sources and resolutions, per core, and projected.

Generates 10-second H.264 videos (320-pixel short side, textured background, moving object, film grain) and
measures clips per second for 16-frame 224x224 training clips at stride 4 (multi-scale crop), in three tables.

1. Pipelines, through a real DataLoader (per worker count):

   * ``naive``: frames decoded as in transformers' video-classification example (``read_video_pyav``: decode every
     frame from the start up to the last wanted index, PyAV's default threading), same sampling and transforms;
   * ``seek``: :class:`adamae_hf.data.VideoReader` (seek to the keyframe before the window, drop unneeded
     non-reference frames, convert only wanted frames);
   * ``seek, num_sample=2``: the same with repeated sampling (one decode, two augmented clips);
   * ``uint8``: the clips leave the dataset as uint8, for the training loop to normalise on the GPU
     (``run_pretrain.py --normalize_on_device``, the default): a quarter of the bytes between processes.

2. Per core, in clips per CPU-second (one process, one decoder thread, one torch thread, no DataLoader workers; the
   process's CPU time, so other load on the machine does not count; uint8 clips, num_sample=1) at
   320p, 1080p and 4K, with our reader from local files (also without its scaling in the decoder), from bytes in
   memory (a ``bytes`` column), from a ``datasets`` ``Video`` column (bytes embedded, memory-mapped from disk) and
   from tar shards written by ``adamae-prepare`` and streamed through ``datasets``' webdataset builder; beside
   decord (the authors' and VideoMAE's loader) on the same files with the same sampling and transforms, after
   checking that both readers return identical frames for the same indices. decord is not a dependency:
   ``pip install decord`` where you run the benchmark (without it the table says "decord: not installed").

3. Projection: per-core clips/s at 320p for each ``--num-samples`` value, times ``--cores`` (16), against the 650
   clips/s of the training step (benchmarks/RESULTS.md), and the ``num_sample`` that closes the gap.

Each row is the median of ``--repeats`` timed passes, after one warm-up batch that also starts the workers.

    python benchmarks/data_throughput.py                  # a few minutes on 2 cores
    python benchmarks/data_throughput.py --smoke          # seconds, tiny videos: checks that it runs
    python benchmarks/data_throughput.py --resolutions 320p --workers 0 1 2 4
    python benchmarks/data_throughput.py --tables sources projection --video-dir ~/bench_videos  # keep the videos
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import csv
import importlib.util
import math
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
import torch.nn.functional as F


sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from torch.utils.data import DataLoader  # noqa: E402

from adamae_hf.data import (  # noqa: E402
    VideoClipConfig,
    VideoClipDataset,
    VideoReader,
    collate_clips,
    generate_sample_videos,
    index_from_dataset,
    render_motion_clip,
    videos_per_batch,
)
from adamae_hf.prepare import PrepareArguments, prepare_shards  # noqa: E402


try:
    import decord
except ImportError:  # not a dependency: the benchmark says so and goes on
    decord = None

RESOLUTIONS = {"320p": (320, 568), "1080p": (1080, 1920), "4k": (2160, 3840)}
SMOKE_SIZES = {"320p": (48, 64), "1080p": (64, 96), "4k": (96, 128)}
SOURCES = ("local files", "local files, no decoder scaling", "bytes in memory", "datasets Video column",
           "tar shards (streamed)")  # fmt: skip
TABLES = ("pipelines", "sources", "projection")
STREAMING_AVAILABLE = importlib.util.find_spec("adamae_hf.data.streaming") is not None
# Grain fields cycled through the frames of a high-resolution video (drawing fresh noise for each 4K frame is slow).
_GRAIN_FIELDS = 8


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


class FullSizeDecodeDataset(VideoClipDataset):
    """Our reader with frames at full size until the transform (no scaling in the decoder): what 1080p and 4K cost
    before the decoder scaled them."""

    def read_clip_frames(self, video_index, rng):
        def indices(length: int) -> np.ndarray:
            return np.concatenate(self.sample_clips(length, copy.deepcopy(rng)))

        with VideoReader(self.paths[video_index], num_threads=1) as reader:
            frames, _ = reader.read_sampled_frames(indices)
        return [frames]


class DecordDataset(VideoClipDataset):
    """The authors' and VideoMAE's loader, ``decord.VideoReader(path, num_threads=1).get_batch(indices)``, under the
    same sampling, transforms and batching as :class:`VideoClipDataset`."""

    def read_clip_frames(self, video_index, rng):
        reader = decord.VideoReader(self.paths[video_index], num_threads=1)
        return [reader.get_batch(clip.tolist()).asnumpy() for clip in self.sample_clips(len(reader), rng)]


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
    parser.add_argument(
        "--resolutions", nargs="+", choices=list(RESOLUTIONS), default=list(RESOLUTIONS),
        help="Resolutions of the per-core table (320p: the videos above).",
    )  # fmt: skip
    parser.add_argument("--high-res-videos", type=int, default=2, help="Videos generated at 1080p and at 4K.")
    parser.add_argument("--high-res-seconds", type=float, default=4.0, help="Length of those videos.")
    parser.add_argument(
        "--per-core-clips", type=int, nargs=3, default=[32, 8, 4], metavar=("AT_320P", "AT_1080P", "AT_4K"),
        help="Clips timed per pass of a per-core row, by resolution.",
    )  # fmt: skip
    parser.add_argument("--num-samples", type=int, nargs="+", default=[1, 2, 4], help="num_sample values projected.")
    parser.add_argument("--cores", type=int, default=16, help="Cores of the machine projected to.")
    parser.add_argument("--target", type=float, default=650.0, help="Clips/s the training step consumes.")
    parser.add_argument("--tables", nargs="+", choices=TABLES, default=list(TABLES), help="Which tables to measure.")
    parser.add_argument("--smoke", action="store_true", help="Tiny run (a few seconds) to check the script works.")
    args = parser.parse_args(argv)
    args.sizes = dict(RESOLUTIONS)
    if args.smoke:
        args.num_videos, args.video_seconds, args.fps = 2, 1.0, 25
        args.height, args.width, args.gop = 48, 64, 10
        args.num_frames, args.sampling_rate, args.crop_size = 4, 2, 32
        args.clips, args.clips_per_batch, args.workers, args.repeats = 8, 4, [0], 1
        args.sizes = dict(SMOKE_SIZES)
        args.high_res_videos, args.high_res_seconds, args.per_core_clips = 1, 1.0, [4, 4, 4]
    args.sizes["320p"] = (args.height, args.width)
    return args


# ---------------------------------------------------------------------------------------------------------------------
# Videos


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


def write_upscaled_video(path: str, height: int, width: int, args, seed: int) -> None:
    """A moving object drawn at a quarter of the size, upscaled frame by frame, with full-size grain (so the bitrate
    is that of camera footage), encoded as it goes: a 4K clip never sits in memory whole."""
    rng = np.random.default_rng(seed)
    num_frames = int(round(args.high_res_seconds * args.fps))
    small, _ = render_motion_clip("move_right", num_frames, max(2, height // 4), max(2, width // 4), rng)
    grain = [rng.normal(0, args.grain, size=(height, width, 3)).astype(np.int16) for _ in range(_GRAIN_FIELDS)]
    with av.open(path, mode="w") as container:
        stream = container.add_stream("libx264", rate=args.fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"crf": str(args.crf), "preset": "veryfast", "g": str(args.gop)}
        for t, frame in enumerate(small):
            chw = torch.from_numpy(frame).permute(2, 0, 1)[None].float()  # (1, 3, h, w)
            large = F.interpolate(chw, size=(height, width), mode="bilinear", align_corners=False)
            pixels = large[0].permute(1, 2, 0).round().to(torch.int16).numpy() + grain[t % _GRAIN_FIELDS]
            video_frame = av.VideoFrame.from_ndarray(np.clip(pixels, 0, 255).astype(np.uint8), format="rgb24")
            container.mux(stream.encode(video_frame))
        container.mux(stream.encode(None))


def videos_at(resolution: str, args, video_dir: str, index_320p: datasets.Dataset) -> list[str]:
    """Paths of the videos of one resolution (generated once per setting, kept in ``video_dir``)."""
    if resolution == "320p":
        return list(index_320p["path"])
    height, width = args.sizes[resolution]
    folder = os.path.join(video_dir, f"{resolution}_{width}x{height}_{args.high_res_seconds:g}s_gop{args.gop}")
    os.makedirs(folder, exist_ok=True)
    paths = [os.path.join(folder, f"video_{i:04d}.mp4") for i in range(args.high_res_videos)]
    for seed, path in enumerate(paths):
        if not os.path.exists(path):
            write_upscaled_video(path + ".partial.mp4", height, width, args, seed)
            os.replace(path + ".partial.mp4", path)
    return paths


def bitrate(paths: list[str], seconds: float) -> float:
    """Mean Mbit/s of the files."""
    return 8 * sum(os.path.getsize(path) for path in paths) / len(paths) / seconds / 1e6


# ---------------------------------------------------------------------------------------------------------------------
# Timing


def median_rate(batches, clips: int, repeats: int, clock=time.perf_counter) -> float:
    """Median clips per second of ``clock`` over ``repeats`` passes of at least ``clips`` clips, after one warm-up
    batch."""
    next(batches)  # warm-up: worker start, first file opens
    rates = []
    for _ in range(repeats):
        count, start = 0, clock()
        while count < clips:
            count += next(batches)["pixel_values"].shape[0]
        rates.append(count / (clock() - start))
    return statistics.median(rates)


def clips_needed(clips: int, clips_per_batch: int, repeats: int) -> int:
    """Clips for the warm-up batch and every timed pass."""
    return clips_per_batch * (1 + repeats * -(-clips // clips_per_batch))


def map_style_batches(dataset, clips: int, clips_per_batch: int, repeats: int, num_workers: int):
    # One sampler long enough for the warm-up batch and every timed pass, so the workers run throughout.
    videos_needed = clips_needed(clips, clips_per_batch, repeats) // dataset.views_per_video
    loader = DataLoader(
        dataset,
        batch_size=videos_per_batch(clips_per_batch, dataset.views_per_video),
        sampler=[i % len(dataset) for i in range(videos_needed)],  # round-robin over the videos
        collate_fn=collate_clips,
        num_workers=num_workers,
    )
    return iter(loader)


def streamed_batches(dataset, batch_size: int):
    """Batches of ``batch_size`` videos from a streaming clip dataset, epoch after epoch."""
    epoch = 0
    while True:
        dataset.set_epoch(epoch)
        yield from DataLoader(dataset, batch_size=batch_size, collate_fn=collate_clips)
        epoch += 1


def clips_per_second(dataset, args, num_workers: int) -> float:
    """Median clips/s of the pipelines table's rows."""
    batches = map_style_batches(dataset, args.clips, args.clips_per_batch, args.repeats, num_workers)
    return median_rate(batches, args.clips, args.repeats)


@contextlib.contextmanager
def one_core():
    """One torch thread (the transforms); the decoders already run one thread each."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


# ---------------------------------------------------------------------------------------------------------------------
# Sources


def open_source(source: str, paths: list[str], config: VideoClipConfig, scratch: str, videos: int, batch_size: int):
    """A clip dataset reading ``paths`` from ``source`` (uint8 training clips), and whether it is streamed
    (``videos``: how many a stream must hold; ``batch_size``: videos per batch)."""
    if source == "local files":
        return VideoClipDataset(index_from_dataset(datasets.Dataset.from_dict({"path": paths})), config, train=True,
                                normalize=False), False  # fmt: skip
    if source == "local files, no decoder scaling":
        return FullSizeDecodeDataset(index_from_dataset(datasets.Dataset.from_dict({"path": paths})), config,
                                     train=True, normalize=False), False  # fmt: skip
    if source == "bytes in memory":
        features = datasets.Features({"path": datasets.Value("string"), "bytes": datasets.Value("binary")})
        table = {"path": [os.path.basename(path) for path in paths], "bytes": [read_bytes(path) for path in paths]}
        return VideoClipDataset(datasets.Dataset.from_dict(table, features=features), config, train=True,
                                normalize=False), False  # fmt: skip
    if source == "datasets Video column":
        column = [{"path": os.path.basename(path), "bytes": read_bytes(path)} for path in paths]
        features = datasets.Features({"video": datasets.Video(decode=False)})
        folder = os.path.join(scratch, "video_column")
        datasets.Dataset.from_dict({"video": column}, features=features).save_to_disk(folder)
        return sources_clip_dataset(folder, config, streaming=False, batch_size=batch_size), False
    if source == "tar shards (streamed)":
        # As many videos as the passes read, so that the stream is not reopened for each few clips.
        folder = write_shards([paths[i % len(paths)] for i in range(videos)], scratch)
        return sources_clip_dataset(folder, config, streaming=True, batch_size=batch_size), True
    if source == "decord":
        return DecordDataset(index_from_dataset(datasets.Dataset.from_dict({"path": paths})), config, train=True,
                             normalize=False), False  # fmt: skip
    raise ValueError(f"unknown source {source!r}")


def read_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        return handle.read()


def write_shards(paths: list[str], scratch: str) -> str:
    """Tar shards of the files (bytes unchanged), written by adamae-prepare."""
    index_file, folder = os.path.join(scratch, "shard_index.csv"), os.path.join(scratch, "shards")
    with open(index_file, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label"])
        writer.writerows([path, "clip"] for path in paths)
    with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):  # its progress bar
        prepare_shards(PrepareArguments(index=index_file, output_dir=folder, videos_per_shard=64, num_workers=1))
    return folder


def sources_clip_dataset(source: str, config: VideoClipConfig, streaming: bool, batch_size: int):
    """The training scripts' way in: ``--train_index SOURCE [--streaming]``."""
    from adamae_hf.data.sources import DataSourceArguments, clip_dataset, open_video_split

    split = open_video_split(DataSourceArguments(train_index=source, streaming=streaming), "train")
    return clip_dataset(split, config, train=True, seed=0, normalize=False, videos_per_batch=batch_size)


def per_core_rate(source: str, paths: list[str], config: VideoClipConfig, clips: int, args, scratch: str) -> float:
    clips_per_batch = max(config.num_sample, min(args.clips_per_batch, clips))
    repeats = args.repeats
    needed = clips_needed(clips, clips_per_batch, repeats)
    with one_core():
        batch_size = videos_per_batch(clips_per_batch, config.num_sample)
        dataset, streamed = open_source(source, paths, config, scratch, needed // config.num_sample, batch_size)
        if streamed:
            batches = streamed_batches(dataset, batch_size)
        else:
            batches = map_style_batches(dataset, clips, clips_per_batch, repeats, num_workers=0)
        # CPU seconds of this process: the rate of one core, whatever else the machine runs meanwhile.
        return median_rate(batches, clips, repeats, clock=time.process_time)


def frames_match_decord(paths: list[str], config: VideoClipConfig, checks_per_video: int = 3) -> tuple[bool, int]:
    """(identical?, largest pixel difference) of decord's and our frames for clip-shaped index sets."""
    rng, largest = np.random.default_rng(0), 0
    span = (config.num_frames - 1) * config.sampling_rate
    for path in paths:
        reference = decord.VideoReader(path, num_threads=1)
        for _ in range(checks_per_video):
            start = int(rng.integers(0, max(1, len(reference) - span)))
            indices = np.minimum(start + config.sampling_rate * np.arange(config.num_frames), len(reference) - 1)
            with VideoReader(path, num_threads=1) as reader:
                ours = reader.read_frames(indices)
            theirs = reference.get_batch(indices.tolist()).asnumpy()
            largest = max(largest, int(np.abs(ours.astype(np.int16) - theirs).max()) if ours.shape == theirs.shape
                          else 255)  # fmt: skip
    return largest == 0, largest


def source_table(args, index_320p: datasets.Dataset, video_dir: str, config: VideoClipConfig) -> dict:
    """Per-core clips/s by (reader and source, resolution), decord's frame check and each resolution's bitrate."""
    names = [name for name in SOURCES if STREAMING_AVAILABLE or name != "tar shards (streamed)"]
    names += ["decord"] if decord is not None else []
    rates: dict[str, dict[str, float | str]] = {name: {} for name in names}
    identical, bitrates = {}, {}
    for resolution in args.resolutions:
        paths = videos_at(resolution, args, video_dir, index_320p)
        seconds = args.video_seconds if resolution == "320p" else args.high_res_seconds
        bitrates[resolution] = bitrate(paths, seconds)
        clips = args.per_core_clips[list(RESOLUTIONS).index(resolution)]
        for name in names:
            with tempfile.TemporaryDirectory() as scratch:
                try:
                    rates[name][resolution] = per_core_rate(name, paths, config, clips, args, scratch)
                except Exception as error:  # a source another part of the project does not offer yet: say why
                    rates[name][resolution] = f"not measured ({type(error).__name__}: {error})"
        if decord is not None:
            identical[resolution] = frames_match_decord(paths, config)
    return {"rates": rates, "identical": identical, "bitrates": bitrates}


# ---------------------------------------------------------------------------------------------------------------------
# Projection


def projection(args, index_320p: datasets.Dataset, base: dict, scratch: str) -> dict:
    """Per-core clips/s at 320p by num_sample, times ``args.cores``, and the num_sample that feeds ``args.target``:
    the smallest measured one whose projection reaches it, else one extrapolated from a fit.

    A video costs ``decode + num_sample * augment`` seconds on one core; a least-squares fit of the measured rates
    gives both (``augment`` at least 0, as timing noise can tilt the line)."""
    paths = list(index_320p["path"])
    rates = {}
    for num_sample in args.num_samples:
        config = VideoClipConfig(**base, num_sample=num_sample)
        clips = max(args.per_core_clips[0], num_sample)
        rates[num_sample] = per_core_rate("local files", paths, config, clips - clips % num_sample, args, scratch)
    samples = np.array(list(rates), dtype=float)
    seconds_per_video = samples / np.array(list(rates.values()))
    augment = max(0.0, float(np.polyfit(samples, seconds_per_video, 1)[0])) if len(samples) > 1 else 0.0
    decode = float(np.mean(seconds_per_video - samples * augment))
    measured = [num_sample for num_sample, rate in rates.items() if rate * args.cores >= args.target]
    needed_per_core = args.target / args.cores
    if measured:
        closing, how = min(measured), "measured"
    elif needed_per_core * augment >= 1:
        closing, how = None, "fit"  # the augmentations alone are slower than the target, whatever num_sample
    else:
        closing, how = max(1, math.ceil(needed_per_core * decode / (1 - needed_per_core * augment))), "fit"
    return {"rates": rates, "decode_s": decode, "augment_s": augment, "closing_num_sample": closing,
            "closing_from": how}  # fmt: skip


# ---------------------------------------------------------------------------------------------------------------------
# Output


def print_pipelines(rows: list[dict]) -> None:
    print(f"| {'pipeline':<28} | {'DataLoader workers':>18} | {'clips/s':>8} | {'vs naive':>8} |")
    print(f"| {'-' * 28} | {'-' * 17}: | {'-' * 7}: | {'-' * 7}: |")
    for row in rows:
        workers = f"{row['workers']} (main process)" if row["workers"] == 0 else str(row["workers"])
        print(f"| {row['pipeline']:<28} | {workers:>18} | {row['clips_per_s']:>8.1f} | {row['speedup']:>7.2f}x |")


def print_sources(table: dict, args) -> None:
    resolutions = args.resolutions
    heading = [f"{r} ({args.sizes[r][1]}x{args.sizes[r][0]}, {table['bitrates'][r]:.1f} Mbit/s)" for r in resolutions]
    print("\nPer core (1 process, 1 decoder thread, 1 torch thread, no DataLoader workers), uint8 clips, "
          "num_sample=1; clips per CPU-second:\n")  # fmt: skip
    print("| reader, source | " + " | ".join(heading) + " |")
    print("|---|" + "---:|" * len(resolutions))
    for name, by_resolution in table["rates"].items():
        label = f"decord {decord.__version__}, local files" if name == "decord" else f"ours, {name}"
        cells = [f"{value:.2f}" if isinstance(value, float) else value for value in by_resolution.values()]
        print(f"| {label} | " + " | ".join(cells) + " |")
    if decord is None:
        print("\ndecord: not installed (pip install decord, in the benchmark's environment only)")
        return
    ours, theirs = table["rates"]["local files"], table["rates"]["decord"]
    ratios = [f"{ours[r] / theirs[r]:.2f}x" if isinstance(ours[r], float) and isinstance(theirs[r], float) else "-"
              for r in resolutions]  # fmt: skip
    print("| ours / decord, local files | " + " | ".join(ratios) + " |")
    checks = ", ".join(f"{resolution}: {'identical' if same else f'differ (max {largest})'}"
                       for resolution, (same, largest) in table["identical"].items())  # fmt: skip
    print(f"\nframes of our reader vs decord for the same indices (3 clips per video): {checks}")


def print_projection(result: dict, args) -> None:
    print(f"\nProjection to {args.cores} cores (320p, local files, uint8; linear in cores, DataLoader overhead not "
          f"counted) against the {args.target:g} clips/s training step:\n")  # fmt: skip
    print(f"| num_sample | clips per CPU-second | x {args.cores} cores | vs {args.target:g} |")
    print("|---:|---:|---:|---:|")
    for num_sample, rate in result["rates"].items():
        projected = rate * args.cores
        print(f"| {num_sample} | {rate:.1f} | {projected:.0f} | {projected / args.target:.2f}x |")
    closing = result["closing_num_sample"]
    fit = f"a video costs {1000 * result['decode_s']:.1f} ms + num_sample x {1000 * result['augment_s']:.1f} ms"
    if closing is None:
        print(f"\n{fit} on one core: no num_sample reaches {args.target:g} clips/s on {args.cores} cores.")
    else:
        source = "measured" if result["closing_from"] == "measured" else "extrapolated from that fit"
        print(f"\n{fit} on one core: num_sample >= {closing} reaches {args.target:g} clips/s on {args.cores} cores "
              f"({source}).")  # fmt: skip


def print_setting(args, generation_seconds: float, bitrate_320p: float) -> None:
    print(
        f"\n{args.num_videos} videos x {args.video_seconds:g} s, {args.width}x{args.height} @ {args.fps} fps, H.264 "
        f"(libx264 veryfast, crf {args.crf}, keyframe every {args.gop} frames, {bitrate_320p:.2f} Mbit/s), "
        f"generated in {generation_seconds:.1f} s"
    )
    print(
        f"clips: {args.num_frames} frames x stride {args.sampling_rate}, {args.crop_size}x{args.crop_size} "
        f"multi-scale crop; {args.clips} clips per pass, median of {args.repeats}"
    )
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} CPUs, {platform.processor() or platform.platform()}; "
        f"python {platform.python_version()}, torch {torch.__version__}, av {av.__version__} "
        f"(FFmpeg libavcodec {'.'.join(map(str, av.library_versions['libavcodec']))}), "
        f"datasets {datasets.__version__}, decord {decord.__version__ if decord is not None else 'not installed'}\n"
    )


def pipeline_rows(args, index: datasets.Dataset, base: dict) -> list[dict]:
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
            rows.append({"pipeline": name, "workers": num_workers, "clips_per_s": rate, "speedup": rate / naive_rate})
    return rows


def main(argv=None) -> dict:
    """Run the measurements, print their tables; returns {"pipelines": rows, "sources": table, "projection": result}
    (None for a table not asked for)."""
    args = parse_args(argv)
    torch.manual_seed(0)
    datasets.disable_progress_bars()  # saving the Video column and streaming the shards
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
        base = dict(num_frames=args.num_frames, sampling_rate=args.sampling_rate, crop_size=args.crop_size)
        rows = pipeline_rows(args, index, base) if "pipelines" in args.tables else None
        sources = source_table(args, index, video_dir, VideoClipConfig(**base)) if "sources" in args.tables else None
        projected = projection(args, index, base, scratch) if "projection" in args.tables else None
        bitrate_320p = bitrate(list(index["path"]), args.video_seconds)

    print_setting(args, generation_seconds, bitrate_320p)
    if rows is not None:
        print_pipelines(rows)
    if sources is not None:
        print_sources(sources, args)
    if projected is not None:
        print_projection(projected, args)
    return {"pipelines": rows, "sources": sources, "projection": projected}


if __name__ == "__main__":
    main()
