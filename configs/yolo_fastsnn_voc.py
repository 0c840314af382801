# Tiny-YOLO-style 3-bit QANN detector on PASCAL VOC (07+12 trainval, VOC07
# test), converted to a Fast-SNN at T = 2^3 - 1 = 7 for evaluation.
#   python tools/train.py configs/yolo_fastsnn_voc.py
#   python tools/test.py configs/yolo_fastsnn_voc.py \
#       work_dirs/yolo_fastsnn_voc/epoch_40.pth \
#       --compare --neuron signed unsigned
# Progressive QAT as in the paper (4 -> 3 -> 2 bits): train
# yolo_fastsnn_voc_4bit.py first and start this one from it with
#   --cfg-options load_from=work_dirs/yolo_fastsnn_voc_4bit/epoch_40.pth
# (alone, this config runs QAT from scratch).
_base_ = [
    './_base_/datasets/voc0712_det.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

bits = 3
# every activation is a QuantReLU; 2.0 suits BN-normalised inputs
act_cfg = dict(type='QuantReLU', bits=bits, alpha=2.0)
input_size = (416, 416)

model = dict(
    type='FastSNNSingleStageDetector',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    # Tiny-YOLO widths 16..512; stride-2 convs where it max-pools
    backbone=dict(
        type='QTinyYOLO',
        base_channels=16,
        stem_stride=1,
        strides=(2, 2, 2, 2, 2),
        stage_blocks=(0, 1, 1, 1, 1),
        out_indices=(2, 3, 4),
        act_cfg=act_cfg),
    # nearest upsampling + concat: both exact on spike trains
    neck=dict(
        type='YOLOV3Neck',
        num_scales=3,
        in_channels=[512, 256, 128],
        out_channels=[256, 128, 64],
        act_cfg=act_cfg),
    # bridge convs spike; the 1x1 prediction convs stay linear (averaged)
    bbox_head=dict(
        type='YOLOV3Head',
        num_classes=20,
        in_channels=[256, 128, 64],
        out_channels=[512, 256, 128],
        act_cfg=act_cfg,
        anchor_generator=dict(
            type='YOLOAnchorGenerator',
            base_sizes=[[(116, 90), (156, 198), (373, 326)],
                        [(30, 61), (62, 45), (59, 119)],
                        [(10, 13), (16, 30), (33, 23)]],
            strides=[32, 16, 8]),
        bbox_coder=dict(type='YOLOBBoxCoder'),
        featmap_strides=[32, 16, 8],
        loss_cls=dict(type='CrossEntropyLoss', use_sigmoid=True,
                      loss_weight=1.0, reduction='sum'),
        loss_conf=dict(type='CrossEntropyLoss', use_sigmoid=True,
                       loss_weight=1.0, reduction='sum'),
        loss_xy=dict(type='CrossEntropyLoss', use_sigmoid=True,
                     loss_weight=2.0, reduction='sum'),
        loss_wh=dict(type='MSELoss', loss_weight=2.0, reduction='sum')),
    train_cfg=dict(
        assigner=dict(type='GridAssigner', pos_iou_thr=0.5,
                      neg_iou_thr=0.5, min_pos_iou=0)),
    test_cfg=dict(
        nms_pre=1000,
        min_bbox_size=0,
        score_thr=0.05,
        conf_thr=0.005,
        nms=dict(type='nms', iou_threshold=0.45),
        max_per_img=100),
    quant=dict(bits=bits))

# mmdet's YOLOv3 augmentation at Tiny-YOLO's 416 px
backend_args = None
train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Expand', mean=[123.675, 116.28, 103.53], to_rgb=True,
         ratio_range=(1, 2)),
    dict(type='MinIoURandomCrop', min_ious=(0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
         min_crop_size=0.3),
    dict(type='RandomResize', scale=[(320, 320), input_size],
         keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackDetInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=input_size, keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs',
         meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                    'scale_factor'))
]
data_root = 'data/VOCdevkit/'
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    dataset=dict(
        type='RepeatDataset',
        times=3,
        dataset=dict(
            type='ConcatDataset',
            ignore_keys=['dataset_type'],
            datasets=[
                dict(type='VOCDataset', data_root=data_root,
                     ann_file=f'{year}/ImageSets/Main/trainval.txt',
                     data_prefix=dict(sub_data_root=f'{year}/'),
                     filter_cfg=dict(filter_empty_gt=True, min_size=32,
                                     bbox_min_size=32),
                     pipeline=train_pipeline, backend_args=backend_args)
                for year in ('VOC2007', 'VOC2012')
            ])))
val_dataloader = dict(
    batch_size=8, num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

max_epochs = 40  # of the 3x repeated 07+12 trainval
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=5e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=1000),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         eta_min=1e-5)
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
auto_scale_lr = dict(enable=False, base_batch_size=16)
