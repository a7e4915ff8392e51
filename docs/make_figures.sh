#!/usr/bin/env bash
# Regenerate the README's figures from the embedded demo (run from the repository root): the demo's model
# (python run_pretrain.py, unless outputs/demo already holds one) draws its first training video.
set -euo pipefail
[ -f outputs/demo/model.safetensors ] || python run_pretrain.py
video=outputs/demo/videos/video_0000.mp4
adamae-visualize --model outputs/demo --video "$video" --out docs/adamae_demo.gif
adamae-visualize --model outputs/demo --video "$video" --out docs/mask_types.gif --compare
# The sampler evaluation of the demo's model on 24 held-out videos generated with another seed (as
# benchmarks/sampler_study.py does).
python -c "from adamae_hf.data import generate_sample_videos as generate
generate('outputs/held_out', num_videos=24, num_frames=16, height=72, width=88, seed=1, index_file='index.csv')"
adamae-evaluate-sampler --model outputs/demo --index outputs/held_out/index.csv \
  --output_dir outputs/demo/sampler_evaluation --num_bootstrap 2000
cp outputs/demo/sampler_evaluation/sampler_evaluation.png docs/sampler_evaluation.png
