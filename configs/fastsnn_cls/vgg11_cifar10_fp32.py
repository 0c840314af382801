# Fast-SNN, CIFAR-10, VGG-11 (QVGG: BN after each conv, avg-pool downsampling).
# Stage 0 of progressive training: a full-precision net with plain ReLUs.
# Chain (each stage loads the previous stage's last checkpoint):
#   fp32 -> 4bit -> 3bit -> 2bit;  work_dirs/<config name>/epoch_200.pth
# (200 = max_epochs of the cifar10_bs128 schedule).
# The backbone starts from torchvision's ImageNet VGG-11 (BN), as stock mm
# configs start from ImageNet: its eight 3x3 convs map one to one onto
# QVGG's (conv biases folded into our BNs; the log lists anything the
# checkpoint did not fill). Offline: download vgg11_bn-6002323d.pth once and
# pass model.backbone.init_cfg.checkpoint=/path/to/it; init_cfg=None trains
# from scratch.
# Data, schedule, neck and head: _base_/cifar10_fastsnn_classifier.py.
_base_ = '../_base_/cifar10_fastsnn_classifier.py'

model = dict(
    backbone=dict(
        type='QVGG',
        arch='vgg11',
        base_channels=64,
        downsample='avgpool',  # five 2x2 average pools: 32 px -> 2 px
        out_indices=(4, ),
        act_cfg=dict(type='ReLU'),  # `quant` turns these into QuantReLUs
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://vgg11_bn')))
