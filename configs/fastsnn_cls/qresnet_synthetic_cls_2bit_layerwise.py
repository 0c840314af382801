# Fast-SNN step 3 on the 2-bit demo classifier: convert to a signed-IF SNN
# with T = 3 and tune it layer by layer against its QANN; the log shows
# the SNN's top-1 before and after, and per layer the held-out MSE and the
# fraction of spike counts off the QANN level.
#   python tools/train.py \
#       configs/fastsnn_cls/qresnet_synthetic_cls_2bit_layerwise.py \
#       --cfg-options load_from=work_dirs/qresnet_synthetic_cls_2bit/epoch_10.pth
_base_ = ['./qresnet_synthetic_cls_2bit.py']

load_from = 'work_dirs/qresnet_synthetic_cls_2bit/epoch_10.pth'
train_cfg = dict(
    _delete_=True,
    type='LayerwiseFinetuneLoop',
    iters_per_layer=30,
    timesteps=3,
    neuron='signed',
    keep_best=True,
    heldout_batches=2)
# the paper's fine-tuning optimiser; first and last layers learn faster
optim_wrapper = dict(
    _delete_=True,
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4),
    paramwise_cfg=dict(custom_keys={
        'backbone.stem': dict(lr_mult=5.0),
        'head.fc': dict(lr_mult=5.0)
    }))
param_scheduler = []
