# Fast-SNN step 3 on mmseg's stock DeepLabV3 R18-d8 (configs/stock/
# deeplabv3_r18-d8_fastsnn_synthetic.py, 3-bit): convert to a signed-IF SNN
# at T = 7 and tune it layer by layer against its QANN, with the demo
# recipe (_base_/schedules/layerwise_finetune_demo.py): each stage kept only
# if it helped on the judging slice (20 % of the training images, held out
# of tuning); the unseen test split is reported before, after each stage
# and after, and judges nothing.
#   python tools/train.py configs/stock/deeplabv3_r18-d8_fastsnn_synthetic.py
#   python tools/train.py \
#       configs/stock/deeplabv3_r18-d8_fastsnn_synthetic_layerwise.py \
#       --cfg-options load_from=work_dirs/\
# deeplabv3_r18-d8_fastsnn_synthetic/iter_2000.pth (one path, no space)
_base_ = [
    './deeplabv3_r18-d8_fastsnn_synthetic.py',
    '../_base_/schedules/layerwise_finetune_demo.py',
]

load_from = 'work_dirs/deeplabv3_r18-d8_fastsnn_synthetic/iter_2000.pth'
train_cfg = dict(_delete_=True, **_base_.layerwise_train_cfg)
optim_wrapper = dict(_delete_=True, **_base_.layerwise_optim_wrapper)
param_scheduler = []
