#!/usr/bin/env bash
# Start SCRIPT with N processes (PyTorch DDP via mmengine); shared by
# dist_train.sh and dist_test.sh.
#
#   tools/torchrun.sh N SCRIPT [args]
#
# One machine: tools/launch_ranks.py starts the ranks and watches them: when
# one dies (e.g. SIGKILL from the out-of-memory killer) it prints one line
# naming it and stops the others at once. It serves the ranks' store on a
# port it keeps for the whole run (PORT, or one the system picks if unset).
#
# Several machines: torchrun, the same command on each, with NNODES
# (machines), NODE_RANK (0, 1, ...), MASTER_ADDR and PORT set alike on all
# of them. PYTHON picks the interpreter (default: python).
set -euo pipefail
NPROC=$1
shift
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
if [ "${NNODES:-1}" = 1 ]; then
    exec "${PYTHON:-python}" "$ROOT/tools/launch_ranks.py" "$NPROC" "$@"
fi
exec "${PYTHON:-python}" -m torch.distributed.run \
    --nnodes="${NNODES:-1}" \
    --node_rank="${NODE_RANK:-0}" \
    --master_addr="${MASTER_ADDR:-127.0.0.1}" \
    --master_port="${PORT:-29500}" \
    --nproc_per_node="$NPROC" \
    "$@"
