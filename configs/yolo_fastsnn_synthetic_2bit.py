# Progressive QAT, last step, detection demo: the 2-bit QANN (SNN at T = 3)
# starts from the 3-bit demo detector (weights and clips carried over;
# quant.bits re-bits every QuantReLU, those built from act_cfg too) and
# trains a short schedule at a tenth of the from-scratch lr.
#   python tools/train.py configs/yolo_fastsnn_synthetic_2bit.py \
#       --cfg-options load_from=work_dirs/yolo_fastsnn_synthetic/epoch_20.pth
_base_ = ['./yolo_fastsnn_synthetic.py']

model = dict(quant=dict(bits=2))
load_from = 'work_dirs/yolo_fastsnn_synthetic/epoch_20.pth'
max_epochs = 8
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
optim_wrapper = dict(optimizer=dict(lr=3e-4))
param_scheduler = [
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         eta_min=1e-6)
]
default_hooks = dict(checkpoint=dict(interval=max_epochs))
