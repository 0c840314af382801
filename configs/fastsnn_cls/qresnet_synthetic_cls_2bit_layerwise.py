# Fast-SNN step 3 on the 2-bit demo classifier: convert to a signed-IF SNN
# with T = 3 and tune it layer by layer against its QANN. Per layer group
# two Adam learning rates are tried from the same weights and batches; the
# one with the lower held-out spike-count mismatch is kept (or none), and
# the group is reverted if the SNN's val top-1 fell. The log and
# work_dir/layerwise_finetune.json give per layer the mismatch before and
# after, and the top-1 before and after.
#   python tools/train.py \
#       configs/fastsnn_cls/qresnet_synthetic_cls_2bit_layerwise.py \
#       --cfg-options load_from=work_dirs/qresnet_synthetic_cls_2bit/epoch_10.pth
# 3-bit (T = 7): add model.quant.bits=3 and load_from a 3-bit checkpoint.
# A killed run goes on at the group it had reached with --resume.
_base_ = ['./qresnet_synthetic_cls_2bit.py']

load_from = 'work_dirs/qresnet_synthetic_cls_2bit/epoch_10.pth'
train_cfg = dict(
    _delete_=True,
    type='LayerwiseFinetuneLoop',
    iters_per_layer=40,
    lr_candidates=[1e-4, 1e-3],
    neuron='signed',
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
