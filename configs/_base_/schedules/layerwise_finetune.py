# Fast-SNN step 3 as the paper runs it: the 2-bit QANN converted to a
# signed-IF SNN at T = 3, tuned layer by layer against the QANN, shallow to
# deep, with the paper's SGD; train_cfg.joint_iters=N adds the joint stage
# (README). The tuned SNN is saved as <work_dir>/snn_finetuned_signed_T3.pth.
#
# A *_2bit_layerwise.py config inherits its task's 2-bit config and this
# file, and replaces the QAT schedule with these two:
#   train_cfg = dict(_delete_=True, **_base_.layerwise_train_cfg)
#   optim_wrapper = dict(_delete_=True, **_base_.layerwise_optim_wrapper)
#   param_scheduler = []
# mmengine refuses a key that two bases both set, and the task config
# already sets train_cfg and optim_wrapper: hence names of their own here.
layerwise_train_cfg = dict(
    type='LayerwiseFinetuneLoop', timesteps=3, neuron='signed')
# no type: mmengine builds an OptimWrapper
layerwise_optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4))
