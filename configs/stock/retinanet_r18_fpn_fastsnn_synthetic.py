# mmdet's stock RetinaNet ResNet-18 FPN config as a 3-bit Fast-SNN on the
# synthetic shapes (VOC XML, 160 px, 4 classes): an FPN detector.
#   python tools/train.py configs/stock/retinanet_r18_fpn_fastsnn_synthetic.py
#   python tools/test.py configs/stock/retinanet_r18_fpn_fastsnn_synthetic.py \
#       work_dirs/retinanet_r18_fpn_fastsnn_synthetic/epoch_20.pth --compare
# The stem's max-pool becomes an average pool (make_convertible), the
# blocks' shared ReLUs one QuantReLU per call site. The FPN (1x1 laterals,
# nearest upsampling, sums, strided extra convs on C5) is linear; the head's
# convs are shared by all five levels, and so are their clips.
_base_ = [
    'mmdet::retinanet/retinanet_r18_fpn_1x_coco.py',
    '../_base_/datasets/synthetic_voc_det_stock.py',
]

# -- the lines that make a stock config a Fast-SNN ----------------------------
custom_imports = dict(imports=['fastsnn_mm'], allow_failed_imports=False)
model = dict(
    type='FastSNNSingleStageDetector',
    quant=dict(bits=3, make_convertible=True),
    # trained from scratch (ImageNet weights expect the max-pool), so no
    # frozen stem and BN statistics that learn
    backbone=dict(init_cfg=None, frozen_stages=-1, norm_eval=False),
    bbox_head=dict(num_classes={{_base_.synthetic_num_classes}}))

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

# the stock 1x schedule cut to the small set; not tuned
max_epochs = 20
train_cfg = dict(max_epochs=max_epochs, val_interval=5)
param_scheduler = [
    dict(type='LinearLR', start_factor=0.001, by_epoch=False, begin=0,
         end=100),
    dict(type='MultiStepLR', begin=0, end=max_epochs, by_epoch=True,
         milestones=[14, 18], gamma=0.1)
]
default_hooks = dict(checkpoint=dict(interval=5, max_keep_ckpts=2))
randomness = dict(seed=0)
