# The larger detector, after the paper's YOLOv2-ResNet-34: a 3-bit QResNet-34
# (base width 64; a stride-2 stem conv plus a stride-2 3x3 conv where ResNet
# max-pools) under mmdet's YOLOV3Neck and YOLOV3Head, on VOC 07+12.
#   python tools/train.py configs/yolo_fastsnn_resnet34_voc.py
# No convertible ImageNet weights ship with fastsnn_mm: set
# model.backbone.init_cfg=dict(type='Pretrained', checkpoint=...) to start
# from a QResNet-34 classifier of your own.
_base_ = ['./yolo_fastsnn_voc.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='QResNet',
        depth=34,
        base_channels=64,
        stem_kernel=7,
        stem_stride=4,
        out_indices=(1, 2, 3),
        act_cfg={{_base_.act_cfg}}),
    neck=dict(in_channels=[512, 256, 128], out_channels=[512, 256, 128]),
    bbox_head=dict(in_channels=[512, 256, 128],
                   out_channels=[1024, 512, 256]))
