# Tiny-YOLO-style 3-bit QANN detector on PASCAL VOC (07+12 trainval, VOC07
# test), converted to a Fast-SNN at T = 2^3 - 1 = 7 for evaluation.
#   python tools/train.py configs/yolo_fastsnn_voc.py
#   python tools/test.py configs/yolo_fastsnn_voc.py \
#       work_dirs/yolo_fastsnn_voc/epoch_40.pth \
#       --compare --neuron signed unsigned
# Step 2 of the progressive QAT as in the paper (fp32 -> 4 -> 3 -> 2
# bits): loads the 4-bit run of yolo_fastsnn_voc_4bit.py (train
# yolo_fastsnn_voc_fp32.py and that one first; --cfg-options
# load_from=None runs 3-bit QAT from scratch instead).
_base_ = [
    './_base_/models/yolo_fastsnn_tiny.py',
    './_base_/datasets/voc0712_det.py',
    './_base_/datasets/yolo_416_pipelines.py',
    './_base_/schedules/yolo_qat_adamw.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
default_scope = 'mmdet'

input_size = (416, 416)

# mmdet's YOLOv3 augmentation at 416 px (_base_/datasets/yolo_416_pipelines)
backend_args = None
train_pipeline = {{_base_.yolo_train_pipeline}}
test_pipeline = {{_base_.yolo_test_pipeline}}
data_root = 'data/VOCdevkit/'
train_dataloader = dict(
    batch_size=16,
    num_workers=4,
    dataset=dict(
        type='RepeatDataset',
        times=3,
        dataset=dict(
            type='ConcatDataset',
            ignore_keys=['dataset_type'],
            datasets=[
                dict(type='VOCDataset', data_root=data_root,
                     ann_file=f'{year}/ImageSets/Main/trainval.txt',
                     data_prefix=dict(sub_data_root=f'{year}/'),
                     filter_cfg=dict(filter_empty_gt=True, min_size=32,
                                     bbox_min_size=32),
                     pipeline=train_pipeline, backend_args=backend_args)
                for year in ('VOC2007', 'VOC2012')
            ])))
val_dataloader = dict(
    batch_size=8, num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# 40 epochs of the 3x repeated 07+12 trainval:
# _base_/schedules/yolo_qat_adamw.py
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
load_from = 'work_dirs/yolo_fastsnn_voc_4bit/epoch_40.pth'
# random states go into each checkpoint, so --resume repeats an unbroken run
custom_hooks = [dict(type='RandomStateHook')]
