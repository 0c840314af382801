# DeepLabV3 Fast-SNN model shared by the VOC, Cityscapes and synthetic
# configs: QResNet-34 (a stride-2 conv where ResNet has its max-pool, every
# ReLU a QuantReLU), last two stages dilated for output stride 8, and mmseg's
# stock ASPPHead with QuantReLU activations; its image-pool branch (avg-pool,
# 1x1 conv, resize) converts as it is; conv_seg stays linear. No auxiliary
# head: only the decode head is on the spiking path. Set num_classes and the
# preprocessor's crop size in the config that uses it.
# SyncBN as in mmseg's DeepLabV3 (plain BN in a single process).
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
        size=(512, 512)),
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
        num_classes=21,
        norm_cfg=norm_cfg,
        act_cfg=act_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0)),
    train_cfg=dict(),
    test_cfg=dict(mode='whole'),
    # a QANN until tools/test.py --snn/--compare or an snn field converts
    # it; no `snn=None` here, so that `--cfg-options model.snn.timesteps=7`
    # (mm's own test scripts) can add the field to this dict
    quant=dict(bits=3, alpha=2.0))
