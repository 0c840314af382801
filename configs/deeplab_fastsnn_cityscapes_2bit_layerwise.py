# Fast-SNN step 3 for DeepLabV3 on Cityscapes: the 2-bit QANN of
# deeplab_fastsnn_cityscapes_2bit.py as a signed-IF SNN at T = 3, tuned
# layer by layer against the QANN (_base_/schedules/layerwise_finetune.py);
# saved as <work_dir>/snn_finetuned_signed_T3.pth.
#   python tools/train.py configs/deeplab_fastsnn_cityscapes_2bit_layerwise.py
_base_ = [
    './deeplab_fastsnn_cityscapes_2bit.py',
    './_base_/schedules/layerwise_finetune.py',
]

load_from = 'work_dirs/deeplab_fastsnn_cityscapes_2bit/iter_80000.pth'
train_cfg = dict(_delete_=True, **_base_.layerwise_train_cfg)
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', **_base_.layerwise_optim_wrapper)
param_scheduler = []
