# Detection on the synthetic shapes (VOC XML), 160 px.
# ``XMLDataset`` is VOCDataset without the VOC-only ``dataset_type`` that
# VOCDataset derives from the 'VOC2007' folder name and that makes VOCMetric
# print the 20 VOC class names instead of ours.
_base_ = ['./synthetic_voc_metainfo.py']

dataset_type = 'XMLDataset'
data_root = 'data/synthetic_voc/'
data_layout = ('the synthetic tree {root}/VOC2007/{{JPEGImages,Annotations,'
               'ImageSets/Main}}; make it with: python '
               'tools/dataset_converters/make_synthetic_voc.py --out {root}')
metainfo = dict(
    classes={{_base_.synthetic_classes}},
    palette={{_base_.synthetic_palette}})
img_scale = (160, 160)
backend_args = None

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    # after Resize: ground-truth boxes stay in original image coordinates
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]
train_dataloader = dict(
    batch_size=16,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/train.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        metainfo=metainfo,
        filter_cfg=dict(filter_empty_gt=True, min_size=16),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='VOC2007/ImageSets/Main/val.txt',
        data_prefix=dict(sub_data_root='VOC2007/'),
        metainfo=metainfo,
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
# The generator's test lists: its own unseen split (make_synthetic_voc.py
# --num-test N, as `make data` does; nothing trains or tunes on it), else
# the val split again.
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'],
                 ann_file='VOC2007/ImageSets/Main/test.txt'))

val_evaluator = dict(type='VOCMetric', metric='mAP', eval_mode='area')
test_evaluator = val_evaluator
