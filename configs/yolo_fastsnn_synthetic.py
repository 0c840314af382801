# CPU demo: a 3-bit Tiny-YOLO-style QANN detector trained from scratch on
# the synthetic shapes (160 px, VOC XML), then its SNN at T = 7, both scored
# by the stock VOC mAP metric. On shared CPUs one thread per run is fastest:
#   python tools/dataset_converters/make_synthetic_voc.py \
#       --out data/synthetic_voc --num-train 400 --num-val 100 --seed 0
#   OMP_NUM_THREADS=1 python tools/train.py configs/yolo_fastsnn_synthetic.py
#   OMP_NUM_THREADS=1 python tools/test.py configs/yolo_fastsnn_synthetic.py \
#       work_dirs/yolo_fastsnn_synthetic/epoch_20.pth \
#       --compare --neuron signed unsigned
_base_ = [
    './_base_/datasets/synthetic_voc_det.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

bits = 3
act_cfg = dict(type='QuantReLU', bits=bits, alpha=2.0)
# k-means (IoU distance) of the training boxes at 160 px: the shapes are
# 20-90 px and nearly square, so all nine priors are medium-sized.
anchors = [[(52, 52), (60, 60), (72, 72)],
           [(36, 35), (39, 39), (45, 45)],
           [(25, 25), (28, 28), (32, 32)]]

model = dict(
    type='FastSNNSingleStageDetector',
    data_preprocessor=dict(
        type='DetDataPreprocessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_size_divisor=32),
    backbone=dict(
        type='QTinyYOLO',
        base_channels=16,
        stem_stride=2,
        strides=(2, 2, 2, 2),
        stage_blocks=(0, 1, 1, 1),
        out_indices=(1, 2, 3),
        act_cfg=act_cfg),
    # shallow neck: 5 neuron layers to stride 8 instead of YOLOV3Neck's 17;
    # the SNN's per-layer drift adds up with depth (see TinyYOLONeck)
    neck=dict(
        type='TinyYOLONeck',
        in_channels=[256, 128, 64],
        out_channels=[128, 64, 32],
        act_cfg=act_cfg),
    bbox_head=dict(
        type='YOLOV3Head',
        num_classes={{_base_.synthetic_num_classes}},
        in_channels=[128, 64, 32],
        out_channels=[256, 128, 64],
        act_cfg=act_cfg,
        anchor_generator=dict(
            type='YOLOAnchorGenerator',
            base_sizes=anchors,
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

# QAT from scratch (clips start at 2.0, learnt): on 400 images AdamW with
# a short warm-up and cosine decay converges in 20 short epochs
max_epochs = 20
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=3e-3, weight_decay=5e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         eta_min=1e-5)
]
default_hooks = dict(
    logger=dict(type='LoggerHook', interval=50),
    # two kept: mmengine deletes the oldest before writing the newest, so a
    # run killed during that write still leaves a whole one to resume from
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
# small batches: twice the updates per epoch at about the same cost
train_dataloader = dict(batch_size=8)
randomness = dict(seed=0)
# random states go into each checkpoint, so --resume repeats an unbroken run
custom_hooks = [dict(type='RandomStateHook')]
