# The synthetic shapes (VOC XML, 160 px) for mmdet's stock detector
# configs (configs/stock/): every name carries a `synthetic_det_` prefix, so
# this file sits beside a stock mmdet config in `_base_` without clashing
# with its keys (mmengine refuses a key that two bases share). A stock
# config puts the pieces in place of COCO's:
#   train_dataloader = dict(_delete_=True,
#                           **_base_.synthetic_det_train_dataloader)
_base_ = ['./synthetic_voc_metainfo.py']

synthetic_det_img_scale = (160, 160)
synthetic_det_layout = (
    'the synthetic tree {root}/VOC2007/{{JPEGImages,Annotations,'
    'ImageSets/Main}}; make it with: python '
    'tools/dataset_converters/make_synthetic_voc.py --out {root}')
_dataset = dict(
    type='XMLDataset',  # VOC format; our class names in the metric table
    data_root='data/synthetic_voc/',
    data_prefix=dict(sub_data_root='VOC2007/'),
    metainfo=dict(
        classes={{_base_.synthetic_classes}},
        palette={{_base_.synthetic_palette}}))
synthetic_det_train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=synthetic_det_img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
synthetic_det_test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=synthetic_det_img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
synthetic_det_train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        **_dataset,
        ann_file='VOC2007/ImageSets/Main/train.txt',
        filter_cfg=dict(filter_empty_gt=True, min_size=16),
        pipeline=synthetic_det_train_pipeline))
synthetic_det_val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **_dataset,
        ann_file='VOC2007/ImageSets/Main/val.txt',
        test_mode=True,
        pipeline=synthetic_det_test_pipeline))
synthetic_det_evaluator = dict(type='VOCMetric', metric='mAP',
                               eval_mode='area')
