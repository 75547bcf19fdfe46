#!/usr/bin/env bash
# The GPU check, one command (at most about 8 minutes on one GPU): prints a Markdown block for
# benchmarks/RESULTS.md. With the full data in HPSEARCH_DATA_DIR:
#   bash benchmarks/gpu_check.sh          # on a machine with a GPU
#   bash benchmarks/gpu_check.sh --cpu    # tiny smoke run on the CPU (what CI runs)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"   # the interpreter with hpsearch installed
if [ "${1:-}" != "--cpu" ] && ! "$PYTHON" -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "gpu_check: no GPU visible to torch; run it with --cpu for the smoke run" >&2
  exit 1
fi
export HPSEARCH_OFFLINE=1
exec "$PYTHON" benchmarks/gpu_check.py "$@"
