"""End-to-end pretraining throughput: `run_pretrain.py`'s own loop on decoded videos against synthetic inputs.

Generates 320p H.264 videos (one process per CPU), then runs `adamae_hf.pretrain_run.run_pretraining` (the loop of
`run_pretrain.py`: its DataLoader with workers and pinned memory, uint8 clips normalised on the device, the model, fused
AdamW) for a fixed number of steps: first on synthetic clips (one fixed uint8 clip per item: no decoding, no
augmentation), then on the videos for every worker count, `num_sample` and transport asked for. clips/s comes from
each run's own log (`logs/scalars.jsonl`) over the steps after the warm-up, and each video row is compared with the
synthetic one: the share of the model's speed that the data pipeline keeps.

    python benchmarks/end_to_end.py                                   # GPU: ViT-B/16, 16x224x224, batch 16, bf16
    python benchmarks/end_to_end.py --workers 8 14 --num_sample 1 2 --transport uint8 float32 --torch_compile
    python benchmarks/end_to_end.py --smoke                           # CPU: tiny model and videos (CI runs this)
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import av
import torch
from torch.utils.data import Dataset


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's top-level modeling files

from adamae_hf.data import generate_sample_videos  # noqa: E402
from adamae_hf.pretrain_arguments import parse_pretraining_args  # noqa: E402
from adamae_hf.pretrain_run import run_pretraining  # noqa: E402
from adamae_hf.training import read_scalar_log, reset_accelerate_state  # noqa: E402
from benchmarks.pretrain_step import TINY  # noqa: E402
from benchmarks.pretrain_step import environment as step_environment  # noqa: E402


class SyntheticClips(Dataset):
    """`num_videos` items holding the same fixed uint8 clip `(1, T, 3, size, size)`: training without any decoding
    or augmentation cost, the ceiling the video rows are measured against."""

    def __init__(self, num_videos: int, num_frames: int, crop_size: int):
        generator = torch.Generator().manual_seed(0)
        self.clip = torch.randint(
            0, 256, (1, num_frames, 3, crop_size, crop_size), dtype=torch.uint8, generator=generator
        )
        self.num_videos = num_videos

    def __len__(self) -> int:
        return self.num_videos

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {"pixel_values": self.clip, "video_index": torch.tensor([index])}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num_videos", type=int, default=32, help="Distinct generated videos.")
    parser.add_argument("--video_seconds", type=float, default=10.0)
    parser.add_argument("--height", type=int, default=320, help="Short side of the generated videos.")
    parser.add_argument("--width", type=int, default=568, help="Long side (568 = 16:9 at 320).")
    parser.add_argument("--gop", type=int, default=25, help="Keyframe interval in frames (a keyframe a second).")
    parser.add_argument("--num_frames", type=int, default=16)
    parser.add_argument("--sampling_rate", type=int, default=4)
    parser.add_argument("--crop_size", type=int, default=224)
    parser.add_argument("--batch_size", type=int, default=16, help="Clips per step (one process).")
    parser.add_argument("--steps", type=int, default=100, help="Steps per run, warm-up included.")
    parser.add_argument("--warmup_steps", type=int, default=40, help="Untimed first steps (a multiple of log_steps).")
    parser.add_argument("--log_steps", type=int, default=10)
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[max(1, (os.cpu_count() or 2) - 2)],
        help="DataLoader worker counts of the video rows.",
    )
    parser.add_argument("--num_sample", type=int, nargs="+", default=[1, 2], help="Clips drawn per decoded video.")
    parser.add_argument(
        "--synthetic_workers",
        type=int,
        default=2,
        help="DataLoader workers of the synthetic row: they batch the fixed clips, so the main process "
        "only launches the model's work, as with real data.",
    )
    parser.add_argument(
        "--transport",
        nargs="+",
        choices=["uint8", "float32"],
        default=["uint8"],
        help="uint8: clips normalised on the device (--normalize_on_device, the default); float32: "
        "normalised in the workers.",
    )
    parser.add_argument("--mixed_precision", default="bf16", choices=["no", "bf16", "fp16"])
    parser.add_argument("--torch_compile", action="store_true")
    parser.add_argument("--torch_compile_mode", default=None, help="e.g. reduce-overhead (CUDA graphs)")
    parser.add_argument("--video_dir", default=None, help="Keep (and reuse) the generated videos here.")
    parser.add_argument("--json", help="Also write the rows to this file.")
    parser.add_argument("--smoke", action="store_true", help="Tiny model and videos on the CPU: checks that it runs.")
    args = parser.parse_args(argv)
    if args.smoke:
        args.num_videos, args.video_seconds, args.height, args.width, args.gop = 2, 1.0, 48, 64, 10
        args.num_frames, args.sampling_rate, args.crop_size, args.batch_size = 8, 2, 32, 2
        args.steps, args.warmup_steps, args.log_steps = 4, 2, 2
        args.workers, args.num_sample, args.mixed_precision, args.synthetic_workers = [0], [1], "no", 0
    if not 0 < args.warmup_steps < args.steps or args.warmup_steps % args.log_steps:
        parser.error(
            "--warmup_steps must be a positive multiple of --log_steps below --steps (timing starts at a log)"
        )
    return args


def _generate_chunk(task: tuple[str, int, int, dict]) -> list[str]:
    folder, seed, count, settings = task
    return [video.path for video in generate_sample_videos(folder, num_videos=count, seed=seed, **settings)]


def make_videos(args, root: Path) -> list[str]:
    """The generated videos (reused when `root` already holds them): chunks encoded in parallel, one per process."""
    fps = 25
    settings = dict(
        num_frames=int(round(args.video_seconds * fps)),
        height=args.height,
        width=args.width,
        fps=fps,
        grain=4.0,
        crf=20,
        gop_size=args.gop,
        save_masks=False,
        keep_masks=False,
    )
    folder = root / f"{args.num_videos}x{args.video_seconds:g}s_{args.width}x{args.height}_gop{args.gop}"
    processes = max(1, min(os.cpu_count() or 1, args.num_videos))
    counts = [args.num_videos // processes + (i < args.num_videos % processes) for i in range(processes)]
    tasks = [(str(folder / f"part{i}"), i, count, settings) for i, count in enumerate(counts) if count]
    existing = sorted(str(path) for path in folder.glob("part*/*.mp4"))
    if len(existing) == args.num_videos:
        return existing
    with ProcessPoolExecutor(len(tasks)) as pool:
        return sorted(path for paths in pool.map(_generate_chunk, tasks) for path in paths)  # as when reused


def write_index(paths: list[str], rows: int, path: Path) -> Path:
    """A CSV index listing the videos round-robin, `rows` long: one epoch covers every timed step, so the loader
    never drains at an epoch boundary (as on a real dataset of thousands of videos)."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path"])
        writer.writerows([paths[i % len(paths)]] for i in range(rows))
    return path


