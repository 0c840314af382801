# Step 0 of the Cityscapes chain (fp32 -> 4 -> 3 -> 2 bits): full-precision
# DeepLabV3 (plain ReLUs), backbone from torchvision's ImageNet ResNet-34
# (every tensor mapped; stem.1, where ResNet max-pools, starts as a 3x3
# average; the log lists what the checkpoint did not fill).
#   python tools/train.py configs/deeplab_fastsnn_cityscapes_fp32.py
_base_ = './deeplab_fastsnn_cityscapes.py'

model = dict(
    backbone=dict(
        act_cfg=dict(_delete_=True, type='ReLU'),
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://resnet34')),
    decode_head=dict(act_cfg=dict(_delete_=True, type='ReLU')),
    quant=None)  # full precision: no QuantReLU anywhere
load_from = None
