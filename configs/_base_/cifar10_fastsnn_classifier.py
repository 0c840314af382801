# What the CIFAR-10 chains (fastsnn_cls/resnet18_cifar10_*, vgg11_cifar10_*)
# share: mmpretrain's CIFAR-10 data (offline) and its 200-epoch SGD schedule
# at batch 128 on one device, a global-average-pooling neck and one linear
# layer (the SNN's averaged output). Each fp32 config adds its backbone.
_base_ = [
    './datasets/cifar10_cls.py',  # mmpretrain's cifar10_bs16, offline
    'mmpretrain::_base_/schedules/cifar10_bs128.py',
    'mmpretrain::_base_/default_runtime.py',
]
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)

model = dict(
    type='FastSNNImageClassifier',
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