def pretraining_argv(args, output_dir: Path, index_file=None, workers=0, num_sample=1, transport="uint8") -> list[str]:
    """`run_pretrain.py` flags of one run."""
    flags = {
        "output_dir": output_dir,
        "train_index": index_file,
        "num_frames": args.num_frames,
        "sampling_rate": args.sampling_rate,
        "crop_size": args.crop_size,
        "num_sample": num_sample,
        "per_device_train_batch_size": args.batch_size,
        "max_steps": args.steps,
        "warmup_steps": 1,
        "logging_steps": args.log_steps,
        "save_steps": 10**9,
        "dataloader_num_workers": workers,
        "normalize_on_device": transport == "uint8",
        "mixed_precision": args.mixed_precision,
        "torch_compile": args.torch_compile,
        "torch_compile_mode": args.torch_compile_mode,
        "report_to": "none",
        "use_cpu": args.smoke,
        "visualize": False,
    }
    if args.smoke:
        flags["config_overrides"] = ",".join(f"{k}={v}" for k, v in TINY.items() if k != "image_size")
    return [item for name, value in flags.items() if value is not None for item in (f"--{name}", str(value))]


def measure(args, output_dir: Path, train_dataset=None, **run) -> float:
    """clips/s of one pretraining run over its steps after the warm-up, from the run's scalar log (each record's
    clips/s covers the steps since the previous record, logging included)."""
    reset_accelerate_state()
    run_pretraining(*parse_pretraining_args(pretraining_argv(args, output_dir, **run)), train_dataset=train_dataset)
    records = read_scalar_log(output_dir / "logs" / "scalars.jsonl")
    clips = seconds = 0.0
    for previous, record in zip(records, records[1:]):
        if previous["step"] >= args.warmup_steps:
            interval_clips = (record["step"] - previous["step"]) * args.batch_size
            clips += interval_clips
            seconds += interval_clips / record["clips_per_second"]
    return clips / seconds


