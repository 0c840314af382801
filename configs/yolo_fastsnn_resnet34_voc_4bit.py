# Step 1 of the ResNet-34 detector's chain: 4-bit QAT (T = 15) from the
# full-precision run; QuantAlphaCalibrationHook sets every clip from a few
# batches first (the fp32 checkpoint has none).
#   python tools/train.py configs/yolo_fastsnn_resnet34_voc_4bit.py
_base_ = ['./yolo_fastsnn_resnet34_voc.py']

model = dict(quant=dict(bits=4))
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='QuantAlphaCalibrationHook', num_batches=8,
         only_if_load_from=True)
]
load_from = 'work_dirs/yolo_fastsnn_resnet34_voc_fp32/epoch_40.pth'
