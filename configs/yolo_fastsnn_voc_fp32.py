# Step 0 of the progressive chain (fp32 -> 4 -> 3 -> 2 bits) for the
# Tiny-YOLO-style detector on VOC: the full-precision net, plain ReLUs.
# Tiny-YOLO's ImageNet weights exist only as Darknet binaries (neither
# torchvision nor mmpretrain has a Tiny-YOLO classifier), so this stage
# trains from scratch; yolo_fastsnn_resnet34_voc_fp32.py is the chain that
# starts from ImageNet.
#   python tools/train.py configs/yolo_fastsnn_voc_fp32.py
# Next: yolo_fastsnn_voc_4bit.py (loads work_dirs/yolo_fastsnn_voc_fp32/
# epoch_40.pth, calibrates the clips, then QAT).
_base_ = ['./yolo_fastsnn_voc.py']

model = dict(
    backbone=dict(act_cfg=dict(_delete_=True, type='ReLU')),
    neck=dict(act_cfg=dict(_delete_=True, type='ReLU')),
    bbox_head=dict(act_cfg=dict(_delete_=True, type='ReLU')),
    quant=None)  # full precision: no QuantReLU anywhere
load_from = None
