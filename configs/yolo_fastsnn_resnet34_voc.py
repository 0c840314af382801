# The larger detector, after the paper's YOLOv2-ResNet-34: a 3-bit QResNet-34
# (base width 64; a stride-2 stem conv plus a stride-2 3x3 conv where ResNet
# max-pools) under mmdet's YOLOV3Neck and YOLOV3Head, on VOC 07+12.
# Step 2 of its progressive chain, which starts from torchvision's ImageNet
# ResNet-34 (yolo_fastsnn_resnet34_voc_fp32.py -> _4bit.py -> this config
# -> _2bit.py, each loading the one before):
#   python tools/train.py configs/yolo_fastsnn_resnet34_voc.py
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

load_from = 'work_dirs/yolo_fastsnn_resnet34_voc_4bit/epoch_40.pth'
