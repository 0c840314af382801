#!/usr/bin/env bash
# Evaluate CHECKPOINT of CONFIG with N processes on this machine (as QANN,
# SNN or both: any tools/test.py option, e.g. --compare); the metric is
# computed over the whole test set, each process scoring its share.
#
#   tools/dist_test.sh CONFIG CHECKPOINT N [tools/test.py options]
#
# Several machines: as in tools/dist_train.sh (NNODES, NODE_RANK,
# MASTER_ADDR, PORT). PYTHON picks the interpreter (default: python).
set -euo pipefail
if [ $# -lt 3 ]; then
    echo "usage: $0 CONFIG CHECKPOINT N [tools/test.py options]" >&2
    exit 2
fi
CONFIG=$1
CHECKPOINT=$2
NPROC=$3
shift 3
ROOT=$(cd "$(dirname "$0")/.." && pwd)
exec "$ROOT/tools/torchrun.sh" "$NPROC" "$ROOT/tools/test.py" "$CONFIG" \
    "$CHECKPOINT" --launcher pytorch "$@"
