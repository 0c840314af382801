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
_base_ = [
    '../_base_/datasets/cifar10_cls.py',  # mmpretrain's cifar10_bs16, offline
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)

model = dict(
    type='FastSNNImageClassifier',
    backbone=dict(
        type='QVGG',
        arch='vgg11',
        base_channels=64,
        downsample='avgpool',  # five 2x2 average pools: 32 px -> 2 px
        out_indices=(4, ),
        act_cfg=dict(type='ReLU'),  # `quant` turns these into QuantReLUs
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://vgg11_bn')),
    neck=dict(type='GlobalAveragePooling'),
    head=dict(
        type='LinearClsHead',
        num_classes=10,
        in_channels=512,
        loss=dict(type='CrossEntropyLoss', loss_weight=1.0)))
# no `quant` field (quant=None): full precision. Quantized stages add it;
# setting quant=None here would stop them from merging a dict into it.

# one device, batch 128 (the schedule's base batch size)
train_dataloader = dict(batch_size=128)
val_dataloader = dict(batch_size=128)
test_dataloader = val_dataloader
default_hooks = dict(checkpoint=dict(interval=10, max_keep_ckpts=2))
# random states go into each checkpoint, so --resume repeats an unbroken run
custom_hooks = [dict(type='RandomStateHook')]
