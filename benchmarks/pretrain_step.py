"""One pretraining step (forward, backward, AdamW): AdaMAE against transformers' VideoMAEForPreTraining.

Prints a table of ms/step, clips/s, peak GPU memory, model TFLOP/s and MFU (against a bf16 matrix product measured
in the same run) for AdaMAE adaptive 0.95, its tube / random / frame baselines (the rows of the paper's memory table
(a)), and stock VideoMAE with tube masking at 0.9, on synthetic inputs (no data loading). FLOPs are counted with
torch's FlopCounterMode over one forward + backward.

    python benchmarks/pretrain_step.py                       # GPU: the ViT-B/16 16x224x224 tables
    python benchmarks/pretrain_step.py --batch_sizes 16 128 --num_frames 16 32 --compile both
    python benchmarks/pretrain_step.py --plan issue          # GPU: the performance issue's whole set in one run
    python benchmarks/pretrain_step.py --plan issue --rows compiled --compile_mode reduce-overhead   # CUDA graphs
    python benchmarks/pretrain_step.py --smoke               # CPU: a tiny config, a few steps (CI runs this)
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's top-level modeling files

import transformers  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402
from transformers import VideoMAEConfig, VideoMAEForPreTraining  # noqa: E402

from configuration_adamae import AdaMaeConfig  # noqa: E402
from modeling_adamae import AdaMaeForPreTraining  # noqa: E402


# (label, implementation, mask type, mask ratio)
# AdaMAE's rows are those of the paper's memory table (a): adaptive 0.95 and the tube / random / frame baselines.
SYSTEMS = {
    "adamae-adaptive-0.95": ("adamae", "adaptive", 0.95),
    "adamae-tube-0.75": ("adamae", "tube", 0.75),
    "adamae-tube-0.9": ("adamae", "tube", 0.9),
    "adamae-random-0.75": ("adamae", "random", 0.75),
    "adamae-random-0.9": ("adamae", "random", 0.9),
    "adamae-frame-0.875": ("adamae", "frame", 0.875),
    "videomae-tube-0.9": ("videomae", "tube", 0.9),
}

TINY = dict(
    image_size=32,
    patch_size=8,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=2,
    intermediate_size=64,
    decoder_hidden_size=16,
    decoder_num_hidden_layers=1,
    decoder_num_attention_heads=2,
    decoder_intermediate_size=32,
    sampler_num_attention_heads=2,
)


@dataclass
class Result:
    system: str
    compiled: str
    batch_size: int
    num_frames: int
    ms_per_step: float
    clips_per_s: float
    peak_gib: float
    tflop_per_clip: float
    tflops: float
    mfu: float


def build(system: str, num_frames: int, smoke: bool):
    implementation, mask_type, mask_ratio = SYSTEMS[system]
    sizes = dict(TINY) if smoke else {}
    if implementation == "adamae":
        config = AdaMaeConfig(num_frames=num_frames, mask_type=mask_type, mask_ratio=mask_ratio, **sizes)
        return AdaMaeForPreTraining(config), config
    sizes = {k: v for k, v in sizes.items() if not k.startswith("sampler")}
    # the same architecture as AdaMAE's encoder/decoder; VideoMAE's own default eps is 1e-12
    config = VideoMAEConfig(num_frames=num_frames, layer_norm_eps=1e-6, use_mean_pooling=False, **sizes)
    config.mask_ratio = mask_ratio
    return VideoMAEForPreTraining(config), config


def videomae_tube_mask(config, batch_size: int, device) -> torch.Tensor:
    """VideoMAE's tube masking on the device: int(ratio * h * w) patches masked per slice, the same in every slice."""
    rows = config.image_size // config.patch_size
    per_slice = rows * rows
    num_masked = int(config.mask_ratio * per_slice)
    order = torch.rand(batch_size, per_slice, device=device).argsort(dim=1)
    slice_mask = torch.zeros(batch_size, per_slice, dtype=torch.bool, device=device)
    slice_mask.scatter_(1, order[:, :num_masked], True)
    return slice_mask.repeat(1, config.num_frames // config.tubelet_size)


def make_step(model, config, optimizer, device, dtype, batch_size):
    is_videomae = isinstance(model, VideoMAEForPreTraining)
    autocast = torch.autocast(device_type=device.type, dtype=dtype, enabled=dtype != torch.float32)

    def forward_backward(pixel_values):
        kwargs = {"bool_masked_pos": videomae_tube_mask(config, batch_size, device)} if is_videomae else {}
        with autocast:
            loss = model(pixel_values, **kwargs).loss
        loss.backward()
        return loss

    def step(pixel_values):
        loss = forward_backward(pixel_values)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss

    return forward_backward, step


def count_flops(forward_backward, pixel_values) -> float:
    with FlopCounterMode(display=False) as counter:
        forward_backward(pixel_values)
    return counter.get_total_flops()


def synchronize(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_steps(run, warmup: int, steps: int, device, *args) -> tuple[float, object]:
    """Mean seconds per call of `run(*args)` over `steps` calls after `warmup` untimed ones (which also compile,
    allocate, pick kernels); the peak-memory counter restarts after the warm-up. Returns (seconds, the last result)."""
    for _ in range(warmup):
        run(*args)
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    for _ in range(steps):
        result = run(*args)
    synchronize(device)
    return (time.perf_counter() - start) / steps, result


def profile(step, pixel_values, device, rows: int = 25):
    """Print the operators that take the most device time over 5 steps."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    with torch_profile(activities=activities) as profiler:
        for _ in range(5):
            step(pixel_values)
        synchronize(device)
    sort_by = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    print(profiler.key_averages().table(sort_by=sort_by, row_limit=rows), flush=True)


def measure(
    system,
    compiled,
    batch_size,
    num_frames,
    device,
    dtype,
    warmup,
    steps,
    smoke,
    peak_tflops,
    show_profile=False,
    compile_mode="default",
) -> Result:
    torch.manual_seed(0)
    model, config = build(system, num_frames, smoke)
    model.to(device).train()
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.05, fused=device.type == "cuda"
    )
    size = config.image_size
    pixel_values = torch.randn(batch_size, num_frames, 3, size, size, device=device)
    # FLOPs grow linearly with the batch: counted (eagerly, before compiling) on one clip, so that eager memory never
    # decides whether a batch fits
    count_one, _ = make_step(model, config, optimizer, device, dtype, 1)
    flops = count_flops(count_one, pixel_values[:1]) * batch_size
    optimizer.zero_grad(set_to_none=True)
    forward_backward, step = make_step(model, config, optimizer, device, dtype, batch_size)
    if compiled:
        model.compile(mode=compile_mode)
    seconds, loss = time_steps(step, warmup, steps, device, pixel_values)
    if show_profile:
        print(f"--- profile: {system}, compiled={compiled}, batch {batch_size}, {num_frames} frames")
        profile(step, pixel_values, device)
    if not torch.isfinite(loss):
        raise RuntimeError(f"{system}: non-finite loss {loss.item()}")
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    tflops = flops / seconds / 1e12
    del model, optimizer, pixel_values, forward_backward, step, count_one
    release_memory(device)
    return Result(
        system=system,
        compiled=compile_mode if compiled else "no",
        batch_size=batch_size,
        num_frames=num_frames,
        ms_per_step=1e3 * seconds,
        clips_per_s=batch_size / seconds,
        peak_gib=peak,
        tflop_per_clip=flops / batch_size / 1e12,
        tflops=tflops,
        mfu=tflops / peak_tflops if peak_tflops else float("nan"),
    )


def release_memory(device) -> None:
    """Free what a measurement left: a compiled module refers to itself (a cycle only the collector breaks), and
    dynamo's caches hold its graphs."""
    gc.collect()
    torch._dynamo.reset()
    if device is not None and torch.device(device).type == "cuda":
        torch.cuda.empty_cache()


def is_out_of_memory(error: BaseException) -> bool:
    """An out-of-memory failure, also when a compiler or library wraps it in another error."""
    return isinstance(error, torch.cuda.OutOfMemoryError) or "out of memory" in str(error).lower()


def measure_largest_batch(
    system, compiled, candidates, num_frames, device, dtype, warmup, steps, smoke, peak_tflops, compile_mode="default"
) -> Result:
    """`measure` at the first of `candidates` (largest first) that fits in the GPU's memory."""
    for batch_size in candidates:
        try:
            return measure(
                system,
                compiled,
                batch_size,
                num_frames,
                device,
                dtype,
                warmup,
                steps,
                smoke,
                peak_tflops,
                compile_mode=compile_mode,
            )
        except RuntimeError as error:
            if not is_out_of_memory(error):
                raise
        # outside the handler, whose traceback kept the failed attempt's model and activations alive
        print(f"{system}: batch {batch_size} does not fit, trying a smaller one", flush=True)
        release_memory(device)
    raise RuntimeError(f"{system}: none of the batch sizes {candidates} fits")


# Row groups of the issue plan, in the order they run: the cheap eager rows first, the largest-batch search (which may
# compile and fail several times) last, so that a run cut short keeps the most.
ISSUE_ROWS = ("eager", "compiled", "32frames", "largest")


def issue_plan(smoke: bool, rows=ISSUE_ROWS, systems=None) -> list[tuple[str, bool, int | tuple[int, ...], int]]:
    """The performance issue's measurements as (system, compiled, batch size or candidates, frames): every system
    eager at batch 16 (with peak memory: the paper's table (a)), AdaMAE adaptive 0.95 and stock VideoMAE compiled at
    batch 16, at 32 frames (3,136 tokens) and at the largest batch that fits (MFU). `rows` picks groups of
    `ISSUE_ROWS`, `systems` (default all) the systems."""
    batch, frames, largest = (2, 8, (4, 2)) if smoke else (16, 16, (256, 128, 64))
    headline = ("adamae-adaptive-0.95", "videomae-tube-0.9")
    groups = {
        "eager": [(system, False, batch, frames) for system in SYSTEMS],
        "compiled": [(system, True, batch, frames) for system in headline],
        "32frames": [(system, True, batch, 2 * frames) for system in headline],
        "largest": [(system, True, largest, frames) for system in headline],
    }
    return [run for group in rows for run in groups[group] if systems is None or run[0] in systems]


def matmul_peak_tflops(device, dtype) -> float:
    """Measured rate of a large matrix product in `dtype` (the MFU denominator)."""
    if device.type != "cuda":
        return float("nan")
    n = 8192
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(20):
        a @ b
    end.record()
    torch.cuda.synchronize(device)
    return 2 * n**3 * 20 / (start.elapsed_time(end) / 1e3) / 1e12


def environment(device) -> str:
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "CPU"
    cuda = torch.version.cuda or "none"
    return (
        f"{gpu}; torch {torch.__version__} (CUDA {cuda}), transformers {transformers.__version__}, "
        f"Python {platform.python_version()}"
    )


def print_table(results: list[Result], peak_tflops: float, env: str):
    print(f"\n{env}; bf16 matmul {peak_tflops:.0f} TFLOP/s measured\n")
    header = "| system | compiled | batch | frames | ms/step | clips/s | peak GiB | TFLOP/clip | TFLOP/s | MFU |"
    print(header)
    print("|---" * (header.count("|") - 1) + "|")
    for r in results:
        print(
            f"| {r.system} | {r.compiled} | {r.batch_size} | {r.num_frames} | {r.ms_per_step:.1f} "
            f"| {r.clips_per_s:.0f} | {r.peak_gib:.2f} | {r.tflop_per_clip:.3f} | {r.tflops:.0f} | {100 * r.mfu:.1f}% |"
        )


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--batch_sizes", nargs="+", type=int, default=[16])
    parser.add_argument("--num_frames", nargs="+", type=int, default=[16])
    parser.add_argument("--compile", choices=["no", "yes", "both"], default="both")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--dtype", choices=["bf16", "fp16", "fp32"], default="bf16")
    parser.add_argument("--smoke", action="store_true", help="tiny config on the CPU, 2 steps: checks the script runs")
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--profile", action="store_true", help="print the top operators of every measured step")
    parser.add_argument(
        "--compile_mode",
        default="default",
        help="torch.compile mode: default, reduce-overhead (CUDA graphs), max-autotune, ...",
    )
    parser.add_argument(
        "--sdpa_backend",
        choices=["auto", "flash", "cudnn", "efficient", "math"],
        default="auto",
        help="restrict scaled_dot_product_attention to one backend",
    )
    parser.add_argument(
        "--plan",
        choices=["flags", "issue"],
        default="flags",
        help="'flags': the systems x batch sizes x frames x compile given; 'issue': the performance "
        "issue's set (every mask type at batch 16, compiled headline rows at 16, at the largest batch "
        "that fits and at 32 frames)",
    )
    parser.add_argument(
        "--rows",
        nargs="+",
        choices=ISSUE_ROWS,
        default=list(ISSUE_ROWS),
        help="with --plan issue: only these groups of rows (--systems also filters them)",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.warmup, args.steps, args.dtype = 1, 2, "fp32"
        args.batch_sizes, args.num_frames = [2], [8]
        args.compile = "no"
    return args


def planned_runs(args) -> list[tuple[str, bool, int | tuple[int, ...], int]]:
    """(system, compiled, batch size or largest-first candidates, frames) of every measurement `args` ask for."""
    if args.plan == "issue":
        return issue_plan(args.smoke, args.rows, args.systems)
    compile_modes = {"no": [False], "yes": [True], "both": [False, True]}[args.compile]
    return [
        (system, compiled, batch_size, num_frames)
        for num_frames in args.num_frames
        for batch_size in args.batch_sizes
        for system in args.systems
        for compiled in compile_modes
    ]


def main(argv=None):
    args = parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    peak = matmul_peak_tflops(device, torch.bfloat16)
    env = environment(device) + force_sdpa_backend(args.sdpa_backend)
    print(json.dumps({"environment": env, "peak_tflops": peak}), flush=True)  # first: a cut-short run still has it
    # The arguments after (system, compiled, batch size, frames) that measure and measure_largest_batch share.
    settings = (device, dtype, args.warmup, args.steps, args.smoke, peak)
    results = []
    for system, compiled, batch_size, num_frames in planned_runs(args):
        if isinstance(batch_size, tuple):
            result = measure_largest_batch(system, compiled, batch_size, num_frames, *settings, args.compile_mode)
        else:
            result = measure(system, compiled, batch_size, num_frames, *settings, args.profile, args.compile_mode)
        print(json.dumps(asdict(result)), flush=True)
        results.append(result)
    print_table(results, peak, env)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"environment": env, "peak_tflops": peak, "results": [asdict(r) for r in results]}, indent=2)
        )
    return results


def force_sdpa_backend(name: str) -> str:
    """Pin scaled-dot-product attention to one backend for the whole run (unless "auto"); returns the note the
    environment line gets."""
    if name == "auto":
        return ""
    from torch.nn.attention import SDPBackend, sdpa_kernel

    backend = {
        "flash": SDPBackend.FLASH_ATTENTION,
        "cudnn": SDPBackend.CUDNN_ATTENTION,
        "efficient": SDPBackend.EFFICIENT_ATTENTION,
        "math": SDPBackend.MATH,
    }[name]
    sdpa_kernel(backend).__enter__()  # for the whole run
    return f"; sdpa backend {name}"


if __name__ == "__main__":
    main()
