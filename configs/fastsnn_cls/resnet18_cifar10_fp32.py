# Fast-SNN, CIFAR-10, ResNet-18 (QResNet: no max-pool, 3x3 stride-1 stem).
# Stage 0 of progressive training: a full-precision net with plain ReLUs.
# Chain (each stage loads the previous stage's last checkpoint):
#   fp32 -> 4bit -> 3bit -> 2bit;  work_dirs/<config name>/epoch_200.pth
# (200 = max_epochs of the cifar10_bs128 schedule).
# Trained from scratch: at 32 px the stem is a 3x3 stride-1 conv, which
# ImageNet ResNets (7x7 stride 2, then max-pool) have no weights for.
_base_ = [
    '../_base_/datasets/cifar10_cls.py',  # mmpretrain's cifar10_bs16, offline
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)

model = dict(
    type='FastSNNImageClassifier',
    backbone=dict(
        type='QResNet',
        depth=18,
        base_channels=64,
        stem_kernel=3,
        stem_stride=1,
        out_indices=(3, ),
        act_cfg=dict(type='ReLU')),  # `quant` turns these into QuantReLUs
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
