# DeepLab-v1 style (LargeFOV) Fast-SNN on VOC 2012 + SBD, 3-bit: a QVGG-9
# backbone (three stages, each starting with a stride-2 conv: output
# stride 8, no max-pooling) and one dilated 3x3 conv (rate 12) as the head,
# mmseg's FCNHead with QuantReLU; conv_seg stays linear. 3-bit QAT starts
# directly from ImageNet: VGG-9's seven convs are the first seven of
# torchvision's VGG-16 (BN), whose weights they take (the rest of that
# checkpoint is listed as unused in the log); the calibration hook then
# sets every clip from a few batches.
#   python tools/train.py configs/deeplab_vgg9_fastsnn_voc12aug.py
_base_ = './deeplab_fastsnn_voc12aug.py'

model = dict(
    backbone=dict(
        _delete_=True,
        type='QVGG',
        arch='vgg9',
        base_channels=64,
        strides=(2, 2, 2),
        downsample='conv',
        out_indices=(2, ),
        act_cfg={{_base_.act_cfg}},
        norm_cfg={{_base_.norm_cfg}},
        init_cfg=dict(type='Pretrained',
                      checkpoint='torchvision://vgg16_bn')),
    decode_head=dict(
        _delete_=True,
        type='FCNHead',
        in_channels=256,
        in_index=0,
        channels=512,
        num_convs=1,
        kernel_size=3,
        dilation=12,
        concat_input=False,
        dropout_ratio=0.1,
        num_classes=21,
        norm_cfg={{_base_.norm_cfg}},
        act_cfg={{_base_.act_cfg}},
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)))
load_from = None
custom_hooks = [
    dict(type='RandomStateHook'),
    dict(type='QuantAlphaCalibrationHook', num_batches=8,
         only_if_load_from=False)
]
