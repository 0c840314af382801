# Step 3 of the ResNet-34 detector's chain: 2-bit activations (T = 3),
# fine-tuned from the 3-bit run (clips carry over), short schedule at low lr
# as yolo_fastsnn_voc_2bit.py.
#   python tools/train.py configs/yolo_fastsnn_resnet34_voc_2bit.py
_base_ = ['./yolo_fastsnn_resnet34_voc.py']

model = dict(quant=dict(bits=2))
load_from = 'work_dirs/yolo_fastsnn_resnet34_voc/epoch_40.pth'

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=500),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         eta_min=1e-6)
]
