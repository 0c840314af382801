# Semantic segmentation on the synthetic shapes: label 0 is background.
# mmseg's PascalVOCDataset rejects non-VOC classes, so this is the generic
# BaseSegDataset reading the VOC2007 tree.
_base_ = ['./synthetic_voc_metainfo.py']

dataset_type = 'BaseSegDataset'
data_root = 'data/synthetic_voc/'
data_layout = ('the synthetic tree {root}/VOC2007/{{JPEGImages,'
               'SegmentationClass,ImageSets/Segmentation}}; make it with: '
               'python tools/dataset_converters/make_synthetic_voc.py '
               '--out {root}')
metainfo = dict(
    classes={{_base_.synthetic_seg_classes}},
    palette={{_base_.synthetic_seg_palette}})
crop_size = (160, 160)

train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=crop_size, keep_ratio=True),
    # after Resize: metrics compare against the original-size masks
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
_dataset = dict(
    type=dataset_type,
    data_root=data_root,
    data_prefix=dict(
        img_path='VOC2007/JPEGImages',
        seg_map_path='VOC2007/SegmentationClass'),
    img_suffix='.jpg',
    seg_map_suffix='.png',
    reduce_zero_label=False,
    metainfo=metainfo)
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        **_dataset,
        ann_file='VOC2007/ImageSets/Segmentation/train.txt',
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=0,
    persistent_workers=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        **_dataset,
        ann_file='VOC2007/ImageSets/Segmentation/val.txt',
        pipeline=test_pipeline))
# The generator's test lists: its own unseen split (make_synthetic_voc.py
# --num-test N, as `make data` does; nothing trains or tunes on it), else
# the val split again.
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'],
                 ann_file='VOC2007/ImageSets/Segmentation/test.txt'))

val_evaluator = dict(type='IoUMetric', iou_metrics=['mIoU'])
test_evaluator = val_evaluator
