#!/usr/bin/env bash
# GPU checks and benchmarks in one go, on a CUDA machine that has torch and
# triton but no OpenMMLab packages and no network.
#
#   make gpu-wheels             # beforehand, on a machine with network:
#                               # pure-Python wheels into benchmarks/wheels/
#   bash benchmarks/run_gpu.sh  # on the GPU machine, from a copy of the repo
#
# 1. installs the carried wheels (mmengine and its pure-Python needs,
#    SpikingJelly for the neuron comparison) into a private folder, not
#    into the machine's Python;
# 2. runs the tests marked `cuda`;
# 3. runs the benchmarks: neuron update, SNN vs QANN at 32 px batch 128 and
#    224 px batch 32 (QResNet-18 width 64, 3-bit, T = 3, 7, 15), QAT step;
# 4. leaves everything in one folder: $OUT if set, else work_dirs/gpu
#    (run_gpu.log, RESULTS.md and results.json with the CPU rows of the repo
#    kept beside the new GPU rows, the plots). Copy RESULTS.md,
#    results.json and the PNGs back into benchmarks/ to keep them.
#
# Options: --quick (tiny sizes: a smoke run), --device cpu (the same steps
# on a CPU machine, to check this script; implies --quick), --steps LIST
# (comma-separated, of: tests,neuron,snn32,snn224,qat32,qat224; default all).
# Each step has its own time limit (580 s together), so the whole run stays
# under 10 minutes; a failed step is reported and the next one still runs,
# and each benchmark writes its rows to RESULTS.md as soon as it ends.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RES="${OUT:-$ROOT/work_dirs/gpu}"
WHEELS="${FASTSNN_GPU_WHEELS:-$ROOT/benchmarks/wheels}"
PY="${PYTHON:-python3}"
DEVICE=cuda
QUICK=0
ALL_STEPS=tests,neuron,snn32,snn224,qat32,qat224
STEPS=$ALL_STEPS
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --device) DEVICE="${2:?--device needs cpu or cuda}"; shift ;;
    --steps) STEPS="${2:?--steps needs a list such as neuron,snn32}"; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "run_gpu.sh: unknown option $1 (--quick, --device cpu|cuda, --steps LIST)" >&2
       exit 2 ;;
  esac
  shift
done
for s in ${STEPS//,/ }; do
  [[ ",$ALL_STEPS," == *",$s,"* ]] || {
    echo "run_gpu.sh: unknown step $s in --steps (steps: $ALL_STEPS)" >&2; exit 2; }
done
want() { [[ ",$STEPS," == *",$1,"* ]]; }
case "$DEVICE" in
  cuda) ;;
  cpu) QUICK=1 ;;
  *) echo "run_gpu.sh: --device must be cpu or cuda, got $DEVICE" >&2; exit 2 ;;
esac

mkdir -p "$RES"
LOG="$RES/run_gpu.log"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
export PYTHONUNBUFFERED=1
START=$SECONDS
declare -a SUMMARY=()
FAILED=0

say() { echo "[run_gpu $(( SECONDS - START ))s] $*"; }

# run LIMIT_SECONDS NAME COMMAND...: one step, its time, its outcome
run() {
  local limit="$1" name="$2"; shift 2
  local t0=$SECONDS
  say "step: $name"
  timeout --kill-after=10 "$limit" "$@"
  local rc=$?
  local took=$(( SECONDS - t0 ))
  if [[ $rc -eq 0 ]]; then
    SUMMARY+=("ok      ${took}s  $name")
  else
    [[ $rc -eq 124 || $rc -eq 137 ]] && name="$name (stopped at its ${limit}s limit)"
    SUMMARY+=("FAILED  ${took}s  $name (exit $rc)")
    FAILED=1
  fi
  return 0
}

say "results folder: $RES"
if ! "$PY" -c 'import torch' 2>/dev/null; then
  say "error: $PY cannot import torch; set PYTHON to the Python that has torch"
  exit 1
fi
if [[ "$DEVICE" == cuda ]]; then
  if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
    say "error: torch sees no CUDA GPU here; for a check of this script on a CPU machine use --device cpu"
    exit 1
  fi
fi
"$PY" - <<'EOF'
import torch
print('torch', torch.__version__, 'CUDA', torch.version.cuda,
      'GPU:', torch.cuda.get_device_name() if torch.cuda.is_available() else 'none')
try:
    import triton
    print('triton', triton.__version__)
except ImportError:
    print('triton: not installed (QuantReLU and the neurons use their torch paths)')
EOF

# 1. the carried pure-Python wheels, into a private site folder
SITE="$(mktemp -d)/site"
if "$PY" -c 'import mmengine' 2>/dev/null; then
  say "mmengine already importable: no wheels installed"
