# Fast-SNN step 3 on the 2-bit demo detector: convert to a signed-IF SNN at
# T = 3 and tune it layer by layer against its QANN; each group is kept
# only if its held-out count mismatch fell and the SNN's VOC mAP (stock
# evaluator) did not, both measured on the judging slice: 20 % of the
# training images, held out of tuning and run through the val pipeline.
# Then the joint stage (kept if the metric there did not fall) and the
# task-loss stage (kept only if it rose, or held while the held-out task
# loss fell). The test split judges nothing: it is reported before, after
# each stage and after (_base_/schedules/layerwise_finetune_demo.py).
#   python tools/train.py configs/yolo_fastsnn_synthetic_2bit_layerwise.py \
#       --cfg-options \
#       load_from=work_dirs/yolo_fastsnn_synthetic_2bit/epoch_8.pth
# 3-bit (T = 7): add model.quant.bits=3 and load_from a 3-bit checkpoint.
_base_ = [
    './yolo_fastsnn_synthetic_2bit.py',
    './_base_/schedules/layerwise_finetune_demo.py',
]

load_from = 'work_dirs/yolo_fastsnn_synthetic_2bit/epoch_8.pth'
train_cfg = dict(_delete_=True, **_base_.layerwise_train_cfg)
optim_wrapper = dict(_delete_=True, **_base_.layerwise_optim_wrapper)
param_scheduler = []
