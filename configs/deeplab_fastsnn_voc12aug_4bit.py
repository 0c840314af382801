# Step 1 of the progressive chain: 4-bit activations (T = 15), started from
# the full-precision run of deeplab_fastsnn_voc12aug_fp32.py; the
# calibration hook sets every clip from a few batches first (the fp32
# checkpoint has none). Fine-tuning: a 10x smaller learning rate than the
# fp32 run. deeplab_fastsnn_voc12aug.py (3-bit) then loads this run.
#   python tools/train.py configs/deeplab_fastsnn_voc12aug_4bit.py
_base_ = './deeplab_fastsnn_voc12aug.py'

# quant.bits re-bits every QuantReLU, those built from act_cfg too
model = dict(quant=dict(bits=4))
load_from = 'work_dirs/deeplab_fastsnn_voc12aug_fp32/iter_20000.pth'
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='QuantAlphaCalibrationHook', num_batches=8,
         only_if_load_from=True)
]
optim_wrapper = dict(optimizer=dict(lr=0.001))
