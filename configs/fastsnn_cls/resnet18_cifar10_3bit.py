# Stage 2: 3-bit activations, initialised from the 4-bit QANN (its alphas
# carry over, so no calibration hook).
_base_ = './resnet18_cifar10_4bit.py'

model = dict(quant=dict(bits=3))
load_from = 'work_dirs/resnet18_cifar10_4bit/epoch_200.pth'
custom_hooks = [dict(type='RandomStateHook')]
