# Step 1 of the paper's progressive QAT (fp32 -> 4 -> 3 -> 2 bits): the
# 4-bit QANN of yolo_fastsnn_voc.py. It loads no checkpoint by default (QAT
# from scratch); to start from a full-precision run pass
#   --cfg-options load_from=<fp32 checkpoint>
# and the calibration hook sets every clip from a few batches first.
# Its SNN runs at T = 2^4 - 1 = 15. Next step: yolo_fastsnn_voc.py with
#   --cfg-options load_from=work_dirs/yolo_fastsnn_voc_4bit/epoch_40.pth
_base_ = ['./yolo_fastsnn_voc.py']

bits = 4
model = dict(quant=dict(bits=bits))
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='QuantAlphaCalibrationHook', num_batches=8,
         only_if_load_from=True)
]
load_from = None
