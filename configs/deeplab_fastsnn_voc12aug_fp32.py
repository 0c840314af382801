# Step 0 of the progressive chain (fp32 -> 4 -> 3 -> 2 bits): the
# full-precision DeepLabV3 (plain ReLUs), its QResNet-34 backbone started
# from torchvision's ImageNet ResNet-34 as stock mm configs do. Every tensor
# of that checkpoint is mapped (conv1 / bn1 -> stem.0); stem.1, the stride-2
# conv where ResNet max-pools, starts as a 3x3 average; the log lists what
# the checkpoint did not fill. Offline: download resnet34-b627a593.pth once
# and pass model.backbone.init_cfg.checkpoint=/path/to/it.
#   python tools/train.py configs/deeplab_fastsnn_voc12aug_fp32.py
_base_ = './deeplab_fastsnn_voc12aug.py'

model = dict(
    backbone=dict(
        act_cfg=dict(_delete_=True, type='ReLU'),
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet34')),
    decode_head=dict(act_cfg=dict(_delete_=True, type='ReLU')),
    quant=None)  # full precision: no QuantReLU anywhere
load_from = None
