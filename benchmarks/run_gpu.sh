#!/usr/bin/env bash
# GPU checks and benchmarks in one call, on a CUDA machine whose Python has
# torch (with triton), numpy, opencv, matplotlib, rich, pyyaml and pytest but
# no OpenMMLab package and no network.
#
#   make gpu-wheels              # first, on a machine with the package index:
#                                # pure-Python wheels into benchmarks/wheels/
#   # copy the checkout (or a fresh clone) and benchmarks/wheels/ to the GPU
#   # machine, then there, from the checkout:
#   bash benchmarks/run_gpu.sh
#
# Before any step it checks that every package the run needs is importable
# or has its wheel in benchmarks/wheels/, and says what to run if not. Then,
# each step under its own time limit, 540 s in all with the install:
#   install  30 s  the carried wheels (mmengine and its pure-Python needs,
#                  SpikingJelly) into a private folder, not the machine's Python
#   compile  90 s  the Triton kernels and torch.compile graphs the later
#                  steps launch, in parallel processes (warm_kernels.py)
#   tests   100 s  the tests marked cuda, split over up to 8 pytest processes
#   neuron   60 s  neuron update alone, ours against SpikingJelly
#   snn32    50 s  SNN against T QANN passes, QResNet-18 width 64, 3-bit,
#   snn224   80 s    32 px batch 128 and 224 px batch 32, T = 3, 7, 15
#   peer     50 s  the same converted network run by SpikingJelly, 32 px
#   qat32    30 s  QAT train step against the ReLU step, 32 px batch 128
#   qat224   40 s    and 224 px batch 32
# and ends with the step summary and a table of which targets were met
# (targets.py). A failed step is reported and the next one still runs; each
# benchmark writes its rows to RESULTS.md as soon as it ends. Everything
# lands in one folder: $OUT if set, else work_dirs/gpu (run_gpu.log,
# RESULTS.md and results.json with the repo's CPU rows kept beside the new
# rows, the plots). Copy RESULTS.md, results.json and the PNGs back into
# benchmarks/ to keep them.
#
# Options: --quick (tiny sizes: a smoke run), --device cpu (the same steps
# on a CPU machine, to check this script; implies --quick, and doubles every
# limit: a shared development CPU imports and compiles slower than the GPU
# machine's 16 cores), --steps LIST
# (comma-separated, of: compile,tests,neuron,snn32,snn224,peer,qat32,qat224;
# default all). PYTHON picks the interpreter (default python3),
# FASTSNN_GPU_WHEELS the wheel folder.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RES="${OUT:-$ROOT/work_dirs/gpu}"
WHEELS="${FASTSNN_GPU_WHEELS:-$ROOT/benchmarks/wheels}"
PY="${PYTHON:-python3}"
BUDGET=540
DEVICE=cuda
QUICK=0
ALL_STEPS=compile,tests,neuron,snn32,snn224,peer,qat32,qat224
STEPS=$ALL_STEPS
while [[ $# -gt 0 ]]; do
  case "$1" in
    --quick) QUICK=1 ;;
    --device) DEVICE="${2:?--device needs cpu or cuda}"; shift ;;
    --steps) STEPS="${2:?--steps needs a list such as neuron,snn32}"; shift ;;
    -h|--help) awk 'NR > 1 && !/^#/ {exit} NR > 1' "$0"; exit 0 ;;
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
SCALE=1
case "$DEVICE" in
  cuda) ;;
  cpu) QUICK=1; SCALE=2 ;;
  *) echo "run_gpu.sh: --device must be cpu or cuda, got $DEVICE" >&2; exit 2 ;;
esac

mkdir -p "$RES"
LOG="$RES/run_gpu.log"
: > "$LOG"
exec > >(tee -a "$LOG") 2>&1
TEE=$!
TMP=""
# on exit: the temporary folder goes; the log's last lines reach the
# terminal before the shell prompt does
finish() {
  [[ -n "$TMP" ]] && rm -rf "$TMP"
  exec >&- 2>&-
  wait "$TEE" 2>/dev/null
}
trap finish EXIT
export PYTHONUNBUFFERED=1
START=$SECONDS
SINCE="$(date -u '+%Y-%m-%d %H:%M UTC')"
declare -a SUMMARY=()
FAILED=0

