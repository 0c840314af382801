# Step 0 of the ResNet-34 detector's progressive chain (fp32 -> 4 -> 3 -> 2
# bits): the full-precision net (plain ReLUs), its backbone started from
# torchvision's ImageNet ResNet-34 as stock mm configs do. Every tensor of
# that checkpoint is mapped (conv1 / bn1 -> stem.0); stem.1, the stride-2
# conv where ResNet max-pools, starts as a 3x3 average; the log lists what
# the checkpoint did not fill. Offline: download resnet34-b627a593.pth once
# and pass model.backbone.init_cfg.checkpoint=/path/to/it.
#   python tools/train.py configs/yolo_fastsnn_resnet34_voc_fp32.py
_base_ = ['./yolo_fastsnn_resnet34_voc.py']

model = dict(
    backbone=dict(
        act_cfg=dict(_delete_=True, type='ReLU'),
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet34')),
    neck=dict(act_cfg=dict(_delete_=True, type='ReLU')),
    bbox_head=dict(act_cfg=dict(_delete_=True, type='ReLU')),
    quant=None)  # full precision: no QuantReLU anywhere
load_from = None
