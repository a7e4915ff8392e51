"""Classification inference throughput: AdaMaeForVideoClassification against transformers' VideoMAEForVideoClassification.

Both models have the same ViT-B/16 architecture and weights layout; the table gives clips/s and peak memory for a
forward pass under `torch.inference_mode`, in bf16 (weights cast with `.to(bfloat16)`), on synthetic inputs.

    python benchmarks/inference.py                  # GPU: 16 x 224 x 224, batch 32, eager and compiled
    python benchmarks/inference.py --smoke          # CPU: a tiny config, a few steps (CI runs this)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch


sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's top-level modeling files

from transformers import VideoMAEConfig, VideoMAEForVideoClassification  # noqa: E402

from benchmarks.pretrain_step import TINY, environment, time_steps  # noqa: E402
from configuration_adamae import AdaMaeConfig  # noqa: E402
from modeling_adamae import AdaMaeForVideoClassification  # noqa: E402


def build(system: str, num_frames: int, num_labels: int, smoke: bool):
    sizes = {k: v for k, v in TINY.items() if not k.startswith(("sampler", "decoder"))} if smoke else {}
    if system == "adamae":
        return AdaMaeForVideoClassification(AdaMaeConfig(num_frames=num_frames, num_labels=num_labels, **sizes))
    config = VideoMAEConfig(num_frames=num_frames, num_labels=num_labels, layer_norm_eps=1e-6, **sizes)
    return VideoMAEForVideoClassification(config)


def measure(system, compiled, batch_size, num_frames, device, dtype, warmup, steps, smoke) -> dict:
    torch.manual_seed(0)
    model = build(system, num_frames, 400, smoke).to(device=device, dtype=dtype).eval()
    size = model.config.image_size
    pixel_values = torch.randn(batch_size, num_frames, 3, size, size, device=device, dtype=dtype)
    if compiled:
        model.compile()
    with torch.inference_mode():
        seconds, logits = time_steps(lambda frames: model(frames).logits, warmup, steps, device, pixel_values)
    assert torch.isfinite(logits.float()).all()
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else float("nan")
    return dict(
        system=system,
        compiled=compiled,
        batch_size=batch_size,
        num_frames=num_frames,
        ms_per_batch=1e3 * seconds,
        clips_per_s=batch_size / seconds,
        peak_gib=peak,
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--num_frames", type=int, default=16)
    parser.add_argument("--compile", choices=["no", "yes", "both"], default="both")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--smoke", action="store_true", help="tiny config on the CPU: checks the script runs")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)

    device = torch.device("cuda" if torch.cuda.is_available() and not args.smoke else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if args.smoke:
        args.batch_size, args.num_frames, args.warmup, args.steps, args.compile = 2, 8, 1, 2, "no"
    results = []
    for compiled in {"no": [False], "yes": [True], "both": [False, True]}[args.compile]:
        for system in ("adamae", "videomae"):
            result = measure(
                system, compiled, args.batch_size, args.num_frames, device, dtype, args.warmup, args.steps, args.smoke
            )
            print(json.dumps(result), flush=True)
            results.append(result)
    print(f"\n{environment(device)}; {str(dtype).removeprefix('torch.')}\n")
    print("| model | compiled | batch | frames | ms/batch | clips/s | vs VideoMAE | peak GiB |")
    print("|---|---|---|---|---|---|---|---|")
    for result in results:
        reference = next(r for r in results if r["system"] == "videomae" and r["compiled"] == result["compiled"])
        print(
            f"| {result['system']} | {'yes' if result['compiled'] else 'no'} | {result['batch_size']} "
            f"| {result['num_frames']} | {result['ms_per_batch']:.1f} | {result['clips_per_s']:.0f} "
            f"| {result['clips_per_s'] / reference['clips_per_s']:.2f}x | {result['peak_gib']:.2f} |"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
