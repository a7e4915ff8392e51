#!/usr/bin/env bash
# Regenerate the README's figures from the embedded demo (run from the repository root): the demo's model
# (python run_pretrain.py, unless outputs/demo already holds one) draws its first training video.
set -euo pipefail
[ -f outputs/demo/model.safetensors ] || python run_pretrain.py
video=outputs/demo/videos/video_0000.mp4
adamae-visualize --model outputs/demo --video "$video" --out docs/adamae_demo.gif
adamae-visualize --model outputs/demo --video "$video" --out docs/mask_types.gif --compare
