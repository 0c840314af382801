# Step 3 of the progressive QAT (fp32 -> 4 -> 3 -> 2 bits): fine-tune the
# 3-bit QANN of yolo_fastsnn_voc.py at 2 bits (SNN at T = 3). ``load_from`` is
# that run's final checkpoint: train yolo_fastsnn_voc.py first. quant bits
# re-bit the existing QuantReLUs and keep their trained clips.
_base_ = ['./yolo_fastsnn_voc.py']

bits = 2
model = dict(quant=dict(bits=bits))
load_from = 'work_dirs/yolo_fastsnn_voc/epoch_40.pth'

max_epochs = 12
train_cfg = dict(max_epochs=max_epochs, val_interval=2)
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, by_epoch=False, begin=0,
         end=500),
    dict(type='CosineAnnealingLR', by_epoch=True, begin=0, end=max_epochs,
         eta_min=1e-6)
]
