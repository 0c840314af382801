# The 3-bit Tiny-YOLO-style Fast-SNN detector on COCO (80 classes), with
# mmdet's COCO dataset base and its YOLOv3 augmentation at 416 px.
#   python tools/train.py configs/yolo_fastsnn_coco.py
#   python tools/test.py configs/yolo_fastsnn_coco.py \
#       work_dirs/yolo_fastsnn_coco/epoch_60.pth --compare
_base_ = [
    './_base_/models/yolo_fastsnn_tiny.py',
    'mmdet::_base_/datasets/coco_detection.py',
    './_base_/datasets/yolo_416_pipelines.py',
    './_base_/schedules/yolo_qat_adamw.py',
    'mmdet::_base_/default_runtime.py',
]
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
default_scope = 'mmdet'
data_layout = ('COCO layout {root}/{{annotations/instances_{{train,val}}'
               '2017.json,train2017,val2017}}')

input_size = (416, 416)
model = dict(bbox_head=dict(num_classes=80))

# mmdet's YOLOv3 augmentation at 416 px (_base_/datasets/yolo_416_pipelines)
backend_args = None
train_pipeline = {{_base_.yolo_train_pipeline}}
test_pipeline = {{_base_.yolo_test_pipeline}}
train_dataloader = dict(
    batch_size=16, num_workers=4, dataset=dict(pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8, num_workers=4, dataset=dict(pipeline=test_pipeline))
test_dataloader = val_dataloader

# _base_/schedules/yolo_qat_adamw.py, longer, with a longer warm-up
max_epochs = 60
train_cfg = dict(max_epochs=max_epochs)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=2000),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         eta_min=1e-5)
]
default_hooks = dict(
    checkpoint=dict(type='CheckpointHook', interval=5, max_keep_ckpts=2))
# random states go into each checkpoint, so --resume repeats an unbroken run
custom_hooks = [dict(type='RandomStateHook')]
