# Progressive QAT, last step, segmentation demo: the 2-bit QANN (SNN at
# T = 3) starts from the 3-bit demo segmentor (weights and clips carried
# over; quant.bits re-bits every QuantReLU) for a short schedule at a tenth
# of the from-scratch lr.
#   python tools/train.py configs/deeplab_fastsnn_synthetic_2bit.py \
#       --cfg-options \
#       load_from=work_dirs/deeplab_fastsnn_synthetic/iter_800.pth
_base_ = ['./deeplab_fastsnn_synthetic.py']

model = dict(quant=dict(bits=2))
load_from = 'work_dirs/deeplab_fastsnn_synthetic/iter_800.pth'
max_iters = 300
optim_wrapper = dict(optimizer=dict(lr=0.005))
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, by_epoch=False, begin=0,
         end=max_iters)
]
train_cfg = dict(max_iters=max_iters, val_interval=max_iters)
default_hooks = dict(checkpoint=dict(interval=max_iters))
