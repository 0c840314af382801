# Stage 2: 3-bit activations, initialised from the 4-bit QANN (its alphas
# carry over, so no calibration hook).
_base_ = './vgg11_cifar10_4bit.py'

model = dict(quant=dict(bits=3))
load_from = 'work_dirs/vgg11_cifar10_4bit/epoch_200.pth'
custom_hooks = [dict(type='RandomStateHook')]
