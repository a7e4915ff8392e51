#!/usr/bin/env bash
# Every GPU number of the performance issue in one call: the step, inference and end-to-end benchmarks, the CUDA-only
# tests, and a short pretraining at 16 x 224^2 followed by the sampler evaluation (about 8 minutes on one H100).
#
#   bash benchmarks/gpu_suite.sh OUT_DIR            # GPU machine: OUT_DIR/results.md, results.json, one log per part
#   bash benchmarks/gpu_suite.sh --smoke OUT_DIR    # CPU: every part tiny, GPU-only parts skipped (CI runs this)
#
# Missing av/datasets/evaluate are installed from wheels in .whl/ beside the repository (or --wheels DIR, or
# $ADAMAE_WHEELS); $PYTHON picks the interpreter (default python3), $ADAMAE_COMMIT names the code when the copy has
# no .git. The parts, their time budgets and the results' layout: benchmarks/gpu_suite.py.
set -euo pipefail
exec "${PYTHON:-python3}" "$(dirname "${BASH_SOURCE[0]}")/gpu_suite.py" "$@"