elif compgen -G "$WHEELS/*.whl" >/dev/null; then
  say "installing $(ls "$WHEELS"/*.whl | wc -l) wheels from $WHEELS into $SITE"
  rm -rf "$SITE"
  if ! "$PY" -m pip install -q --no-index --no-deps --no-compile \
      --disable-pip-version-check --target "$SITE" "$WHEELS"/*.whl; then
    say "error: installing the wheels in $WHEELS failed (see above)"
    exit 1
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
else
  say "error: mmengine is not importable and $WHEELS holds no wheels; run 'make gpu-wheels' on a machine with network first and copy benchmarks/wheels/ along"
  exit 1
fi
# the repo (fastsnn_mm) and benchmarks/ (core_import, results) on the path
export PYTHONPATH="$ROOT:$ROOT/benchmarks${PYTHONPATH:+:$PYTHONPATH}"

# 2. the record: start from the repo's, so its CPU rows stay in it
for f in "$ROOT"/benchmarks/RESULTS.md "$ROOT"/benchmarks/results.json \
         "$ROOT"/benchmarks/*.png; do
  [[ -f "$f" ]] && cp "$f" "$RES/"
done
MD="$RES/RESULTS.md"

# 3. the tests marked cuda (only the files that have such tests; core_import
#    lets them import fastsnn_mm without the mm task packages)
mapfile -t CUDA_TESTS < <(cd "$ROOT" && grep -l 'mark\.cuda' tests/*.py 2>/dev/null)
if ! want tests; then
  :
elif [[ ${#CUDA_TESTS[@]} -gt 0 ]]; then
  run 120 "pytest -m cuda (${#CUDA_TESTS[@]} files)" \
    bash -c 'cd "$0" && "$1" -m pytest -p core_import -m cuda -q -rs \
      --continue-on-collection-errors "${@:2}"' "$ROOT" "$PY" "${CUDA_TESTS[@]}"
else
  SUMMARY+=("skipped     no test file has a cuda mark")
fi

# 4. the benchmarks
B="$ROOT/benchmarks"
if [[ $QUICK -eq 1 ]]; then
  NEURON=(--timesteps 3 --shape 2 4 8 8 --repeats 2 --warmup 1 --no-compile)
  SNN32=(--width 8 --size 16 --batch 4 --timesteps 3 --mem-timesteps 3 --repeats 2)
  SNN224=(--width 8 --size 32 --batch 2 --timesteps 3 --mem-timesteps 3 --repeats 2)
  QAT32=(--width 8 --size 16 --batch 4 --repeats 2 --warmup 1)
  QAT224=(--width 8 --size 32 --batch 2 --repeats 2 --warmup 1)
else
  NEURON=(--repeats 20 --warmup 3)
  SNN32=(--width 64 --size 32 --batch 128 --repeats 11)
  SNN224=(--width 64 --size 224 --batch 32 --repeats 11)
  QAT32=(--width 64 --size 32 --batch 128 --repeats 20 --warmup 5)
  QAT224=(--width 64 --size 224 --batch 32 --repeats 20 --warmup 5)
fi
# --plans: the plan comparison bench_snn runs on a GPU, here on any device
want neuron && run 220 "bench_neuron" "$PY" "$B/bench_neuron.py" \
  --device "$DEVICE" "${NEURON[@]}" --results "$MD" \
  --plot "$RES/neuron_$DEVICE.png"
want snn32 && run 100 "bench_snn 32 px" "$PY" "$B/bench_snn.py" \
  --device "$DEVICE" --plans "${SNN32[@]}" --results "$MD" \
  --plot "$RES/snn_time_32px_$DEVICE.png"
want snn224 && run 100 "bench_snn 224 px" "$PY" "$B/bench_snn.py" \
  --device "$DEVICE" --plans "${SNN224[@]}" --results "$MD" \
  --plot "$RES/snn_time_224px_$DEVICE.png"
want qat32 && run 40 "bench_qat_step 32 px" "$PY" "$B/bench_qat_step.py" \
  --device "$DEVICE" --amp "${QAT32[@]}" --results "$MD"
want qat224 && run 40 "bench_qat_step 224 px" "$PY" "$B/bench_qat_step.py" \
  --device "$DEVICE" --amp "${QAT224[@]}" --results "$MD"

say "summary ($(( SECONDS - START ))s in all):"
printf '  %s\n' "${SUMMARY[@]}"
say "results in $RES: $(cd "$RES" && ls -1 | tr '\n' ' ')"
rm -rf "$(dirname "$SITE")"
exit $FAILED
