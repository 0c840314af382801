# Fast-SNN step 3 on the demo models (synthetic shapes, CPU): per layer
# group two Adam learning rates are tried from the same weights and
# batches, the one with the lower held-out spike-count mismatch is kept (or
# none), and the group is reverted if the SNN's metric on the judging slice
# (20 % of the training images, held out of tuning) fell. Then all weights
# at once against the QANN's outputs (the gradient straight through every
# neuron), 60 steps, Adam lr 1e-4 decaying to 0; then 60 steps on the
# task's own loss (same lr, thresholds frozen); each kept only if it
# helped on the judging slice. The test split (make data: 200 images from
# another seed) is reported before, after each stage and after; it judges
# nothing. The log and <work_dir>/layerwise_finetune.json give per layer
# the mismatch before and after.
#
# Used as layerwise_finetune.py is (see there): names of their own, which
# the *_2bit_layerwise.py demo configs put in place of train_cfg and
# optim_wrapper.
layerwise_train_cfg = dict(
    type='LayerwiseFinetuneLoop',
    iters_per_layer=40,
    lr_candidates=[1e-4, 1e-3],
    heldout_batches=2,
    metric_check='every',
    joint_iters=60,
    joint_lr=1e-4,
    task_iters=60,
    task_lr=1e-4,
    report_on='test',
    report_stages=True)
layerwise_optim_wrapper = dict(
    type='OptimWrapper', optimizer=dict(type='Adam', lr=1e-3))
