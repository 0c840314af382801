# DeepLabV3 Fast-SNN (QResNet-34, output stride 8, ASPPHead, 3-bit) on
# Cityscapes (19 classes) with mmseg's stock data settings (512x1024
# crops) and 80k-iteration schedule. Needs *_labelTrainIds.png masks (mmseg's
# tools/dataset_converters/cityscapes.py makes them).
#   python tools/train.py configs/deeplab_fastsnn_cityscapes.py
_base_ = [
    'mmseg::_base_/datasets/cityscapes.py',
    'mmseg::_base_/default_runtime.py',
    'mmseg::_base_/schedules/schedule_80k.py',
]
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
default_scope = 'mmseg'

data_layout = ('Cityscapes layout {root}/{{leftImg8bit,gtFine}}/'
               '{{train,val}}/<city>/, gtFine with *_labelTrainIds.png')
crop_size = (512, 1024)
norm_cfg = dict(type='SyncBN', requires_grad=True)
act_cfg = dict(type='QuantReLU', bits=3, alpha=2.0)

model = dict(
    type='FastSNNEncoderDecoder',
    data_preprocessor=dict(
        type='SegDataPreProcessor',
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375],
        bgr_to_rgb=True,
        pad_val=0,
        seg_pad_val=255,
        size=crop_size),
    backbone=dict(
        type='QResNet',
        depth=34,
        base_channels=64,
        stem_kernel=7,
        stem_stride=4,
        strides=(1, 2, 1, 1),
        dilations=(1, 1, 2, 4),
        out_indices=(3, ),
        act_cfg=act_cfg,
        norm_cfg=norm_cfg),
    decode_head=dict(
        type='ASPPHead',
        in_channels=512,
        in_index=0,
        channels=256,
        dilations=(1, 12, 24, 36),
        dropout_ratio=0.1,
        num_classes=19,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
    quant=dict(bits=3, alpha=2.0),
    snn=None)

optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'alpha': dict(decay_mult=0.0)}))
