# QAT schedule of the 416 px Tiny-YOLO detectors (yolo_fastsnn_voc.py and
# the configs inheriting it, yolo_fastsnn_coco.py): AdamW with gradient
# clipping, linear warm-up, cosine decay to 1e-5, validation every 5
# epochs. A config with another length sets max_epochs, train_cfg's
# max_epochs and its own param_scheduler (the list is built here, with the
# max_epochs of this file).
max_epochs = 40
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=max_epochs,
                 val_interval=5)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(type='AdamW', lr=1e-3, weight_decay=5e-4),
    clip_grad=dict(max_norm=35, norm_type=2))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.01, by_epoch=False, begin=0,
         end=1000),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         eta_min=1e-5)
]
auto_scale_lr = dict(enable=False, base_batch_size=16)
