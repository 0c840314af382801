# Fast-SNN step 3 for DeepLabV3 on VOC: convert the 2-bit QANN of
# deeplab_fastsnn_voc12aug_2bit.py to a signed-IF SNN at T = 3 and tune it
# layer by layer against the QANN, shallow to deep; the log shows mIoU
# before and after and per layer the held-out MSE and spike-count mismatch.
# The tuned SNN is saved as <work_dir>/snn_finetuned_signed_T3.pth.
#   python tools/train.py configs/deeplab_fastsnn_voc12aug_2bit_layerwise.py
_base_ = './deeplab_fastsnn_voc12aug_2bit.py'

load_from = 'work_dirs/deeplab_fastsnn_voc12aug_2bit/iter_20000.pth'
# the paper's loop; train_cfg.joint_iters=N adds the joint stage (README)
train_cfg = dict(
    _delete_=True,
    type='LayerwiseFinetuneLoop',
    timesteps=3,
    neuron='signed')
# the paper's fine-tuning optimiser
optim_wrapper = dict(
    _delete_=True,
    type='OptimWrapper',
    optimizer=dict(type='SGD', lr=1e-3, momentum=0.9, weight_decay=5e-4))
param_scheduler = []
