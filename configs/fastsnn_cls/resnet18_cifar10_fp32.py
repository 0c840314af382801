# Fast-SNN, CIFAR-10, ResNet-18 (QResNet: no max-pool, 3x3 stride-1 stem).
# Stage 0 of progressive training: a full-precision net with plain ReLUs.
# Chain (each stage loads the previous stage's last checkpoint):
#   fp32 -> 4bit -> 3bit -> 2bit;  work_dirs/<config name>/epoch_200.pth
# (200 = max_epochs of the cifar10_bs128 schedule).
# Trained from scratch: at 32 px the stem is a 3x3 stride-1 conv, which
# ImageNet ResNets (7x7 stride 2, then max-pool) have no weights for.
# Data, schedule, neck and head: _base_/cifar10_fastsnn_classifier.py.
_base_ = '../_base_/cifar10_fastsnn_classifier.py'

model = dict(
    backbone=dict(
        type='QResNet',
        depth=18,
        base_channels=64,
        stem_kernel=3,
        stem_stride=1,
        out_indices=(3, ),
        act_cfg=dict(type='ReLU')))  # `quant` turns these into QuantReLUs
