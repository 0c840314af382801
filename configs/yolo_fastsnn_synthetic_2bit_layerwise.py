# Fast-SNN step 3 on the 2-bit demo detector: convert to a signed-IF SNN at
# T = 3 and tune it layer by layer against its QANN; each group is kept
# only if its held-out count mismatch fell and the SNN's VOC mAP (stock
# evaluator, val set) did not. The log and layerwise_finetune.json give
# per layer the mismatch before and after.
#   python tools/train.py configs/yolo_fastsnn_synthetic_2bit_layerwise.py \
#       --cfg-options load_from=work_dirs/yolo_fastsnn_synthetic_2bit/epoch_8.pth
# 3-bit (T = 7): add model.quant.bits=3 and load_from a 3-bit checkpoint.
_base_ = ['./yolo_fastsnn_synthetic_2bit.py']

load_from = 'work_dirs/yolo_fastsnn_synthetic_2bit/epoch_8.pth'
train_cfg = dict(
    _delete_=True,
    type='LayerwiseFinetuneLoop',
    iters_per_layer=40,
    lr_candidates=[1e-4, 1e-3],
    heldout_batches=2,
    metric_check='every',
    # then all weights at once against the QANN's outputs (the gradient
    # straight through every neuron), 60 steps, Adam lr 1e-4 decaying to 0;
    # kept only if the metric did not fall
    joint_iters=60,
    joint_lr=1e-4)
optim_wrapper = dict(
    _delete_=True, type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3))
param_scheduler = []
