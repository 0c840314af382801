# 3-bit activations and 4-bit APoT weights (first conv and classifier at 8
# bits), initialised from the 4-bit activation-only QANN; weight clips start
# at max|w| of the loaded weights and are learned.
_base_ = './resnet18_cifar10_3bit.py'

model = dict(
    quant=dict(
        bits=3, weight=dict(type='apot', bits=4, first_last_bits=8)))
