#!/usr/bin/env bash
# End-to-end Fast-SNN demo on the bundled synthetic VOC data (CPU).
#   bash tools/demo.sh [cls] [det] [seg] [finetune] [finetune-det] [finetune-seg]
#   (default: cls det)
# Each stage trains a 3-bit QANN with tools/train.py, converts it and
# evaluates QANN / signed SNN / unsigned SNN with tools/test.py, then one
# summary table (markdown + PNG) is written to work_dirs/demo/summary.*.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=work_dirs/demo
STAGES=${*:-cls det}
mkdir -p "$OUT"

stage() { echo; echo "=== [demo] $* ==="; }
last_ckpt() { cat "$1/last_checkpoint"; }

train_and_compare() {  # name config [extra test args...]; TRAIN_ARGS for train
  local name=$1 config=$2; shift 2
  stage "$name: training the 3-bit QANN ($config)"
  local t0=$SECONDS
  "$PY" tools/train.py "$config" --work-dir "$OUT/$name" ${TRAIN_ARGS:-}
  echo "[demo] $name: training took $((SECONDS - t0)) s"
  stage "$name: QANN vs SNN (signed, unsigned) at T = 2^b - 1"
  "$PY" tools/test.py "$config" "$(last_ckpt "$OUT/$name")" \
    --work-dir "$OUT/$name" --compare --neuron signed unsigned \
    --out-json "$OUT/$name/results.json" "$@"
}

draw() {  # name config: one val image, QANN and SNN side by side
  local img
  img="data/synthetic_voc/VOC2007/JPEGImages/$(head -n 1 data/synthetic_voc/VOC2007/ImageSets/Main/val.txt).jpg"
  "$PY" tools/image_demo.py "$img" "$2" "$(last_ckpt "$OUT/$1")" \
    --out "$OUT/$1/qann_vs_snn.png"
}

for s in $STAGES; do
  case $s in
    cls) train_and_compare cls configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py ;;
    det) train_and_compare det configs/yolo_fastsnn_synthetic.py \
           --show-dir vis
         draw det configs/yolo_fastsnn_synthetic.py ;;
    seg)
      # the segmentor's backbone starts from the demo classifier's weights
      [ -f "$OUT/cls/last_checkpoint" ] || \
        train_and_compare cls configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py
      TRAIN_ARGS="--cfg-options load_from=$(last_ckpt "$OUT/cls")" \
        train_and_compare seg configs/deeplab_fastsnn_synthetic.py \
          --show-dir vis
      draw seg configs/deeplab_fastsnn_synthetic.py ;;
    finetune)
      stage "finetune: 2-bit QANN from the 3-bit one, then layer-wise SNN tuning at T=3"
      [ -f "$OUT/cls/last_checkpoint" ] || \
        train_and_compare cls configs/fastsnn_cls/qresnet_synthetic_cls_3bit.py
      "$PY" tools/train.py configs/fastsnn_cls/qresnet_synthetic_cls_2bit.py \
        --work-dir "$OUT/cls_2bit" \
        --cfg-options load_from="$(last_ckpt "$OUT/cls")"
      "$PY" tools/train.py configs/fastsnn_cls/qresnet_synthetic_cls_2bit_layerwise.py \
        --work-dir "$OUT/cls_2bit_layerwise" \
        --cfg-options load_from="$(last_ckpt "$OUT/cls_2bit")" ;;
    finetune-det)
      stage "finetune-det: 2-bit QANN detector from the 3-bit one, then layer-wise SNN tuning at T=3"
      [ -f "$OUT/det/last_checkpoint" ] || \
        train_and_compare det configs/yolo_fastsnn_synthetic.py --show-dir vis
      "$PY" tools/train.py configs/yolo_fastsnn_synthetic_2bit.py \
        --work-dir "$OUT/det_2bit" \
        --cfg-options load_from="$(last_ckpt "$OUT/det")"
      "$PY" tools/train.py configs/yolo_fastsnn_synthetic_2bit_layerwise.py \
        --work-dir "$OUT/det_2bit_layerwise" \
        --cfg-options load_from="$(last_ckpt "$OUT/det_2bit")" ;;
    finetune-seg)
      stage "finetune-seg: 2-bit QANN segmentor from the 3-bit one, then layer-wise SNN tuning at T=3"
      [ -f "$OUT/seg/last_checkpoint" ] || { echo "[demo] run the seg stage first" >&2; exit 2; }
      "$PY" tools/train.py configs/deeplab_fastsnn_synthetic_2bit.py \
        --work-dir "$OUT/seg_2bit" \
        --cfg-options load_from="$(last_ckpt "$OUT/seg")"
      "$PY" tools/train.py configs/deeplab_fastsnn_synthetic_2bit_layerwise.py \
        --work-dir "$OUT/seg_2bit_layerwise" \
        --cfg-options load_from="$(last_ckpt "$OUT/seg_2bit")" ;;
    *) echo "[demo] unknown stage '$s' (use cls, det, seg, finetune, finetune-det, finetune-seg)" >&2; exit 2 ;;
  esac
done

stage "summary"
"$PY" tools/analysis_tools/summarize_results.py "$OUT" --out "$OUT/summary"
