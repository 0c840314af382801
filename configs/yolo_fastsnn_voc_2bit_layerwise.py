# Fast-SNN step 3 for the Tiny-YOLO detector: convert the 2-bit QANN of
# yolo_fastsnn_voc_2bit.py to a signed-IF SNN at T = 3 and tune it layer
# by layer against the QANN (_base_/schedules/layerwise_finetune.py); the
# tuned SNN is saved as <work_dir>/snn_finetuned_signed_T3.pth.
#   python tools/train.py configs/yolo_fastsnn_voc_2bit_layerwise.py
_base_ = [
    './yolo_fastsnn_voc_2bit.py',
    './_base_/schedules/layerwise_finetune.py',
]

load_from = 'work_dirs/yolo_fastsnn_voc_2bit/epoch_12.pth'
train_cfg = dict(_delete_=True, **_base_.layerwise_train_cfg)
optim_wrapper = dict(_delete_=True, **_base_.layerwise_optim_wrapper)
param_scheduler = []
