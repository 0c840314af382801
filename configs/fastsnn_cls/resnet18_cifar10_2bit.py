# Stage 3: 2-bit activations, initialised from the 3-bit QANN.
_base_ = './resnet18_cifar10_3bit.py'

model = dict(quant=dict(bits=2))
load_from = 'work_dirs/resnet18_cifar10_3bit/epoch_200.pth'
