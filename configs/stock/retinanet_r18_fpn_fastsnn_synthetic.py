# mmdet's stock RetinaNet ResNet-18 FPN config as a 3-bit Fast-SNN on the
# synthetic shapes (VOC XML, 160 px, 4 classes): an FPN detector.
#   python tools/train.py configs/stock/retinanet_r18_fpn_fastsnn_synthetic.py
#   python tools/test.py configs/stock/retinanet_r18_fpn_fastsnn_synthetic.py \
#       work_dirs/retinanet_r18_fpn_fastsnn_synthetic/epoch_20.pth --compare
# The stem's max-pool becomes an average pool (make_convertible), the
# blocks' shared ReLUs one QuantReLU per call site. The FPN (1x1 laterals,
# nearest upsampling, sums, strided extra convs on C5) is linear; the head's
# convs are shared by all five levels, and so are their clips.
_base_ = [
    'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
    '../_base_/datasets/synthetic_voc_metainfo.py',
]

# -- the lines that make a stock config a Fast-SNN ----------------------------
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
model = dict(
    type='FastSNNSingleStageDetector',
    quant=dict(bits=3, make_convertible=True),
    # trained from scratch (ImageNet weights expect the max-pool), so no
    # frozen stem and BN statistics that learn
    backbone=dict(init_cfg=None, frozen_stages=-1, norm_eval=False),
    bbox_head=dict(num_classes={{_base_.synthetic_num_classes}}))

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

# the stock 1x schedule cut to the small set; not tuned
max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[14, 18], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=2))
randomness = dict(seed=0)
