#!/usr/bin/env bash
# Train CONFIG with N processes on this machine (PyTorch DDP via mmengine,
# started by tools/torchrun.sh): NCCL with one GPU per process, gloo on CPU.
#
#   tools/dist_train.sh CONFIG N [tools/train.py options]
#
# Several machines: run it on each with the same MASTER_ADDR and PORT,
# NNODES set to the number of machines and NODE_RANK to 0, 1, ...
# PYTHON picks the interpreter (default: python).
set -euo pipefail
if [ $# -lt 2 ]; then
    echo "usage: $0 CONFIG N [tools/train.py options]" >&2
    exit 2
fi
CONFIG=$1
NPROC=$2
shift 2
ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec "$ROOT/tools/torchrun.sh" "$NPROC" "$ROOT/tools/train.py" "$CONFIG" \
    --launcher pytorch "$@"
