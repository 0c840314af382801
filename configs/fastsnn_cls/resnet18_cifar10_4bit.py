# Stage 1: 4-bit activations (QAT), initialised from the fp32 net.
# QuantReLU clips (alpha) are not in the fp32 checkpoint: the calibration
# hook sets them from activation statistics before training starts.
# Fine-tuning uses a 10x smaller learning rate than training from scratch.
# Weight quantization stays off here; see resnet18_cifar10_3bit_w4.py.
_base_ = './resnet18_cifar10_fp32.py'

model = dict(quant=dict(bits=4))
load_from = 'work_dirs/resnet18_cifar10_fp32/epoch_200.pth'
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='QuantAlphaCalibrationHook', num_batches=16,
         method='percentile', percentile=99.9)
]
optim_wrapper = dict(optimizer=dict(lr=0.01))
