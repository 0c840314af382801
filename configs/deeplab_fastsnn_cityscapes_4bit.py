# Step 1 of the Cityscapes chain: 4-bit QAT (T = 15) from the fp32 run;
# the calibration hook sets every clip first; 10x smaller learning rate.
#   python tools/train.py configs/deeplab_fastsnn_cityscapes_4bit.py
_base_ = './deeplab_fastsnn_cityscapes.py'

model = dict(quant=dict(bits=4))
load_from = 'work_dirs/deeplab_fastsnn_cityscapes_fp32/iter_80000.pth'
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='QuantAlphaCalibrationHook', num_batches=8,
         only_if_load_from=True)
]
optim_wrapper = dict(optimizer=dict(lr=0.001))
