#!/usr/bin/env bash
# Start SCRIPT with N processes through torchrun (PyTorch DDP via mmengine);
# shared by dist_train.sh and dist_test.sh.
#
#   tools/torchrun.sh N SCRIPT [args]
#
# Several machines: the same command on each, with NNODES (machines),
# NODE_RANK (0, 1, ...), MASTER_ADDR and PORT set alike on all of them.
# PYTHON picks the interpreter (default: python).
set -euo pipefail
NPROC=$1
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}" exec "${PYTHON:-python}" \
    -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$@"
