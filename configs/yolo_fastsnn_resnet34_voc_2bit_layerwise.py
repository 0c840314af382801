# Fast-SNN step 3 for the ResNet-34 detector: convert the 2-bit QANN to a
# signed-IF SNN at T = 3 and tune it layer by layer against the QANN,
# shallow to deep (_base_/schedules/layerwise_finetune.py); the log shows
# the SNN's mAP before and after and per layer the held-out MSE and
# spike-count mismatch. The tuned SNN is saved as
# <work_dir>/snn_finetuned_signed_T3.pth.
#   python tools/train.py configs/yolo_fastsnn_resnet34_voc_2bit_layerwise.py
_base_ = [
    './yolo_fastsnn_resnet34_voc_2bit.py',
    './_base_/schedules/layerwise_finetune.py',
]

load_from = 'work_dirs/yolo_fastsnn_resnet34_voc_2bit/epoch_12.pth'
train_cfg = dict(_delete_=True, **_base_.layerwise_train_cfg)
optim_wrapper = dict(_delete_=True, **_base_.layerwise_optim_wrapper)
param_scheduler = []
