# Step 1 of the paper's progressive QAT (fp32 -> 4 -> 3 -> 2 bits): the
# 4-bit QANN of yolo_fastsnn_voc.py, started from the full-precision run of
# yolo_fastsnn_voc_fp32.py; QuantAlphaCalibrationHook sets every clip from
# activation statistics of a few batches before training (the fp32
# checkpoint has no clips). Its SNN runs at T = 2^4 - 1 = 15.
#   python tools/train.py configs/yolo_fastsnn_voc_4bit.py
# (--cfg-options load_from=None: QAT from scratch, no calibration). Next
# step: yolo_fastsnn_voc.py, which loads this run's epoch_40.pth.
_base_ = ['./yolo_fastsnn_voc.py']

bits = 4
model = dict(quant=dict(bits=bits))
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='QuantAlphaCalibrationHook', num_batches=8,
         only_if_load_from=True)
]
load_from = 'work_dirs/yolo_fastsnn_voc_fp32/epoch_40.pth'
