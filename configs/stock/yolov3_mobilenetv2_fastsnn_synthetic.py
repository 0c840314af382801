# mmdet's stock YOLOv3 MobileNetV2 (320 px) config as a 3-bit Fast-SNN on the
# synthetic shapes (VOC XML, 160 px, 4 classes).
#   python tools/train.py configs/stock/yolov3_mobilenetv2_fastsnn_synthetic.py
#   python tools/test.py \
#       configs/stock/yolov3_mobilenetv2_fastsnn_synthetic.py \
#       work_dirs/yolov3_mobilenetv2_fastsnn_synthetic/epoch_20.pth --compare
# Its 55 LeakyReLUs (backbone, neck, head: act_cfg) become QuantReLUs through
# make_convertible; the paper made the same change to Tiny-YOLO by hand.
_base_ = [
    'mmdet::yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py',
    '../_base_/datasets/synthetic_voc_metainfo.py',
]

# -- the lines that make a stock config a Fast-SNN ----------------------------
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
model = dict(
    type='FastSNNSingleStageDetector',
    quant=dict(bits=3, make_convertible=True),
    backbone=dict(init_cfg=None),  # ImageNet weights expect LeakyReLU
    bbox_head=dict(
        num_classes={{_base_.synthetic_num_classes}},
        # k-means of the synthetic boxes at 160 px (configs/_base_/models/
        # yolo_fastsnn_tiny.py has the same): COCO's priors are too large
        anchor_generator=dict(base_sizes=[[(52, 52), (60, 60), (72, 72)],
                                          [(36, 35), (39, 39), (45, 45)],
                                          [(25, 25), (28, 28), (32, 32)]])))

# -- the synthetic shapes instead of COCO -------------------------------------
img_scale = (160, 160)
data_layout = ('the synthetic tree {root}/VOC2007/{{JPEGImages,Annotations,'
               'ImageSets/Main}}; make it with: python '
               'tools/dataset_converters/make_synthetic_voc.py --out {root}')
_dataset = dict(
    type='XMLDataset',  # VOC format; our class names in the metric table
    data_root='data/synthetic_voc/',
    data_prefix=dict(sub_data_root='VOC2007/'),
    metainfo=dict(
        classes={{_base_.synthetic_classes}},
        palette={{_base_.synthetic_palette}}))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
train_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        **_dataset,
        ann_file='VOC2007/ImageSets/Main/train.txt',
        filter_cfg=dict(filter_empty_gt=True, min_size=16),
        pipeline=train_pipeline))
val_dataloader = dict(
    _delete_=True,
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **_dataset,
        ann_file='VOC2007/ImageSets/Main/val.txt',
        test_mode=True,
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(
    _delete_=True, type='VOCMetric', metric='mAP', eval_mode='area')
test_evaluator = val_evaluator

# the stock schedule (300 epochs of COCO) cut to the small set; not tuned
max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         eta_min=1e-5)
]
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=3e-3, weight_decay=5e-4))
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=2))
auto_scale_lr = dict(enable=False)
randomness = dict(seed=0)
