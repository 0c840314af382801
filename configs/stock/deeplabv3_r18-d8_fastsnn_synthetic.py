# mmseg's stock DeepLabV3 ResNet-18 (d8) Cityscapes config as a 3-bit
# Fast-SNN on the synthetic shapes (5 classes with background).
#   python tools/train.py configs/stock/deeplabv3_r18-d8_fastsnn_synthetic.py
#   python tools/test.py configs/stock/deeplabv3_r18-d8_fastsnn_synthetic.py \
#       work_dirs/deeplabv3_r18-d8_fastsnn_synthetic/iter_2000.pth --compare
# The stem's max-pool becomes an average pool (make_convertible), the
# blocks' shared ReLUs one QuantReLU per call site; ASPP's image-pool branch
# (adaptive average pool, conv, resize) converts as it is.
_base_ = [
    'mmseg::deeplabv3/deeplabv3_r18-d8_4xb2-80k_cityscapes-512x1024.py',
    '../_base_/datasets/synthetic_voc_metainfo.py',
]

# -- the lines that make a stock config a Fast-SNN ----------------------------
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
num_classes = {{_base_.synthetic_seg_num_classes}}
crop_size = (96, 96)
norm_cfg = dict(type='BN', requires_grad=True)  # SyncBN needs a GPU group
model = dict(
    type='FastSNNEncoderDecoder',
    quant=dict(bits=3, make_convertible=True),
    pretrained=None,  # trained from scratch: the stem pools differently now
    data_preprocessor=dict(size=crop_size),
    backbone=dict(norm_cfg=norm_cfg),
    decode_head=dict(num_classes=num_classes, norm_cfg=norm_cfg),
    auxiliary_head=dict(num_classes=num_classes, norm_cfg=norm_cfg))

# -- the synthetic shapes instead of Cityscapes -------------------------------
img_scale = (128, 128)
data_layout = ('the synthetic tree {root}/VOC2007/{{JPEGImages,'
               'SegmentationClass,ImageSets/Segmentation}}; make it with: '
               'python tools/dataset_converters/make_synthetic_voc.py '
               '--out {root}')
_dataset = dict(
    type='BaseSegDataset',
    data_root='data/synthetic_voc/',
    data_prefix=dict(
        img_path='VOC2007/JPEGImages',
        seg_map_path='VOC2007/SegmentationClass'),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=False,
    metainfo=dict(
        classes={{_base_.synthetic_seg_classes}},
        palette={{_base_.synthetic_seg_palette}}))
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=img_scale, ratio_range=(0.75, 1.25),
         keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=img_scale, keep_ratio=True),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        **_dataset,
        ann_file='VOC2007/ImageSets/Segmentation/train.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    num_workers=0,
    persistent_workers=False,
    dataset=dict(
        _delete_=True,
        **_dataset,
        ann_file='VOC2007/ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline))
# tools/test.py reports on the generator's unseen test split (nothing trains,
# picks a checkpoint or tunes on it); validation during training uses val
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'],
                 ann_file='VOC2007/ImageSets/Segmentation/test.txt'))

# the stock 80k-iteration schedule cut to the small set; not tuned
max_iters = 2000
train_cfg = dict(max_iters=max_iters, val_interval=500)
param_scheduler = [
    dict(type='PolyLR', eta_min=1e-4, power=0.9, begin=0, end=max_iters,
         by_epoch=False)
]
default_hooks = dict(
    checkpoint=dict(by_epoch=False, interval=500, max_keep_ckpts=2))
env_cfg = dict(dist_cfg=dict(backend='gloo'))
randomness = dict(seed=0)