say() { echo "[run_gpu $(( SECONDS - START ))s] $*"; }

# run LIMIT_SECONDS NAME COMMAND...: one step, its time, its outcome; the
# limit shrinks to what is left of the run's BUDGET
run() {
  local limit=$(( $1 * SCALE )) name="$2"; shift 2
  local left=$(( BUDGET * SCALE - (SECONDS - START) ))
  if (( left < 5 )); then
    SUMMARY+=("FAILED  0s  $name (not run: the $(( BUDGET * SCALE ))s budget is spent)")
    FAILED=1
    return 0
  fi
  (( limit > left )) && limit=$left
  local t0=$SECONDS
  say "step: $name (limit ${limit}s)"
  timeout --kill-after=5 "$limit" "$@"
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

# 0. what the run needs, checked before anything runs: each package
#    importable here or its wheel carried along (mmengine and what it
#    imports that a bare machine lacks; SpikingJelly and loguru for the
#    comparisons, needed on a GPU run or by the peer step)
say "results folder: $RES"
if ! command -v "$PY" >/dev/null 2>&1; then
  say "error: no Python '$PY'; set PYTHON to the Python that has torch"
  exit 1
fi
NEEDS=(mmengine addict yapf termcolor platformdirs)
if [[ "$DEVICE" == cuda ]] || want peer; then
  NEEDS+=(spikingjelly loguru)
fi
mapfile -t MISSING < <("$PY" - "${NEEDS[@]}" <<'EOF'
import importlib.util, sys
for name in sys.argv[1:]:
    if importlib.util.find_spec(name) is None:
        print(name)
EOF
)
declare -a TO_INSTALL=() ABSENT=()
for name in "${MISSING[@]}"; do
  wheel=$(compgen -G "$WHEELS/$name-*.whl" | head -1)
  if [[ -n "$wheel" ]]; then TO_INSTALL+=("$wheel"); else ABSENT+=("$name"); fi
done
if [[ ${#ABSENT[@]} -gt 0 ]]; then
  say "error: ${ABSENT[*]}: neither importable by $PY nor a wheel in $WHEELS."
  say "  On a machine with the package index, in this repository: make gpu-wheels"
  say "  then copy benchmarks/wheels/ into this checkout's benchmarks/ and run again."
  exit 1
fi
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

# 1. the carried wheels, into a private site folder: they are pure-Python
#    (py3-none-any), so unpacking each is its install (no pip needed)
TMP="$(mktemp -d)"
SITE="$TMP/site"
if [[ ${#TO_INSTALL[@]} -eq 0 ]]; then
  say "every needed package is importable: no wheels installed"
else
  run 30 "install ${#TO_INSTALL[@]} wheels" "$PY" -c '
import sys, zipfile
for wheel in sys.argv[2:]:
    zipfile.ZipFile(wheel).extractall(sys.argv[1])
' "$SITE" "${TO_INSTALL[@]}"
  if [[ $FAILED -ne 0 ]]; then
    say "error: installing the wheels from $WHEELS failed (see above); nothing else can run"
    printf '  %s\n' "${SUMMARY[@]}"
    exit 1
  fi
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
# the repo (fastsnn_mm) and benchmarks/ (core_import, results) on the path
export PYTHONPATH="$ROOT:$ROOT/benchmarks${PYTHONPATH:+:$PYTHONPATH}"

# 2. the record: start from the repo's, so its CPU rows stay in it
for f in "$ROOT"/benchmarks/RESULTS.md "$ROOT"/benchmarks/results.json \
         "$ROOT"/benchmarks/*.png; do
  [[ -f "$f" ]] && cp "$f" "$RES/"
done
MD="$RES/RESULTS.md"
B="$ROOT/benchmarks"

if [[ $QUICK -eq 1 ]]; then
  WARM=(--timesteps 3 --no-compile)
  NEURON=(--timesteps 3 --shape 2 4 8 8 --repeats 2 --warmup 1 --no-compile)
  SNN32=(--width 8 --size 16 --batch 4 --timesteps 3 --mem-timesteps 3 --repeats 2)
  SNN224=(--width 8 --size 32 --batch 2 --timesteps 3 --mem-timesteps 3 --repeats 2)
  PEER=(--width 8 --size 16 --batch 4 --timesteps 3 --repeats 2)
  QAT32=(--width 8 --size 16 --batch 4 --repeats 2 --warmup 1)
  QAT224=(--width 8 --size 32 --batch 2 --repeats 2 --warmup 1)
else
  WARM=(--timesteps 3 7 15)
  NEURON=(--repeats 10 --warmup 2)
  SNN32=(--width 64 --size 32 --batch 128 --repeats 7)
  SNN224=(--width 64 --size 224 --batch 32 --repeats 7)
  PEER=(--width 64 --size 32 --batch 128 --timesteps 3 7 15 --repeats 5)
  QAT32=(--width 64 --size 32 --batch 128 --repeats 15 --warmup 3)
  QAT224=(--width 64 --size 224 --batch 32 --repeats 15 --warmup 3)
fi

# 3. first, the kernels every later step launches, compiled in parallel
want compile && run 90 "compile kernels" "$PY" "$B/warm_kernels.py" \
  --device "$DEVICE" "${WARM[@]}"

# 4. the tests marked cuda (only the files that have such tests; core_import
#    lets them import fastsnn_mm without the mm task packages)
mapfile -t CUDA_TESTS < <(cd "$ROOT" && grep -l 'mark\.cuda' tests/*.py 2>/dev/null)
if ! want tests; then
  :
elif [[ ${#CUDA_TESTS[@]} -gt 0 ]]; then
  run 100 "pytest -m cuda (${#CUDA_TESTS[@]} files, parallel processes)" \
    bash -c 'cd "$0" && "$1" "$0/benchmarks/parallel_pytest.py" \
      -p core_import -m cuda -q -rs -- "${@:2}"' "$ROOT" "$PY" "${CUDA_TESTS[@]}"
else
  SUMMARY+=("skipped     no test file has a cuda mark")
fi

# 5. the benchmarks (--plans: the plan table bench_snn runs on a GPU, here
#    on any device)
want neuron && run 60 "bench_neuron" "$PY" "$B/bench_neuron.py" \
  --device "$DEVICE" "${NEURON[@]}" --results "$MD" \
  --plot "$RES/neuron_$DEVICE.png"
want snn32 && run 50 "bench_snn 32 px" "$PY" "$B/bench_snn.py" \
  --device "$DEVICE" --plans "${SNN32[@]}" --results "$MD" \
  --plot "$RES/snn_time_32px_$DEVICE.png"
want snn224 && run 80 "bench_snn 224 px" "$PY" "$B/bench_snn.py" \
  --device "$DEVICE" --plans "${SNN224[@]}" --results "$MD" \
  --plot "$RES/snn_time_224px_$DEVICE.png"
want peer && run 50 "bench_snn --peer spikingjelly" "$PY" "$B/bench_snn.py" \
  --device "$DEVICE" --peer spikingjelly "${PEER[@]}" --results "$MD"
want qat32 && run 30 "bench_qat_step 32 px" "$PY" "$B/bench_qat_step.py" \
  --device "$DEVICE" --amp "${QAT32[@]}" --results "$MD"
want qat224 && run 40 "bench_qat_step 224 px" "$PY" "$B/bench_qat_step.py" \
  --device "$DEVICE" --amp "${QAT224[@]}" --results "$MD"

say "summary ($(( SECONDS - START ))s in all, budget $(( BUDGET * SCALE ))s):"
printf '  %s\n' "${SUMMARY[@]}"
say "targets, from the rows this call recorded:"
"$PY" "$B/targets.py" --results "$MD" --since "$SINCE" --device "$DEVICE" \
  || say "(targets.py failed: see above)"
say "results in $RES: $(cd "$RES" && ls -1 | tr '\n' ' ')"
exit $FAILED
