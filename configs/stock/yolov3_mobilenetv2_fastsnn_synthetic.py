# mmdet's stock YOLOv3 MobileNetV2 (320 px) config as a 3-bit Fast-SNN on the
# synthetic shapes (VOC XML, 160 px, 4 classes).
#   python tools/train.py configs/stock/yolov3_mobilenetv2_fastsnn_synthetic.py
#   python tools/test.py \
#       configs/stock/yolov3_mobilenetv2_fastsnn_synthetic.py \
#       work_dirs/yolov3_mobilenetv2_fastsnn_synthetic/epoch_20.pth --compare
# Its 55 LeakyReLUs (backbone, neck, head: act_cfg) become QuantReLUs through
# make_convertible; the paper made the same change to Tiny-YOLO by hand.
_base_ = [
    'mmdet::yolo/yolov3_mobilenetv2_8xb24-320-300e_coco.py',
    '../_base_/datasets/synthetic_voc_det_stock.py',
]

# -- the lines that make a stock config a Fast-SNN ----------------------------
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
model = dict(
    type='FastSNNSingleStageDetector',
    quant=dict(bits=3, make_convertible=True),
    backbone=dict(init_cfg=None),  # ImageNet weights expect LeakyReLU
    bbox_head=dict(
        num_classes={{_base_.synthetic_num_classes}},
        # k-means of the synthetic boxes at 160 px (configs/_base_/models/
        # yolo_fastsnn_tiny.py has the same): COCO's priors are too large
        anchor_generator=dict(base_sizes=[[(52, 52), (60, 60), (72, 72)],
                                          [(36, 35), (39, 39), (45, 45)],
                                          [(25, 25), (28, 28), (32, 32)]])))

# -- the synthetic shapes instead of COCO (_base_/datasets/
# synthetic_voc_det_stock.py) -------------------------------------------------
img_scale = _base_.synthetic_det_img_scale
data_layout = _base_.synthetic_det_layout
train_pipeline = _base_.synthetic_det_train_pipeline
test_pipeline = _base_.synthetic_det_test_pipeline
train_dataloader = dict(_delete_=True,
                        **_base_.synthetic_det_train_dataloader)
val_dataloader = dict(_delete_=True, **_base_.synthetic_det_val_dataloader)
# tools/test.py reports on the generator's unseen test split (nothing trains,
# picks a checkpoint or tunes on it); validation during training uses val
test_dataloader = dict(
    val_dataloader,
    dataset=dict(val_dataloader['dataset'],
                 ann_file='VOC2007/ImageSets/Main/test.txt'))
val_evaluator = dict(_delete_=True, **_base_.synthetic_det_evaluator)
test_evaluator = val_evaluator

# the stock schedule (300 epochs of COCO) cut to the small set; not tuned
max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0, end=100),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         eta_min=1e-5)
]
optim_wrapper = dict(
    optimizer=dict(_delete_=True, type='AdamW', lr=3e-3, weight_decay=5e-4))
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=2))
auto_scale_lr = dict(enable=False)
randomness = dict(seed=0)
