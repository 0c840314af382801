# Classification of 32 px single-shape crops cut from the synthetic images.
# Labels come from the split lists (meta/*.txt) in metainfo order, not from
# sorted folder names, so class i means the same shape in all three tasks.
_base_ = ['./synthetic_voc_metainfo.py']

dataset_type = 'CustomDataset'
data_root = 'data/synthetic_voc/'
data_layout = ('the synthetic tree {root}/classification/'
               '{{train,val,test,meta}}; '
               'make it with: python tools/dataset_converters/'
               'make_synthetic_voc.py --out {root}')
metainfo = dict(classes={{_base_.synthetic_classes}})
data_preprocessor = dict(
    num_classes={{_base_.synthetic_num_classes}},
    mean=[123.675, 116.28, 103.53],
    std=[58.395, 57.12, 57.375],
    # images are loaded as BGR
    to_rgb=True)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomCrop', crop_size=32, padding=4),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='PackInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='PackInputs')
]
train_dataloader = dict(
    batch_size=32,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='classification/meta/train.txt',
        data_prefix='classification/train',
        metainfo=metainfo,
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=64,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='classification/meta/val.txt',
        data_prefix='classification/val',
        metainfo=metainfo,
        pipeline=test_pipeline))
# The generator's test lists: its own unseen split (make_synthetic_voc.py
# --num-test N, as `make data` does; nothing trains or tunes on it), else
# the val split again.
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'],
                 ann_file='classification/meta/test.txt',
                 data_prefix='classification/test'))

val_evaluator = dict(type='Accuracy', topk=(1, ))
test_evaluator = val_evaluator
