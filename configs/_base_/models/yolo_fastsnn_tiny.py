# The 3-bit Tiny-YOLO-style Fast-SNN detector shared by the VOC and COCO
# configs: QTinyYOLO + stock YOLOV3Neck + YOLOV3Head, every activation a
# QuantReLU, stock YOLOv3 anchors for 416 px inputs.
bits = 3
# every activation is a QuantReLU; 2.0 suits BN-normalised inputs
act_cfg = dict(type='QuantReLU', bits=bits, alpha=2.0)
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
