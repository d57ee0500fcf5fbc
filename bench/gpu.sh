#!/usr/bin/env bash
# The GPU check: CUDA against CPU, the paper's U-Net's steps/s and MFU in bf16 for K = 1, 2, 4, 8 stacked members,
# f_mem's search on the GPU against faiss on the CPU, one checkpoint's full evaluation; one table, at most 8 minutes
# on one H100. The work is in bench/gpu_check.py (its docstring has the sections and the output format).
#   bash bench/gpu.sh            # on a GPU machine
#   bash bench/gpu.sh --cpu      # the dry run: every section on the CPU with tiny sizes (the test suite runs it)
# PYTHON picks the interpreter (default: python3, else python).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PYTHON="${PYTHON:-$(command -v python3 || command -v python)}"
export PYTHONUNBUFFERED=1
exec "$PYTHON" bench/gpu_check.py "$@"
