# mmpretrain's stock ResNet-18 CIFAR config as a 3-bit Fast-SNN: the stock
# file is inherited as it ships; below, the lines that make it ours, then
# the synthetic shapes crops (32 px, 4 classes) in place of CIFAR-10.
#   python tools/train.py configs/stock/resnet18_cifar10_fastsnn_synthetic.py
#   python tools/test.py configs/stock/resnet18_cifar10_fastsnn_synthetic.py \
#       work_dirs/resnet18_cifar10_fastsnn_synthetic/epoch_30.pth --compare
# Each block calls its one `relu` module twice: the build gives every call
# site its own QuantReLU (17 for 9 modules), as the paper's networks have.
_base_ = [
    'mmpretrain::resnet/resnet18_8xb16_cifar10.py',
    '../_base_/datasets/synthetic_voc_metainfo.py',
]

# -- the lines that make a stock config a Fast-SNN ----------------------------
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
model = dict(
    type='FastSNNImageClassifier',
    # ResNet_CIFAR has no max-pool and only ReLUs: make_convertible finds
    # nothing to replace here, and says so
    quant=dict(bits=3, make_convertible=True),
    head=dict(num_classes={{_base_.synthetic_num_classes}}))

# -- the synthetic shapes crops instead of CIFAR-10 ---------------------------
data_root = 'data/synthetic_voc/'
data_layout = ('the synthetic tree {root}/classification/{{train,val,meta}}; '
               'make it with: python tools/dataset_converters/'
               'make_synthetic_voc.py --out {root}')
metainfo = dict(classes={{_base_.synthetic_classes}})
# mmengine's Runner hands this to the model; images load as BGR
data_preprocessor = dict(
    num_classes={{_base_.synthetic_num_classes}},
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    to_rgb=True)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs')
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
train_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        ann_file='classification/meta/train.txt',
        data_prefix='classification/train',
        metainfo=metainfo,
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        type='CustomDataset',
        data_root=data_root,
        ann_file='classification/meta/val.txt',
        data_prefix='classification/val',
        metainfo=metainfo,
        pipeline=test_pipeline))
# tools/test.py reports on the generator's unseen test split (nothing trains,
# picks a checkpoint or tunes on it); validation during training uses val
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'],
                 ann_file='classification/meta/test.txt',
                 data_prefix='classification/test'))

# the stock schedule (SGD, lr 0.1, 200 epochs) cut to the small set; not tuned
train_cfg = dict(max_epochs=30, val_interval=5)
param_scheduler = dict(milestones=[15, 25])
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=2))
randomness = dict(seed=0)