def environment(device: str) -> str:
    """`pretrain_step`'s line (device, torch, transformers, Python), plus what decoding runs on."""
    return (
        f"{step_environment(torch.device(device))}; {os.cpu_count()} CPUs ({platform.machine()}), av {av.__version__}"
    )


def main(argv=None) -> list[dict]:
    args = parse_args(argv)
    device = "cuda" if torch.cuda.is_available() and not args.smoke else "cpu"
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        paths = make_videos(args, Path(args.video_dir) if args.video_dir else scratch / "videos")
        rows = measure_rows(args, paths, scratch)
    for row in rows:
        row["vs_synthetic"] = row["clips_per_s"] / rows[0]["clips_per_s"]
    print_report(args, device, rows)
    if args.json:
        Path(args.json).write_text(json.dumps({"environment": environment(device), "rows": rows}, indent=2))
    return rows


def measure_rows(args, paths: list[str], scratch: Path) -> list[dict]:
    """The synthetic-clip run, then one run per (num_sample, workers, transport) on the decoded videos; each row is
    printed as a JSON line as soon as it is measured."""
    clips_per_run = args.batch_size * (args.steps + 1)
    synthetic = SyntheticClips(clips_per_run, args.num_frames, args.crop_size)
    rate = measure(args, scratch / "synthetic", train_dataset=synthetic, workers=args.synthetic_workers)
    rows = [_row("synthetic", args.synthetic_workers, 1, "uint8", rate)]
    for num_sample in args.num_sample:
        index_file = write_index(paths, -(-clips_per_run // num_sample), scratch / f"index-{num_sample}.csv")
        for workers in args.workers:
            for transport in args.transport:
                name = f"videos-w{workers}-n{num_sample}-{transport}"
                run = dict(workers=workers, num_sample=num_sample, transport=transport)
                rate = measure(args, scratch / name, index_file=str(index_file), **run)
                rows.append(_row("decoded videos", workers, num_sample, transport, rate))
    return rows


def _row(source: str, workers: int, num_sample: int, transport: str, clips_per_s: float) -> dict:
    row = {
        "input": source,
        "workers": workers,
        "num_sample": num_sample,
        "transport": transport,
        "clips_per_s": clips_per_s,
    }
    print(json.dumps(row), flush=True)
    return row


def print_report(args, device: str, rows: list[dict]):
    """The setup in one paragraph and the rows as a markdown table."""
    compiled = f"torch.compile ({args.torch_compile_mode or 'default'})" if args.torch_compile else "eager"
    print(f"\n{environment(device)}")
    print(
        f"{args.num_videos} videos x {args.video_seconds:g} s, {args.width}x{args.height} H.264, keyframe every "
        f"{args.gop} frames; clips {args.num_frames} x {args.crop_size}^2 at stride {args.sampling_rate}; batch "
        f"{args.batch_size}, mixed precision {args.mixed_precision}, {compiled}; steps {args.warmup_steps + 1}-{args.steps} "
        "timed\n"
    )
    print("| input | workers | num_sample | transport | clips/s | vs synthetic |")
    print("|---|---:|---:|---|---:|---:|")
    for row in rows:
        print(
            f"| {row['input']} | {row['workers']} | {row['num_sample']} | {row['transport']} "
            f"| {row['clips_per_s']:.1f} | {100 * row['vs_synthetic']:.0f}% |"
        )


if __name__ == "__main__":
    main()
