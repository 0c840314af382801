# Progressive QAT, last step: the 2-bit QANN starts from the 3-bit demo
# checkpoint (alphas and weights carried over), a short schedule at low lr.
#   python tools/train.py configs/fastsnn_cls/qresnet_synthetic_cls_2bit.py \
#       --cfg-options \
#       load_from=work_dirs/qresnet_synthetic_cls_3bit/epoch_30.pth
_base_ = ['./qresnet_synthetic_cls_3bit.py']

model = dict(quant=dict(bits=2))
load_from = 'work_dirs/qresnet_synthetic_cls_3bit/epoch_30.pth'
optim_wrapper = dict(optimizer=dict(lr=5e-4))
param_scheduler = [dict(type='CosineAnnealingLR', by_epoch=True, begin=0,
                        end=10)]
train_cfg = dict(by_epoch=True, max_epochs=10, val_interval=5)
