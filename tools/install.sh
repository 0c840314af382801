#!/usr/bin/env bash
# One-shot, idempotent set-up of the OpenMMLab stack for fastsnn-mm.
#
# Creates .venv, installs torch/torchvision, builds mmcv 2.1.0 with compiled
# ops (it ships no wheel for our torch) into a wheel cache outside the repo,
# then installs mmdet/mmseg/mmpretrain and this project in editable mode.
# A second run on the same machine only checks a stamp and takes seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${FASTSNN_VENV:-$ROOT/.venv}"
CACHE="${FASTSNN_WHEEL_CACHE:-$HOME/.cache/fastsnn-mm/wheels}"
PYTHON="${PYTHON:-python3}"
TORCH_VERSION=2.14.1
TORCHVISION_VERSION=0.29.1
MMCV_VERSION=2.1.0
JOBS="${MAX_JOBS:-$(nproc)}"

step() { echo "[install] $*"; }
trap 'echo "[install] FAILED at step: ${CURRENT_STEP:-start}" >&2' ERR

CURRENT_STEP="check python"
"$PYTHON" -c 'import sys; assert sys.version_info >= (3, 9), sys.version' \
  || { echo "[install] python >= 3.9 required" >&2; exit 1; }

# The stamp covers every file that decides what gets installed.
stamp_of() {
  cat "$ROOT/requirements.txt" "$ROOT/pyproject.toml" "$ROOT/tools/install.sh" \
    "$ROOT"/fastsnn_mm/spiking/*.c \
    | sha256sum | cut -d' ' -f1
}
STAMP_FILE="$VENV/.fastsnn-install-stamp"
if [[ -f "$STAMP_FILE" && "$(cat "$STAMP_FILE")" == "$(stamp_of)" ]]; then
  step "environment up to date ($VENV); nothing to do"
  exit 0
fi

CURRENT_STEP="create virtual environment"
if [[ ! -x "$VENV/bin/python" ]]; then
  step "creating $VENV"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip install --disable-pip-version-check)

CURRENT_STEP="install build tools"
step "installing build tools (setuptools<82 keeps pkg_resources for mmcv/mmengine)"
"${PIP[@]}" -q "setuptools>=77,<82" wheel ninja

CURRENT_STEP="install torch"
step "installing torch==$TORCH_VERSION torchvision==$TORCHVISION_VERSION"
"${PIP[@]}" -q "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION"

CURRENT_STEP="build mmcv"
if command -v nvcc >/dev/null 2>&1 && "$PY" -c 'import torch,sys; sys.exit(0 if torch.cuda.is_available() else 1)'; then
  export FORCE_CUDA=1
  # CUDA kernels for the visible GPU's architecture only (every
  # architecture would multiply the build time); TORCH_CUDA_ARCH_LIST
  # set by the user wins, e.g. "8.0;9.0" for a wheel shared by machines
  if [[ -z "${TORCH_CUDA_ARCH_LIST:-}" ]]; then
    TORCH_CUDA_ARCH_LIST="$("$PY" -c 'import torch; print("%d.%d" % torch.cuda.get_device_capability())')"
  fi
  export TORCH_CUDA_ARCH_LIST
  FLAVOUR="cuda-arch$(echo "$TORCH_CUDA_ARCH_LIST" | tr -c 'A-Za-z0-9.+\n' '_')"
  step "CUDA toolkit ($(nvcc --version | sed -n 's/.*release \([0-9.]*\).*/\1/p')) and GPU found: mmcv ops will include CUDA kernels for TORCH_CUDA_ARCH_LIST=$TORCH_CUDA_ARCH_LIST"
else
  FLAVOUR=cpu
  step "no CUDA toolkit/GPU: mmcv ops are built CPU-only"
fi
WHEEL_DIR="$CACHE/mmcv-$MMCV_VERSION-torch$TORCH_VERSION-$FLAVOUR"
mkdir -p "$WHEEL_DIR"
if ! ls "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl >/dev/null 2>&1; then
  step "building mmcv $MMCV_VERSION with ops into $WHEEL_DIR (CPU-only ops: ~15 min on 2 cores; CUDA ops take longer)"
  BUILD_START=$SECONDS
  BUILD="$(mktemp -d)"
  "$PY" -m pip download -q --no-deps --no-binary :all: "mmcv==$MMCV_VERSION" -d "$BUILD"
  tar -xzf "$BUILD"/mmcv-"$MMCV_VERSION".tar.gz -C "$BUILD"
  SRC="$BUILD/mmcv-$MMCV_VERSION"
  # torch >= 2.10 headers need C++20; this is the only source change.
  grep -q -- '-std=c++17' "$SRC/setup.py"
  sed -i 's/-std=c++17/-std=c++20/g' "$SRC/setup.py"
  (cd "$SRC" && MMCV_WITH_OPS=1 MAX_JOBS="$JOBS" "$PY" -m pip wheel \
      --no-build-isolation --no-deps -w "$WHEEL_DIR.partial" .)
  mv "$WHEEL_DIR.partial"/mmcv-*.whl "$WHEEL_DIR"/
  rm -rf "$BUILD" "$WHEEL_DIR.partial"
  BUILD_SECONDS=$(( SECONDS - BUILD_START ))
  step "mmcv $MMCV_VERSION ($FLAVOUR) built in $(( BUILD_SECONDS / 60 )) min $(( BUILD_SECONDS % 60 )) s with $JOBS jobs"
else
  step "reusing cached mmcv wheel from $WHEEL_DIR"
fi

CURRENT_STEP="install mmcv"
"${PIP[@]}" -q --no-deps "$WHEEL_DIR"/mmcv-"$MMCV_VERSION"-*.whl

CURRENT_STEP="install requirements"
step "installing requirements.txt"
"${PIP[@]}" -q -r "$ROOT/requirements.txt"

CURRENT_STEP="install fastsnn_mm"
step "installing fastsnn_mm (editable)"
"${PIP[@]}" -q --no-deps --no-build-isolation -e "$ROOT"

CURRENT_STEP="check imports"
"$PY" -c 'from mmcv.ops import nms, batched_nms; import mmdet.models, mmseg.models, mmpretrain.models, fastsnn_mm; from fastsnn_mm.spiking import _if_kernel; print("[install] imports ok: mmcv.ops, mmdet, mmseg, mmpretrain, fastsnn_mm (+ compiled IF kernel)")'

stamp_of > "$STAMP_FILE"
step "done"
